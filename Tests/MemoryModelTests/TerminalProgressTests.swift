import Foundation
import MemoryModel
import Testing

/// The terminal progress line (issue 14, section 3), driven by a fake clock
/// so every line it draws is known.
@Suite struct TerminalProgressTests {
    /// A reporter on a settable clock, collecting what it writes.
    final class Harness {
        var time = 0.0
        var written: [String] = []
        lazy var reporter = TerminalProgress(interval: 0.1, delay: 0.5, slowAfter: 10,
                                             now: { [unowned self] in self.time }, write: { [unowned self] in self.written.append($0) })
        /// The percents of the drawn lines, in order.
        var percents: [Int] {
            written.compactMap { w -> Int? in
                guard let colon = w.range(of: ": "), let pct = w[colon.upperBound...].split(separator: "%").first else { return nil }
                return Int(pct)
            }
        }
    }

    @Test func linesAreThrottledMonotoneAndEndAtHundredPercent() {
        let h = Harness()
        var rng = SplitMix64(seed: 14)
        let total: UInt64 = 1 << 30
        h.reporter.begin(ProgressTask("writing x", total: total))
        var done: UInt64 = 0
        while done < total {
            let step = min(total - done, (rng.next() % (8 << 20)) + 1)
            done += step
            h.time += Double(rng.next() % 1000) / 20_000   // 0-50 ms per step
            h.reporter.advance(by: step)
        }
        h.reporter.end()
        let p = h.percents
        #expect(!p.isEmpty)
        #expect(zip(p, p.dropFirst()).allSatisfy { $0 <= $1 })
        #expect(p.last == 100)
        #expect(h.written.last?.hasSuffix("\n") == true)
        #expect(h.written.last?.contains(" in ") == true)
        // At most one line per interval after the delay, plus the final one.
        #expect(Double(h.written.count - 1) <= (h.time - 0.5) / 0.1 + 1)
        #expect(h.written.allSatisfy { $0.hasPrefix("\r") })
    }

    @Test func aTaskShorterThanTheDelayDrawsNothing() {
        let h = Harness()
        h.reporter.begin(ProgressTask("quick", total: 100))
        for _ in 0..<100 { h.time += 0.004; h.reporter.advance(by: 1) }
        h.reporter.end()
        #expect(h.written.isEmpty)
    }

    @Test func etaComesFromTheRateSoFarAndOnlyForExactTotals() {
        let h = Harness()
        h.reporter.begin(ProgressTask("exact", total: 1000, unit: .items("points")))
        h.time = 2
        h.reporter.advance(by: 250)   // 2 s for a quarter: 6 s left
        #expect(h.written.last == "\rexact: 25% (250 of 1000 points), ETA 6.0s\u{1B}[K")
        h.reporter.end()
        h.reporter.begin(ProgressTask("bound", total: 1000, unit: .items("points"), totalIsExact: false))
        h.time = 4
        h.reporter.advance(by: 250)
        #expect(h.written.last == "\rbound: 25% (250 of 1000 points)\u{1B}[K")
    }

    @Test func theSlowHintIsShownOnceWhenTheProjectionIsLong() {
        let h = Harness()
        h.reporter.begin(ProgressTask("estimating", total: 100, unit: .items("pages"), slowHint: "note: try --sample"))
        for _ in 0..<20 { h.time += 0.5; h.reporter.advance(by: 1) }   // 50 s projected
        h.reporter.end()
        #expect(h.written.filter { $0.contains("note: try --sample") }.count == 1)
        let fast = Harness()
        fast.reporter.begin(ProgressTask("estimating", total: 100, unit: .items("pages"), slowHint: "note: try --sample"))
        for _ in 0..<100 { fast.time += 0.05; fast.reporter.advance(by: 1) }   // 5 s in all
        fast.reporter.end()
        #expect(!fast.written.contains { $0.contains("note:") })
    }

    @Test func percentIsRoundedDown() {
        #expect(TerminalProgress.percent(999, of: 1000) == 99)
        #expect(TerminalProgress.percent(1000, of: 1000) == 100)
        #expect(TerminalProgress.percent(0, of: 0) == 100)
        #expect(TerminalProgress.percent(1 << 51, of: 1 << 52) == 50)
    }
}
