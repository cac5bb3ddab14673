import CostModel
import Foundation
@testable import KVM
import MemoryModel
@testable import Reports
@testable import Simulation
import Testing

/// The host trace of a host scenario (issue 18 §5, `cocomem host
/// --host-trace`, a scenario file's host step with `host-trace:`): the
/// records and `Host trace:`/`Host inference:` lines a boot writes, for the
/// host command language's runs on the TDX and the SNP host, each command's
/// exits at its vCPU's time in the run's clock.
@Suite struct HostRunTraceTests {
    static let tdx = "td host=tdx-huge vcpus=2\nslot id=1 base=0 pages=0x1000\nfinalize\n"
        + "accept 0x0+0x400 linux\naccept 0x400+0x400 linux vcpu=1\naccept 0x800+0x400 linux\n"
    static let snp = "td platform=snp vcpus=2\nslot id=1 base=0 pages=0x1000 backing=buddy\nfinalize\n"
        + "accept 0x0+0x400 linux\naccept 0x400+0x400 linux vcpu=1\naccept 0x800+0x400 linux\n"

    func tdxRun(_ text: String = HostRunTraceTests.tdx, trace: Bool = true) throws -> HostRun {
        let r = try HostRun(try HostScenario.parse(text), calibration: try Calibration.builtIn(), log: false, traceHost: trace)
        try r.run()
        return r
    }

    func snpRun(_ text: String = HostRunTraceTests.snp, trace: Bool = true) throws -> SNPHostRun {
        let r = try SNPHostRun(try HostScenario.parse(text), calibration: try Calibration.builtIn(), log: false, traceHost: trace)
        try r.run()
        return r
    }

