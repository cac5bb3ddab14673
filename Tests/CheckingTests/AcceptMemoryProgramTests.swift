import Foundation
import Checking
import GuestKernel
import KVM
import MemoryModel
import Testing

/// `model: accept-memory` with a program per vCPU, a host actor and injected
/// faults (issue 20 §1): the example files under examples/check/ run through
/// `cocomem check`'s own path, each holding the verdict its comment claims.
@Suite struct AcceptMemoryProgramTests {
    func report(_ file: String, _ edit: (String) -> String = { $0 }) throws -> CheckReport {
        let text = try readTextFile(URLPath.packageRoot + "/examples/check/" + file, what: "example", maxBytes: 1 << 16)
        return try CheckModels.run(CheckFile.parse(edit(text), name: file))
    }

    func steps(_ r: CheckReport, _ i: RegisteredInvariant) -> [String]? {
        r.violations.first { $0.invariant == i.name }.map { $0.steps.map { "\($0.actor) \($0.call)" } }
    }

    /// Overlapping blocks on two vCPUs with a host that may zap or fault in a
    /// page between any two steps: the list keeps the accepts apart; the
    /// host's zap of an accepted page is what breaks, fail-stop (the touch
    /// kills the TD), in 5 steps.
    @Test func overlappingAcceptsWithAHostThatZaps() throws {
        let r = try report("accept-memory-host-zap.yaml")
        #expect(r.complete && r.states > 50)
        #expect(Set(r.violations.map(\.invariant)) == [InvariantRegistry.tableAgreesWithPlatform.name, InvariantRegistry.neverTouchUnaccepted.name])
        let touch = try #require(steps(r, InvariantRegistry.neverTouchUnaccepted))
        #expect(touch.count == 5, "\(touch)")
        #expect(touch[3].hasPrefix("host ") && touch[3].contains("remove 0x205"), "\(touch)")
        // Without the host's moves, the same programs keep every invariant.
        let quiet = try report("accept-memory-host-zap.yaml") { $0.replacingOccurrences(of: "host-budget: 1", with: "host-budget: 0") }
        #expect(quiet.violations.isEmpty, "\(quiet.violations.map(\.invariant))")
    }

    /// A conversion of a page in the guard unit racing the next block's
    /// accept: 7.0 keeps every invariant; with runs claimed by clearing
    /// (planted), vCPU 1 claims the guard unit first, vCPU 0 finds it clear,
    /// converts a page of it and accepts that page again (4K), and vCPU 1's
    /// 2M ACCEPT of the unit meets it: ALREADY_ACCEPTED, Linux panics.
    @Test func aConversionRacingAnAccept() throws {
        let r = try report("accept-memory-convert-race.yaml")
        #expect(r.complete && r.violations.isEmpty, "\(r.violations.map(\.invariant))")
        let planted = try report("accept-memory-convert-race.yaml") { $0 + "  planted-fault: claim-by-clearing\n" }
        let panic = try #require(steps(planted, InvariantRegistry.acceptSucceeds))
        #expect(panic.count == 8, "\(panic)")
        #expect(panic.first?.hasPrefix("vcpu1 ") == true && panic.last?.hasPrefix("vcpu1 ") == true, "\(panic)")
        #expect(panic.contains { $0.contains("convert 0x405 private") }, "\(panic)")
    }

    /// Seed 001 with a second vCPU: 7.0 accepts the destination at load
    /// (waiting on the list for vCPU 1's overlapping call) and holds; 6.12
    /// relocates into unaccepted memory in 2 steps.
    @Test(arguments: [("7.0", false), ("6.16", false), ("6.12", true)])
    func kexecWithAVCPUStillAccepting(_ kernel: String, _ breaks: Bool) throws {
        let r = try report("accept-memory-kexec.yaml") { $0.replacingOccurrences(of: "kernel: \"7.0\"", with: "kernel: \"\(kernel)\"") }
        #expect(r.complete)
        if breaks {
            #expect(steps(r, InvariantRegistry.kexecDestinationsAccepted)?.count == 2)
            #expect(steps(r, InvariantRegistry.neverTouchUnaccepted)?.count == 2)
        } else {
            #expect(r.violations.isEmpty, "\(r.violations.map(\.invariant))")
        }
    }

