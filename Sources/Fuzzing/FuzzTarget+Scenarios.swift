import CostModel
import MemoryModel
import Simulation
import Sweep

extension FuzzTarget {
    /// The host command language as `cocomem host FILE` reads it, then the
    /// run on KVM's TDX MMU and the TDX module (without the record, as a
    /// sweep point runs it), or on the SNP host for `td platform=snp`. Every command keeps its line number.
    static func host(_ text: String) throws {
        let s = try HostScenario.parse(text)
        guard s.commands.count == s.lines.count, !s.slots.isEmpty else {
            violated("host scenario: \(s.commands.count) commands, \(s.lines.count) line numbers, \(s.slots.count) slots")
        }
        guard s.vcpus >= 1, s.vcpus <= 4096 else { violated("host scenario: \(s.vcpus) vCPUs accepted") }
        if s.platform == .snp {
            let r = try SNPHostRun(s, calibration: builtIn, log: false)
            try r.run()
            return
        }
        let r = try HostRun(s, calibration: builtIn, log: false, record: false)
        try r.run()
    }

    /// The host command language as `cocomem host FILE` reads it, parsed
    /// only: the same invariants as `host` before its run.
    static func hostParse(_ text: String) throws {
        let s = try HostScenario.parse(text)
        guard s.commands.count == s.lines.count, !s.slots.isEmpty else {
            violated("host scenario: \(s.commands.count) commands, \(s.lines.count) line numbers, \(s.slots.count) slots")
        }
        guard s.vcpus >= 1, s.vcpus <= 4096 else { violated("host scenario: \(s.vcpus) vCPUs accepted") }
    }

    /// A scenario file as `cocomem run FILE` reads it; the printed YAML
    /// (`--print-scenario`) reads back to the same tree.
    static func scenario(_ text: String) throws {
        let f = try ScenarioFile.parse(text, name: "fuzz")
        roundTrip(f, what: "scenario file")
    }

    /// A sweep file as `cocomem sweep FILE` reads it: the axes multiply to
    /// its point count, and its first and last points are concrete scenario
    /// files that print and read back to themselves.
    static func sweep(_ text: String) throws {
        let s = try SweepFile.parse(text, name: "fuzz")
        var product: UInt64 = 1
        for a in s.axes {
            guard !a.values.isEmpty else { violated("sweep axis '\(a.path)' has no values") }
            product = product.multipliedReportingOverflow(by: UInt64(a.values.count)).partialValue
        }
        guard s.count >= 1, UInt64(s.count) == product, UInt64(s.count) <= SweepFile.hardMaxPoints else {
            violated("sweep of \(s.count) points from axes multiplying to \(product)")
        }
        for i in Set([0, s.count - 1]) {
            let d = s.digits(of: i)
            guard d.count == s.axes.count, zip(d, s.axes).allSatisfy({ $0 >= 0 && $0 < $1.values.count }) else {
                violated("point \(i) has digits \(d) outside its axes")
            }
            roundTrip(try s.scenario(digits: d), what: "sweep point \(i)")
        }
    }

    static func roundTrip(_ f: ScenarioFile, what: String) {
        let printed = f.yaml
        let back: ScenarioFile
        do { back = try ScenarioFile.parse(printed, name: "printed") } catch {
            violated("\(what): the printed YAML does not read back (\(error)):\n\(printed)")
        }
        guard back.tree == f.tree else { violated("\(what): the printed YAML reads back to another scenario:\n\(printed)\nreprinted:\n\(back.yaml)") }
    }
}