    /// TDX: each `accept` is one guest call whose two 2M accept exits are
    /// one record at that vCPU's time; the records lie inside the run's
    /// clock (the recorder's phases do not move the trace's time base: a
    /// host run's clock is one for the whole run), and vCPU 0's second call
    /// starts after its first one ended.
    @Test func aTDXHostRunTracesEachCommandAtItsVCPUsTime() throws {
        let r = try tdxRun()
        let t = try #require(r.vm.hostTrace)
        let rs = t.records.filter { $0.kind == .acceptExit }
        #expect(rs.count == 3 && rs.allSatisfy { $0.level == .size2M && $0.exits == 2 && $0.frames.length == 0x400 })
        #expect(rs.map(\.vcpu) == [0, 1, 0])
        #expect(t.guestCalls == 3 && t.guestCallsSeen == 3)
        let end = r.clock.seconds(r.costs)
        for x in t.records { #expect(x.start <= x.end && x.end <= end, "\(x.jsonLine) after the run's end \(end)") }
        // vCPU 1's call starts at its own clock's 0; vCPU 0's second after its first.
        #expect(rs[1].start < rs[0].end && rs[2].start >= rs[0].end && rs[2].start > 0)
        let inf = try #require(r.vm.hostInference(after: .infinity))
        #expect(inf.acceptedBytes == 0xc00 << 12 && inf.seenBytes == inf.acceptedBytes)
        #expect(r.text.contains("Host trace (what KVM sees of the guest's memory use): 3 records; 6 accept exits (6 at 2M)"))
        #expect(r.text.contains("Host inference: first touch seen for 12M of 12M accepted (100.0%; 12M at 2M)") && r.text.contains("3 of 3 guest accept calls exited"))
        // A host run has no boot: nothing is "after" it.
        #expect(!r.text.contains("after the boot"))
        let json = r.json(violations: nil).serialized(pretty: false)
        #expect(json.contains("\"host_trace\":{\"records\":3") && !json.contains("seen_after_boot_bytes"))
        #expect(t.jsonLines.split(separator: "\n").count == 4)
    }

    /// Without `--host-trace` a host run's report and JSON are what they were.
    @Test func withoutATraceTheReportIsUnchanged() throws {
        let a = try tdxRun(trace: false), b = try tdxRun()
        #expect(a.vm.hostTrace == nil && a.hostTraceText.isEmpty && a.hostTraceJSON == nil)
        #expect(b.text.hasPrefix(a.text) && b.text != a.text)
        #expect(a.vm.statsText == b.vm.statsText && a.clock == b.clock)
        let sa = try snpRun(trace: false), sb = try snpRun()
        #expect(sa.vm.hostTrace == nil && sa.hostTraceText.isEmpty)
        #expect(sb.text(checked: false).hasPrefix(sa.text(checked: false)) && sa.vm.stats == sb.vm.stats && sa.clock == sb.clock)
    }

    /// SNP: each `accept` is one guest call whose page-state change to
    /// private announces the range (`psc-private` at 2M, answered `ok`)
    /// before its PVALIDATEs fault it in; the exits are inside the run's
    /// clock and on the command's vCPU.
    @Test func anSNPHostRunTracesEachCommandAtItsVCPUsTime() throws {
        let r = try snpRun()
        let t = try #require(r.vm.hostTrace)
        let psc = t.records.filter { $0.kind == .pscPrivate }
        #expect(psc.count == 3 && psc.allSatisfy { $0.level == .size2M && $0.answer == "ok" && $0.frames.length == 0x400 })
        #expect(psc.map(\.vcpu) == [0, 1, 0])
        #expect(t.exits(.npfPrivate) > 0 && t.guestCalls == 3 && t.guestCallsSeen == 3)
        let end = r.clock.seconds(r.costs)
        for x in t.records { #expect(x.start <= x.end && x.end <= end + 1e-12, "\(x.jsonLine) after the run's end \(end)") }
        // Each vCPU's clock starts at 0: vCPU 1's call is placed among vCPU 0's first call's exits, vCPU 0's second
        // after its first call's last exit.
        let first = t.records.prefix { $0.vcpu == 0 }
        #expect(psc[1].start < (first.last?.end ?? 0) && psc[2].start > (first.last?.end ?? .infinity))
        let inf = try #require(r.vm.hostInference(after: .infinity))
        #expect(inf.acceptedBytes == 0xc00 << 12 && inf.seenBytes == inf.acceptedBytes)
        let text = r.text(checked: false)
        #expect(text.contains("Host trace (what KVM sees of the guest's memory use): ") && text.contains("3 psc-private (3 at 2M)"))
        #expect(text.contains("3 of 3 guest accept calls exited") && !text.contains("after the boot"))
        #expect(r.json(checked: false).serialized(pretty: false).contains("\"host_trace\":{\"records\":"))
    }

    /// A host command between two accept calls ends the call before it: its
    /// exits do not make that call "seen" (`psc-*`'s answers aside, an
    /// `attributes` conversion is the VMM's, not the guest's call).
    @Test func aHostCommandEndsTheCallBeforeIt() throws {
        let r = try tdxRun("td host=tdx-huge vcpus=1\nslot id=1 base=0 pages=0x1000\nfinalize\n"
                           + "readd 0x0+0x400\naccept 0x0+0x400 linux\nconvert 0x800+0x200 shared\n")
        let t = try #require(r.vm.hostTrace)
        // The accept found its pages AUGed already: no exit; the conversion after it is no exit of that call.
        #expect(t.guestCalls == 1 && t.guestCallsSeen == 0 && t.exits(.mapGPAShared) == 1)
    }

    /// A scenario file's host step takes `host-trace: FILE` (printed back,
    /// relative to `cocomem run --out`): the file is the trace's JSON lines,
    /// the step's report has the lines, on both hosts.
    @Test func aScenarioFilesHostStepWritesItsTrace() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hostruntrace-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for (commands, name) in [(Self.tdx, "tdx.jsonl"), (Self.snp, "snp.jsonl")] {
            let indented = commands.split(separator: "\n").map { "        " + $0 }.joined(separator: "\n")
            let f = try ScenarioFile.parse("boot: false\nsteps:\n  - host:\n      host-trace: \(name)\n      commands: |\n" + indented + "\n", name: "f.yaml")
            guard case .host(let h)? = f.steps.first else { Issue.record("no host step"); continue }
            #expect(h.hostTrace == name)
            guard case .host(let back)? = try ScenarioFile.parse(f.yaml).steps.first else { Issue.record("printed file lost its host step"); continue }
            #expect(back.hostTrace == name && f.yaml.contains("host-trace: \(name)"))
            #expect(f.hostTracePaths(in: dir) == [dir + "/" + name])
            let r = try f.run(outputDirectory: dir)
            let written = try String(contentsOfFile: dir + "/" + name, encoding: .utf8)
            switch r.steps.first {
            case .host(let h, _)?: #expect(written == h.vm.hostTrace?.jsonLines && h.text.contains("Host inference:"))
            case .snpHost(let h, _)?: #expect(written == h.vm.hostTrace?.jsonLines && h.text(checked: false).contains("Host inference:"))
            default: Issue.record("no host step result")
            }
            #expect(written.contains("\"summary\""))
        }
        #expect(throws: CocomemError.self) { try ScenarioFile.parse("boot: false\nsteps:\n  - host:\n      host-trace: \"\"\n") }
    }
}
