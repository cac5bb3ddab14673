import Foundation
@testable import Reports
import Simulation
import Testing
import TestSupport

/// Checks a trace against the Chrome trace event format: the JSON object
/// form with `traceEvents`; every event has `name`, `ph`, `pid`, `tid`;
/// every non-metadata event a numeric `ts` (microseconds); `X` events a
/// non-negative `dur`; `C` events numeric `args`; `M` events a known name;
/// timestamps never go back on a track (a pid/tid pair; counters per name).
/// Returns the problems found.
func traceProblems(_ text: String) -> [String] {
    guard let obj = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
          let events = obj["traceEvents"] as? [[String: Any]] else { return ["not a JSON object with traceEvents"] }
    var problems: [String] = []
    var last: [String: Double] = [:]
    for (i, e) in events.enumerated() {
        guard let name = e["name"] as? String, let ph = e["ph"] as? String, e["pid"] is NSNumber, e["tid"] is NSNumber else {
            problems.append("event \(i) lacks name/ph/pid/tid"); continue
        }
        let track = "\(e["pid"]!)/\(e["tid"]!)"
        switch ph {
        case "M":
            if !["process_name", "thread_name", "thread_sort_index", "process_sort_index"].contains(name) { problems.append("unknown metadata \(name)") }
            if e["args"] as? [String: Any] == nil { problems.append("metadata \(name) without args") }
        case "X", "i", "C", "B", "E":
            guard let ts = (e["ts"] as? NSNumber)?.doubleValue else { problems.append("event \(i) without ts"); continue }
            if ph == "X", ((e["dur"] as? NSNumber)?.doubleValue ?? -1) < 0 { problems.append("X event \(i) without dur") }
            if ph == "C", let args = e["args"] as? [String: Any], !args.values.allSatisfy({ $0 is NSNumber }) { problems.append("C event \(i) args not numeric") }
            let key = ph == "C" ? track + "/C/" + name : track
            if let l = last[key], ts < l { problems.append("ts goes back on \(key): \(ts) < \(l)") }
            last[key] = ts
        default: problems.append("unknown ph \(ph)")
        }
    }
    return problems
}

@Suite struct ChromeTraceTests {
    @Test(arguments: [UInt64(4) << 30, UInt64(4) << 40])
    func traceFollowsTheFormat(memory: UInt64) {
        let r = RecordFixtures.tdBoot(memory: memory, vcpus: 8)
        let t = ChromeTrace.json([("first", r), ("second", r)])
        #expect(traceProblems(t) == [])
        #expect(t.contains("\"thread_name\""))
        #expect(t.contains("\"vCPU 0 (BSP)\""))
        #expect(t.contains("\"ph\":\"C\""))
        #expect(t.contains("\"pid\":2"))
    }

    @Test func spansGivenOutOfOrderComeOutInOrder() {
        var r = RunRecord()
        r.lanes = [VCPULane(vcpu: 1, spans: [.init(start: 2, end: 3, label: "b"), .init(start: 0.5, end: 1, label: "a")])]
        r.phases = [PhaseSpan(name: "two", start: 1, end: 2), PhaseSpan(name: "one", start: 0, end: 1)]
        r.series = [TimeSeries(name: "x", unit: "bytes", points: [.init(time: 1, value: 5), .init(time: 0, value: Double(UInt64(64) << 40))])]
        let t = ChromeTrace.json(r, name: "n")
        #expect(traceProblems(t) == [])
        #expect(t.contains("\"ts\":500000,\"dur\":500000"))
        #expect(t.contains("\"value\":70368744177664"))
    }

    @Test func theCheckerCatchesABrokenTrace() {
        #expect(!traceProblems("{\"traceEvents\":[{\"name\":\"a\",\"ph\":\"X\",\"pid\":1,\"tid\":1,\"ts\":5,\"dur\":1},{\"name\":\"b\",\"ph\":\"X\",\"pid\":1,\"tid\":1,\"ts\":4,\"dur\":1}]}").isEmpty)
        #expect(!traceProblems("{\"traceEvents\":[{\"ph\":\"X\",\"pid\":1,\"tid\":1,\"ts\":5}]}").isEmpty)
        #expect(!traceProblems("[]").isEmpty)
    }
}
