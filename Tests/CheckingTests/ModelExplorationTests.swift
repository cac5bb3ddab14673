import Checking
import KVM
import MemoryModel
import Testing

/// The models on the layers' real interfaces, explored by the plain BFS.
@Suite struct HostModelTests {
    func model(_ p: ConversionPolicy, _ faults: [FaultPoint] = []) throws -> HostCommandModel {
        try HostModels.Conversion(policy: p, faultPoints: faults, maxFaults: 1).model()
    }

    func run(_ m: HostCommandModel, _ path: [String]) -> ReplayedState {
        var s = m.initialStates[0]
        for c in path {
            guard let a = m.actions(in: s).first(where: { $0.command == c }) else {
                Issue.record("\(c) not enabled after \(s.path.map(\.command))")
                return s
            }
            s = m.apply(a, to: s)
        }
        return s
    }

    @Test func twoPathsToTheSameStateAreOneState() throws {
        let m = try model(.zapBeforeFolioSplit, [.demoteBusy])
        // Nothing is mapped, so the conversion demotes nothing: the fault
        // stays armed either way, and the counters that differ are not state.
        let a = run(m, ["inject demote-busy", "convert 0x5+1 shared"])
        let b = run(m, ["convert 0x5+1 shared", "inject demote-busy"])
        #expect(a == b)
        #expect(a.hashValue == b.hashValue)
        #expect(a.path != b.path)
    }

    @Test func statesDifferingInBehaviourAreTwo() throws {
        let m = try model(.zapBeforeFolioSplit, [.demoteBusy])
        // An armed fault decides what a later split does.
        #expect(run(m, ["inject demote-busy"]) != run(m, []))
        // A 2M and a 4K accept leave different S-EPT levels.
        #expect(run(m, ["accept 0x0+512 2m"]) != run(m, ["accept 0x5+1 4k"]))
        // Shared and private attributes.
        #expect(run(m, ["convert 0x5+1 shared"]) != run(m, []))
    }

    @Test func wipHugetlbMapsLargerThanItsFolio() throws {
        let r = Explorer(try model(.wipHugetlb), bounds: .init(maxDepth: 3)).run()
        let c = try #require(r.counterexamples.first { $0.violation.invariant == InvariantRegistry.mappingWithinFolio.name })
        #expect(c.actions.map(\.command) == ["accept 0x0+512 2m", "convert 0x5+1 shared"])
    }

    @Test func zapFirstLosesAcceptedMemoryWhenTheFolioSplitFails() throws {
        let r = Explorer(try model(.zapBeforeFolioSplit, [.folioSplitNoMem]), bounds: .init(maxDepth: 3)).run()
        #expect(r.counterexamples.contains { $0.violation.invariant == InvariantRegistry.conversionAtomic.name })
        #expect(!r.counterexamples.contains { $0.violation.invariant == InvariantRegistry.mappingWithinFolio.name })
    }

    @Test func septFirstKeepsEveryHostInvariantWithAFailedFolioSplit() throws {
        let r = Explorer(try model(.septSplitFirst, [.folioSplitNoMem]), bounds: .init(maxDepth: 4)).run()
        #expect(r.counterexamples.isEmpty, "\(r.counterexamples.map(\.violation))")
        #expect(r.states > 50)
    }
}

@Suite struct AdversarialModelTests {
    func explore(trusts: Bool) throws -> Explorer<HostCommandModel>.Result {
        Explorer(try HostModels.Adversarial(trustsAlreadyAccepted: trusts).model(), bounds: .init(maxDepth: 5)).run()
    }

    @Test func aGuestThatTrustsAlreadyAcceptedTakesStaleContentsForAFreshPage() throws {
        let r = try explore(trusts: true)
        let c = try #require(r.counterexamples.first { $0.violation.invariant == InvariantRegistry.acceptOnceWhereContentsMatter.name })
        #expect(c.actions.map(\.call).first { $0.hasPrefix("release") } != nil)
        #expect(!c.actions.contains { $0.actor == .host }, "no host action is needed: not taking the page back is enough")
    }

    @Test func linuxStopsInsteadOfTrustingAlreadyAccepted() throws {
        let r = try explore(trusts: false)
        #expect(!r.counterexamples.contains { $0.violation.invariant == InvariantRegistry.acceptOnceWhereContentsMatter.name })
        #expect(!r.counterexamples.contains { $0.violation.invariant == InvariantRegistry.contentsIntact.name })
    }

    @Test func aRemovedPageKillsTheGuestAtItsNextTouchAndARefusedAUGNeverCompletes() throws {
        for trusts in [true, false] {
            let r = try explore(trusts: trusts)
            let touch = try #require(r.counterexamples.first { $0.violation.invariant == InvariantRegistry.neverTouchUnaccepted.name })
            #expect(touch.actions.contains { $0.command.hasPrefix("remove ") || $0.command.hasPrefix("remap ") })
            let hang = try #require(r.counterexamples.first { $0.violation.invariant == InvariantRegistry.acceptCompletes.name })
            #expect(hang.actions.first?.command == "refuse-aug 0x5+1")
        }
    }
}

@Suite struct KexecModelTests {
    @Test func withoutAcceptingAtLoadTheRelocationTouchesUnacceptedMemory() throws {
        let r = Explorer(try KexecModel(.init(kernel: "6.12", maxTouches: 0))).run()
        #expect(r.complete)
        let c = try #require(r.counterexamples.first { $0.violation.invariant == InvariantRegistry.kexecDestinationsAccepted.name })
        #expect(c.actions.map(\.command) == ["kexec -l --syscall kexec_file_load", "kexec -e"])
        #expect(r.counterexamples.contains { $0.violation.invariant == InvariantRegistry.neverTouchUnaccepted.name })
    }

    @Test func withTheFixNoRelocationTouchesUnacceptedMemory() throws {
        let r = Explorer(try KexecModel(.init(kernel: "6.16", maxTouches: 0))).run()
        #expect(r.complete)
        #expect(r.counterexamples.isEmpty, "\(r.counterexamples.map(\.violation))")
        #expect(r.states >= 5)
    }
}

@Suite struct InvariantRegistryTests {
    @Test func everyHostFindingHasItsOwnName() {
        let cases: [(String, RegisteredInvariant)] = [
            ("mirror leaf but S-EPT free at 0x0", InvariantRegistry.mirrorAgreesWithSEPT),
            ("2M mapping at 0x0 larger than its folio", InvariantRegistry.mappingWithinFolio),
            ("2M private mapping over shared memory at 0x0", InvariantRegistry.noPrivateMappingOfShared),
            ("PAMT refcount 1 but 0 4K mappings in 0x0", InvariantRegistry.dpamtRefcount),
            ("frames under a 2M leaf also mapped at 4K at 0x0", InvariantRegistry.noDoubleLevelMapping),
            ("GUEST_INHIBIT cleared at 2M region 3", InvariantRegistry.guestInhibitOneWay),
            ("conversion to shared failed after private memory was zapped", InvariantRegistry.conversionAtomic),
            ("something new", InvariantRegistry.otherHostCheck),
        ]
        for (finding, inv) in cases { #expect(InvariantRegistry.classify(host: finding) == inv, "\(finding)") }
        #expect(Set(InvariantRegistry.all.map(\.name)).count == InvariantRegistry.all.count)
    }
}
