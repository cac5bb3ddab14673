import Foundation

/// A progress line on a terminal: one line rewritten in place with `\r`,
/// giving the percent done, the counts and an ETA, at most `1 / interval`
/// times a second, and left on screen with the time taken when the task
/// ends. The ETA and the time taken are wall time: they go only to this
/// line (stderr), never into a report, a JSON result or a written file.
///
/// Nothing is drawn for a task that ends within `delay` seconds, so quick
/// commands leave no trace. The command line makes one only when stderr is a
/// terminal (or `--progress` asks), so scripts and pipes see nothing.
///
/// A task's `slowHint` is printed once, on a line of its own, when the task
/// has run for a second and its projected duration (elapsed × total / done)
/// is over `slowAfter` seconds.
public final class TerminalProgress: ProgressReporter {
    /// Where lines go (stderr by default).
    let write: (String) -> Void
    /// Seconds on a monotonic wall clock.
    let now: () -> Double
    /// Least time between two redraws.
    public let interval: Double
    /// Time a task runs before its line first appears.
    public let delay: Double
    /// Projected duration above which a task's hint is shown.
    public let slowAfter: Double

    var task: ProgressTask?
    var done: UInt64 = 0
    var started = 0.0
    var lastDraw: Double?
    var hinted = false

    /// - Parameters:
    ///   - interval: least seconds between redraws (0.1: 10 Hz).
    ///   - delay: seconds before a task's first line (0 with `--progress`).
    ///   - slowAfter: projected seconds above which the task's hint is shown.
    public init(interval: Double = 0.1, delay: Double = 0.5, slowAfter: Double = 10,
                now: (() -> Double)? = nil, write: ((String) -> Void)? = nil) {
        self.interval = interval
        self.delay = delay
        self.slowAfter = slowAfter
        let clock = ContinuousClock()
        let zero = clock.now
        self.now = now ?? {
            let d = clock.now - zero
            return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
        }
        self.write = write ?? { text in
            FileHandle.standardError.write(Data(text.utf8))
        }
    }

    /// True when file descriptor 2 is a terminal (`isatty(2)`).
    public static var standardErrorIsTerminal: Bool { isatty(2) == 1 }

    public func begin(_ task: ProgressTask) {
        if self.task != nil { end() }
        self.task = task
        done = 0
        started = now()
        lastDraw = nil
        hinted = false
    }

    public func advance(by units: UInt64) {
        guard let task else { return }
        done = min(task.total, done &+ units)
        let t = now()
        guard t - started >= delay else { return }
        if let last = lastDraw, t - last < interval { return }
        if !hinted, let hint = task.slowHint, t - started >= 1, done > 0,
           (t - started) * Double(task.total) / Double(done) > slowAfter {
            hinted = true
            write("\r\u{1B}[K" + hint + "\n")
        }
        lastDraw = t
        write("\r" + line(elapsed: t - started, final: false) + "\u{1B}[K")
    }

    public func end() {
        guard task != nil else { return }
        if lastDraw != nil { write("\r" + line(elapsed: now() - started, final: true) + "\u{1B}[K\n") }
        task = nil
    }

    /// `writing x.kdump: 42% (1.5G of 3.9G), ETA 12s`; when the task is
    /// over, the time it took instead of the ETA.
    func line(elapsed: Double, final: Bool) -> String {
        guard let task else { return "" }
        var s = "\(task.label): \(Self.percent(done, of: task.total))% (\(count(done)) of \(count(task.total)))"
        if final {
            s += " in \(Self.duration(elapsed))"
        } else if task.totalIsExact, done > 0, done < task.total {
            s += ", ETA \(Self.duration(elapsed * Double(task.total - done) / Double(done)))"
        }
        return s
    }

    func count(_ n: UInt64) -> String {
        guard let unit = task?.unit else { return "\(n)" }
        switch unit {
        case .bytes: return Self.size(n)
        case .items(let name): return n == task?.total ? "\(n) \(name)" : "\(n)"
        }
    }

    /// Whole percent, rounded down: 100 only when all is done.
    public static func percent(_ done: UInt64, of total: UInt64) -> Int {
        guard total > 0 else { return 100 }
        return Int(done.multipliedFullWidth(by: 100).low / total)
    }

    /// A size with one decimal in the largest binary unit (`1.5G`, `512M`).
    static func size(_ n: UInt64) -> String {
        for (shift, s) in [(40, "T"), (30, "G"), (20, "M"), (10, "K")] where n >= 1 << UInt64(shift) {
            let tenths = (Double(n) / Double(UInt64(1) << UInt64(shift)) * 10).rounded(.down) / 10
            return tenths == tenths.rounded(.down) ? "\(Int(tenths))\(s)" : "\(tenths)\(s)"
        }
        return "\(n)"
    }

    /// `0.4s`, `12s`, `3m05s`, `1h02m`.
    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "?" }
        if seconds < 10 { return String(format: "%.1fs", seconds) }
        let s = Int(seconds.rounded())
        if s < 60 { return "\(s)s" }
        if s < 3600 { return String(format: "%dm%02ds", s / 60, s % 60) }
        return String(format: "%dh%02dm", s / 3600, (s % 3600) / 60)
    }
}
