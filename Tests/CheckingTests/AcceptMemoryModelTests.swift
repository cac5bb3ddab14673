import Checking
import GuestKernel
import MemoryModel
import Testing

/// `model: accept-memory`: two guest vCPUs' `accept_memory()` on the real
/// unaccepted table and KVM/TDX host, interleaved at the kernel's lock steps.
@Suite struct AcceptMemoryModelTests {
    func explore(_ c: AcceptMemoryModel.Config) throws -> Explorer<AcceptMemoryModel>.Result {
        Explorer(try AcceptMemoryModel(c)).run()
    }

    func trace(_ r: Explorer<AcceptMemoryModel>.Result, _ invariant: RegisteredInvariant) -> [String]? {
        r.counterexamples.first { $0.violation.invariant == invariant.name }.map { $0.actions.map { "\($0.actor) \($0.command)" } }
    }

    /// Neighbouring 4 MiB blocks share the guard unit; with the list (7.0) or
    /// the lock held across the accept (6.5.0, before 50e782a86c98) no order
    /// of the two vCPUs' steps breaks anything.
    @Test(arguments: ["7.0", "6.5", "6.5.9"])
    func realKernelsKeepEveryInvariant(_ kernel: String) throws {
        let r = try explore(AcceptMemoryModel.Config(kernel: kernel))
        #expect(r.complete)
        #expect(r.counterexamples.isEmpty, "\(r.counterexamples.map(\.violation))")
        #expect(r.states > 10)
    }

    /// Same range on both vCPUs: the second always waits, and returns to find
    /// the memory accepted; its touch is safe.
    @Test func oneRangeOnTwoVCPUsIsAcceptedOnce() throws {
        let r = try explore(AcceptMemoryModel.Config(stride: 0))
        #expect(r.complete)
        #expect(r.counterexamples.isEmpty, "\(r.counterexamples.map(\.violation))")
    }

    /// Without the list, both vCPUs find the guard unit set: the checker
    /// shows the overlap in 2 steps and the second ACCEPT's panic in 4.
    @Test func withoutTheListTheGuardUnitIsAcceptedTwice() throws {
        let r = try explore(AcceptMemoryModel.Config(plantedFault: .noAcceptingList))
        let exclusive = try #require(trace(r, InvariantRegistry.acceptingListExclusive))
        #expect(exclusive.count == 2)
        let panic = try #require(trace(r, InvariantRegistry.acceptSucceeds))
        #expect(panic.count == 4, "\(panic)")
        #expect(panic.filter { $0.contains("accept 0x") }.count == 2)
        #expect(trace(r, InvariantRegistry.neverTouchUnaccepted) == nil)
    }

    /// Claiming by clearing the bits: vCPU 1 returns with the guard unit not
    /// accepted yet and its touch kills the TD.
    @Test func claimingByClearingTouchesMemoryNotYetAccepted() throws {
        let r = try explore(AcceptMemoryModel.Config(plantedFault: .claimByClearing))
        let touch = try #require(trace(r, InvariantRegistry.neverTouchUnaccepted))
        #expect(touch.count == 5, "\(touch)")
        #expect(touch.last == "vcpu1 access 0x400 vcpu=1")
        #expect(trace(r, InvariantRegistry.tableAgreesWithPlatform)?.count == 1)
        #expect(trace(r, InvariantRegistry.acceptSucceeds) == nil)
    }

    /// `cocomem check`'s file for the model, and its counterexamples replayed
    /// on the real layers with the host language's vcpu= argument.
    @Test func counterexamplesReplayOnTheRealLayers() throws {
        let file = try CheckFile.parse("model: accept-memory\nparameters:\n  planted-fault: no-accepting-list\n", name: "t.yaml")
        let report = try CheckModels.run(file)
        let v = try #require(report.violations.first { $0.invariant == "guest.accept-succeeds" })
        let text = try #require(v.scenarioFile)
        #expect(text.contains("linux vcpu=1"))
        let commands = text.split(separator: "\n").filter { $0.hasPrefix("        ") }.map { String($0.dropFirst(8)) }.joined(separator: "\n")
        #expect(try CounterexampleReplay.invariants(hostCommands: commands).contains("guest.accept-succeeds"))
        let x = try #require(report.violations.first { $0.invariant == "guest.accepting-list-exclusive" })
        #expect(try #require(x.scenarioFile).contains("does NOT reach the violation"))
    }

    @Test func badParametersAreRefused() throws {
        for p in ["planted-fault: typo", "vcpus: 4", "size: 3K", "host: snp", "kernel: \"5.0\"", "colour: red"] {
            let file = try CheckFile.parse("model: accept-memory\nparameters:\n  \(p)\n", name: "t.yaml")
            #expect(throws: CocomemError.self, "\(p)") { try CheckModels.run(file) }
        }
    }
}
