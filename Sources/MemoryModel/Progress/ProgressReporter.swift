/// What a long operation tells the person waiting for it: how much of how
/// much is done. Issue 14, section 3: dump writing, exact estimates, input
/// conversions, step-by-step boots and sweeps report through this, and the
/// command line decides whether anyone is shown anything
/// (`TerminalProgress` on a terminal, nothing otherwise).
///
/// A reporter is handed down explicitly to the code that does the work
/// (there is no global one), and it is told units of work only, never the
/// model's results: it cannot change what a command prints on stdout or
/// writes to a file. Calls come from one thread at a time (the writers call
/// it from their in-order sink, not from their worker threads).
public protocol ProgressReporter: AnyObject {
    /// A task starts; any task still open is ended first.
    func begin(_ task: ProgressTask)
    /// `units` more units of the current task are done.
    func advance(by units: UInt64)
    /// The current task is over (done, or stopped early by an error or an
    /// outcome that ends the run).
    func end()
}

/// One long operation as a progress line names it.
public struct ProgressTask: Sendable, Equatable {
    /// What is being done ("writing vmcore.kdump", "estimating the dump size").
    public var label: String
    /// Units of work in all.
    public var total: UInt64
    /// What a unit is, for the line's counts.
    public var unit: ProgressUnit
    /// False when `total` is an upper bound the task may stop short of (a
    /// lazy boot accepts only part of the guest): no ETA is shown then.
    public var totalIsExact: Bool
    /// Shown once, on a line of its own, when the task is projected to take
    /// longer than the reporter's threshold (`TerminalProgress.slowAfter`):
    /// the faster way to the same answer, e.g. the sampled estimate.
    public var slowHint: String?

    public init(_ label: String, total: UInt64, unit: ProgressUnit = .bytes, totalIsExact: Bool = true, slowHint: String? = nil) {
        self.label = label
        self.total = total
        self.unit = unit
        self.totalIsExact = totalIsExact
        self.slowHint = slowHint
    }
}

/// What a progress unit counts.
public enum ProgressUnit: Sendable, Equatable {
    /// Bytes, shown as sizes (`12G of 64G`).
    case bytes
    /// Whole things, named in the plural (`.items("points")`: `120 of 4000 points`).
    case items(String)
}

extension ProgressReporter {
    /// Runs `body` as one task: `begin`, then `end` however `body` leaves.
    public func run<T>(_ task: ProgressTask, _ body: () throws -> T) rethrows -> T {
        begin(task)
        defer { end() }
        return try body()
    }
}

extension Optional where Wrapped == any ProgressReporter {
    /// `body` inside a task when there is a reporter, or just `body`.
    public func run<T>(_ task: @autoclosure () -> ProgressTask, _ body: () throws -> T) rethrows -> T {
        guard let reporter = self else { return try body() }
        return try reporter.run(task(), body)
    }
}
