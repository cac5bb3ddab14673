import Checking
import Testing

/// The acceptance core explored by the plain `Explorer` and by the fast
/// `Checker` with each reduction: the same states and violations.
@Suite struct AcceptanceCoreTests {
    static func core(_ edit: (inout AcceptanceCore.Configuration) -> Void = { _ in }) -> AcceptanceCore {
        var c = AcceptanceCore.Configuration()
        edit(&c)
        return try! AcceptanceCore(c)
    }

    static let configurations: [AcceptanceCore.Configuration] = {
        var out: [AcceptanceCore.Configuration] = []
        for list in [true, false] {
            for trust in [AcceptanceCore.AlreadyAccepted.linux, .trust] {
                for mapping in AcceptanceCore.HostMapping.allCases {
                    var c = AcceptanceCore.Configuration()
                    c.acceptingList = list
                    c.alreadyAccepted = trust
                    c.hostMapping = mapping
                    c.conversions = list ? 1 : 0
                    c.zaps = trust == .trust && !list ? 1 : 0
                    c.progressBound = 6
                    out.append(c)
                }
            }
        }
        return out
    }()

    static func names(_ vs: [Violation]) -> Set<String> { Set(vs.map(\.invariant)) }

    @Test(arguments: configurations)
    func checkerMatchesTheExplorer(_ c: AcceptanceCore.Configuration) throws {
        let m = try AcceptanceCore(c)
        let plain = Explorer(m).run()
        let plainNoSymmetry = Explorer(NoSymmetry(m)).run()
        let expected = Set(plain.counterexamples.map(\.violation.invariant))
        #expect(Set(plainNoSymmetry.counterexamples.map(\.violation.invariant)) == expected)
        let runs: [(Checker<AcceptanceCore>.Options, Int, Int?)] = [
            (.init(symmetry: true), plain.states, plain.transitions),
            (.init(symmetry: false), plainNoSymmetry.states, plainNoSymmetry.transitions),
            (.init(symmetry: false, partialOrder: true), plainNoSymmetry.states, nil),
            (.init(symmetry: true, partialOrder: true), plain.states, nil),
            (.init(symmetry: false, hashCompaction: true), plainNoSymmetry.states, plainNoSymmetry.transitions),
        ]
        for (opts, states, transitions) in runs {
            let r = Checker(m, options: opts).run()
            #expect(r.states == states, "\(opts)")
            if let transitions { #expect(r.transitions == transitions, "\(opts)") } else { #expect(r.transitions <= plainNoSymmetry.transitions) }
            #expect(Set(r.counterexamples.map(\.violation.invariant)) == expected, "\(opts)")
            if !opts.partialOrder {
                // Symmetry and compaction keep breadth-first distances.
                let shortest = Dictionary(uniqueKeysWithValues: plain.counterexamples.map { ($0.violation.invariant, $0.actions.count) })
                for cx in r.counterexamples { #expect(cx.actions.count == shortest[cx.violation.invariant], "\(opts)") }
            }
            for cx in r.counterexamples {
                var s = cx.initial
                for a in cx.actions {
                    #expect(m.actions(in: s).contains(a), "\(opts): the trace does not replay")
                    s = m.apply(a, to: s)
                }
                #expect(Self.names(m.violations(in: s)).contains(cx.violation.invariant))
            }
        }
    }
}

/// A model with its symmetry reduction taken away (the plain `Explorer`
/// always applies `canonical`).
struct NoSymmetry<Base: TransitionSystem>: TransitionSystem {
    let base: Base
    init(_ base: Base) { self.base = base }
    var initialStates: [Base.State] { base.initialStates }
    func actions(in s: Base.State) -> [Base.Action] { base.actions(in: s) }
    func apply(_ a: Base.Action, to s: Base.State) -> Base.State { base.apply(a, to: s) }
    func violations(in s: Base.State) -> [Violation] { base.violations(in: s) }
    func actor(of a: Base.Action) -> ActorID { base.actor(of: a) }
}

/// What the acceptance core finds, configuration by configuration, and
/// that each invariant can fail.
@Suite struct AcceptanceCoreVerdictTests {
    func found(_ edit: (inout AcceptanceCore.Configuration) -> Void) -> Set<String> {
        let r = Checker(AcceptanceCoreTests.core(edit)).run()
        #expect(r.complete)
        return Set(r.counterexamples.map(\.violation.invariant))
    }

    @Test func linuxWithTheAcceptingListIsSafe() {
        #expect(found { $0.hostMapping = .map2M; $0.splits = 2; $0.conversions = 1 }.isEmpty)
        #expect(found { $0.hostMapping = .map4K; $0.conversions = 1; $0.vcpus = 3 }.isEmpty)
    }

    /// Without the list a second vCPU accepts a range the first just
    /// accepted: ALREADY_ACCEPTED at 2M, at 4K too, and Linux fails the
    /// accept (the race the accepting list closes).
    @Test func withoutTheAcceptingListLinuxFailsAnAccept() {
        #expect(found { $0.acceptingList = false } == ["guest.accept-succeeds"])
        #expect(found { $0.acceptingList = false; $0.alreadyAccepted = .trust }.isEmpty)
    }

    /// A host that punches a hole in accepted memory: the next touch hits
    /// unaccepted memory; a guest that re-accepts zeroes its own data.
    @Test func anAdversarialHostBreaksTheGuest() {
        let v = found { $0.zaps = 1 }
        #expect(v.contains("guest.never-touch-unaccepted"))
        #expect(found { $0.zaps = 1; $0.acceptingList = false; $0.alreadyAccepted = .trust }.contains("guest.no-double-accept"))
        #expect(found { $0.zaps = 2; $0.progressBound = 4; $0.acceptingList = false; $0.alreadyAccepted = .trust }.contains("guest.accept-progress"))
    }

    @Test func structuralInvariantsCatchBrokenStates() throws {
        let m = AcceptanceCoreTests.core()
        var s = m.initialStates[0]
        // A 2M MAPPED leaf with a PENDING 4K leaf under it, and a mirror that
        // never saw the mapping.
        s.lo |= 2 << 2          // range 0: S-EPT 2M MAPPED
        s.lo |= 1 << 10         // range 0: page 0 PENDING
        let names = Set(m.violations(in: s).map(\.invariant))
        #expect(names == ["host.no-double-level-mapping", "host.mirror-agrees-with-sept"])
        // Two vCPUs both inside arch_accept_memory() of range 0.
        var t = m.initialStates[0]
        t.hi |= (1 << 3) | (1 << (13 + 3))
        #expect(m.violations(in: t).map(\.invariant) == ["guest.accepting-list-exclusive"])
        #expect(AcceptanceCore.invariants.count == 7)
    }

    @Test func badConfigurationsAreRefused() {
        var c = AcceptanceCore.Configuration()
        c.vcpus = 4
        #expect(throws: (any Error).self) { try AcceptanceCore(c) }
        c.vcpus = 2
        c.pagesPerRange = 0
        #expect(throws: (any Error).self) { try AcceptanceCore(c) }
    }
}