    /// The reboot waits while another vCPU is inside accept_memory() with
    /// interrupts off: no explored state reboots with a call working.
    @Test func rebootWaitsForAnAcceptWithInterruptsOff() throws {
        let m = try AcceptMemoryModel(.kexecWhileAccepting(kernel: "7.0"))
        let r = Explorer(m).run()
        #expect(r.complete && r.counterexamples.isEmpty)
        // vCPU 1 mid-call after its first step: vCPU 0 has no step that reboots.
        var s = m.initialStates[0]
        let first = try #require(m.actions(in: s).first { $0.actor == .vcpu(1) })
        s = m.apply(first, to: s)
        let load = try #require(m.actions(in: s).first { $0.actor == .vcpu(0) })
        s = m.apply(load, to: s)  // kexec_file_load(): accept_memory() meets vCPU 1's entry
        #expect(!m.actions(in: s).contains { $0.call.contains("machine_kexec") })
    }

    /// One injected fault at any step: zap-first's folio split failing after
    /// the zap (host.conversion-atomic), and the guest's accepted page gone
    /// from under a clear bitmap unit; the guest's MapGPA fails and its
    /// program stops there. Without faults every invariant holds.
    @Test func injectedFaultsOnAConversion() throws {
        let r = try report("accept-memory-faults.yaml")
        #expect(r.complete)
        let atomic = try #require(steps(r, InvariantRegistry.conversionAtomic))
        #expect(atomic.count == 5 && atomic[3].contains("inject folio-split-nomem"), "\(atomic)")
        #expect(r.violations.allSatisfy { $0.invariant != InvariantRegistry.acceptSucceeds.name })
        let none = try report("accept-memory-faults.yaml") { $0.replacingOccurrences(of: "faults: 1", with: "faults: 0") }
        #expect(none.violations.isEmpty, "\(none.violations.map(\.invariant))")
        #expect(r.states > none.states)
    }

    /// A host that refuses to AUG a page an accept needs: the accept never
    /// completes (progress.accept-completes), not a failed accept.
    @Test func aRefusedAUGIsALivelock() throws {
        let file = try CheckFile.parse("""
            model: accept-memory
            parameters:
              vcpu0: accept 0x0+0x400
              host-steps: refuse-aug 0x0+0x200
            """, name: "t.yaml")
        let r = try CheckModels.run(file)
        let s = try #require(r.violations.first { $0.invariant == InvariantRegistry.acceptCompletes.name })
        #expect(s.steps.count == 3, "\(s.steps.map(\.call))")
        #expect(!r.violations.contains { $0.invariant == InvariantRegistry.acceptSucceeds.name })
    }

    /// The default programs (vcpus, size, stride) are the ones the model had
    /// before programs: the same states and steps.
    @Test func defaultProgramsEqualTheirWrittenForm() throws {
        let a = try CheckModels.run(CheckFile.parse("model: accept-memory\n", name: "a.yaml"))
        let b = try CheckModels.run(CheckFile.parse("model: accept-memory\nparameters:\n  vcpu0: accept 0x0+0x400; touch 0x0\n  vcpu1: accept 0x400+0x400; touch 0x400\n", name: "b.yaml"))
        #expect(a.states == b.states && a.transitions == b.transitions && a.depthReached == b.depthReached)
    }

    /// Counterexamples with host moves and faults are scenario files whose
    /// host lines `cocomem run` replays to the same violation.
    @Test func counterexamplesWithHostMovesReplay() throws {
        let r = try report("accept-memory-host-zap.yaml")
        let text = try #require(r.violations.first { $0.invariant == InvariantRegistry.neverTouchUnaccepted.name }?.scenarioFile)
        #expect(text.contains("remove 0x205    # host:"))
        let commands = text.split(separator: "\n").filter { $0.hasPrefix("        ") }.map { String($0.dropFirst(8)) }.joined(separator: "\n")
        #expect(try CounterexampleReplay.invariants(hostCommands: commands).contains(InvariantRegistry.neverTouchUnaccepted.name))
    }

    @Test func badProgramsAreRefused() throws {
        let bad = [
            "vcpu0: jump 0x0", "vcpu0: accept 0x0+0", "vcpu0: accept zero", "vcpu0: convert 0x5 sideways", "vcpu1: accept 0x0",
            "vcpu0: touch 0x0\n  vcpus: 2", "vcpu0: touch 0x0\n  host-steps: accept 0x0", "vcpu0: touch 0x0\n  host-steps: remove 0x100000",
            "vcpu0: touch 0x0\n  faults: 9", "vcpu0: touch 0x0\n  faults: 1\n  fault-points: gremlins", "vcpu0: touch 0x0\n  policy: yolo",
            "vcpu0: touch 0x0\n  host-steps: remove 0x5\n  host-budget: 99", "vcpu0: " + Array(repeating: "touch 0x0", count: 9).joined(separator: "; "),
        ]
        for p in bad {
            let file = try CheckFile.parse("model: accept-memory\nparameters:\n  \(p)\n", name: "t.yaml")
            #expect(throws: CocomemError.self, "\(p)") { try CheckModels.run(file) }
        }
    }
}
