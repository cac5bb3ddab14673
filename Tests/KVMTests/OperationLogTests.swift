import CostModel
import Foundation
import KVM
import Reports
import Simulation
import Testing

/// `host --log` must not hold a long run's log in memory (issue 15).
@Suite struct OperationLogTests {
    /// Kept lines are bounded: the first and last ones, and one line saying
    /// how many were dropped between them.
    @Test func keptLogIsBounded() {
        var log = OperationLog()
        let n = OperationLog.headLimit + OperationLog.tailLimit + 12_345
        for i in 0..<n { log.append("line \(i)") }
        let lines = log.lines
        #expect(log.count == UInt64(n) && log.dropped == 12_345)
        #expect(lines.count == OperationLog.headLimit + OperationLog.tailLimit + 1)
        #expect(lines.first == "line 0" && lines[OperationLog.headLimit - 1] == "line \(OperationLog.headLimit - 1)")
        #expect(lines[OperationLog.headLimit].hasPrefix("... 12345 lines dropped"))
        #expect(lines[OperationLog.headLimit + 1] == "line \(OperationLog.headLimit + 12_345)")
        #expect(lines.last == "line \(n - 1)")
        // Below the limits nothing is dropped.
        var short = OperationLog()
        for i in 0..<10 { short.append("\(i)") }
        #expect(short.lines == (0..<10).map { "\($0)" })
    }

    /// A streamed log gives every line, in order, and keeps none; a kept log
    /// of the same run holds the same lines while they fit.
    @Test func streamedLogEqualsKeptLogAndKeepsNothing() throws {
        let text = "td host=tdx-huge\nslot id=1 base=0 pages=4096\nfinalize\naccept 0x0+1024 linux\ncycle 0x10+16 40\n"
        let kept = try HostRun(try HostScenario.parse(text), calibration: try Calibration.builtIn(), log: true)
        try kept.run()
        var streamed: [String] = []
        let run = try HostRun(try HostScenario.parse(text), calibration: try Calibration.builtIn(), log: true,
                              logSink: { streamed.append($0) })
        try run.run()
        #expect(!kept.vm.log.isEmpty && streamed == kept.vm.log)
        #expect(run.vm.log.isEmpty && run.vm.operationLog.count == UInt64(streamed.count))
        #expect(run.text == kept.text.replacingOccurrences(
            of: "Operation log:\n" + streamed.map { "  " + $0 }.joined(separator: "\n") + "\n\n", with: ""))
    }
}
