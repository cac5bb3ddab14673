import Foundation
import Checking
import GuestKernel
import MemoryModel
import Sweep
import Testing

/// The engine's reductions, swarm and sweep for `model: accept-memory`
/// (issue 20 §1), and `accept RANGE at 2M|4K`.
///
/// Soundness is held against the unreduced search on seeded random small
/// configurations: the same invariants broken, the same shortest
/// counterexample length per invariant, no more states or transitions, and
/// every counterexample replaying concretely to its violation.
@Suite struct AcceptMemoryReductionTests {
    typealias Engine = Checker<AcceptMemoryModel>

    /// A random program: an accept (the kernel's or the firmware's), then
    /// 0-2 operations, over the first five 2 MiB units (0x600 and up: a
    /// window no other choice's overlaps, for the partial-order reduction's
    /// candidates).
    static func program(_ rng: inout SplitMix64) -> [ProgramOp] {
        func r(_ a: UInt64, _ n: UInt64) -> Range<GuestFrameNumber> { Range(start: GuestFrameNumber(a), count: n) }
        func pick(_ c: [ProgramOp]) -> ProgramOp { c[Int(rng.next() % UInt64(c.count))] }
        let accepts: [ProgramOp] = [
            .accept(r(0, 0x200)), .accept(r(0x200, 0x200)), .accept(r(0x100, 0x200)), .accept(r(0, 0x400)),
            .accept(r(0x600, 0x200)), .acceptAt(r(0x200, 0x200), .size2M), .acceptAt(r(0x10, 4), .size4K),
        ]
        let others = accepts + [.touch(r(0x5, 1)), .touch(r(0x205, 1)), .touch(r(0x605, 1)), .convert(r(0x206, 1), toPrivate: false)]
        return [pick(accepts)] + (0..<Int(rng.next() % 3)).map { _ in pick(others) }
    }

    static func randomConfig(_ seed: UInt64) -> AcceptMemoryModel.Config {
        var rng = SplitMix64(seed: seed)
        var c = AcceptMemoryModel.Config(kernel: ["7.0", "6.5"][Int(rng.next() % 2)],
                                         plantedFault: [nil, .noAcceptingList, .claimByClearing][Int(rng.next() % 3)],
                                         host: ["tdx", "tdx-huge"][Int(rng.next() % 2)])
        let first = program(&rng)
        // Half the configurations have identical vCPUs, for the symmetry.
        let second = rng.next() % 2 == 0 ? first : program(&rng)
        c.programs = [first, second]
        c.vcpus = 2
        // A third of them a host that may zap a page once.
        if rng.next() % 3 == 0 {
            c.hostSteps = [ModelStep(.host, "remove 0x205", call: "KVM's zap of private memory")]
            c.hostBudget = 1
        }
        return c
    }

    func run(_ m: AcceptMemoryModel, symmetry: Bool, por: Bool) -> Engine.Result {
        Engine(m, options: .init(symmetry: symmetry, partialOrder: por)).run()
    }

    func lengths(_ r: Engine.Result) -> [String: Int] {
        Dictionary(r.counterexamples.map { ($0.violation.invariant, $0.actions.count) }, uniquingKeysWith: min)
    }

    /// Each counterexample's actions, applied from its initial state, reach
    /// a state with its invariant broken.
    func replays(_ m: AcceptMemoryModel, _ r: Engine.Result) -> Bool {
        r.counterexamples.allSatisfy { cx in
            var s = cx.initial
            for a in cx.actions {
                guard m.actions(in: s).contains(a) else { return false }
                s = m.apply(a, to: s)
            }
            return m.violations(in: s).contains { $0.invariant == cx.violation.invariant }
        }
    }

    @Test(arguments: 0..<16)
    func reductionsAgreeWithTheFullSearch(_ k: Int) throws {
        let c = Self.randomConfig(0xACCE_5EED &+ UInt64(k))
        let m = try AcceptMemoryModel(c)
        let full = run(m, symmetry: false, por: false)
        let what = "\(c.programs ?? []) kernel \(c.kernel) \(c.host) \(c.plantedFault.map { "\($0)" } ?? "")"
        #expect(full.complete)
        for (sym, por) in [(true, false), (false, true), (true, true)] {
            let r = run(m, symmetry: sym, por: por)
            #expect(r.complete)
            #expect(lengths(r) == lengths(full), "symmetry \(sym) por \(por): \(what)")
            #expect(r.states <= full.states && r.transitions <= full.transitions, "symmetry \(sym) por \(por): \(what)")
            // Sleep sets prune transitions, never states.
            if !sym { #expect(r.states == full.states, "por: \(what)") }
            #expect(replays(m, r), "symmetry \(sym) por \(por): \(what)")
        }
    }

    /// The symmetry itself: for every state reached (breadth-first, up to
    /// 300) and every renaming of identical vCPUs, the path with each vCPU's
    /// steps taken by its image instead is enabled all along and reaches a
    /// state with the same representative (terminal states excepted: see
    /// below) and the same invariants broken.
    /// (The engine's agreement above cannot see a wrong symmetry whose merged
    /// states happen to break the same invariants at the same depths.)
    @Test(arguments: 0..<16)
    func renamedPathsReachTheSameRepresentative(_ k: Int) throws {
        let c = Self.randomConfig(0xACCE_5EED &+ UInt64(k))
        let m = try AcceptMemoryModel(c)
        let programs = c.programs ?? []
        let n = programs.count
        let renamings = [[1, 0]].filter { _ in n == 2 && programs[0] == programs[1] }
        guard !renamings.isEmpty else { return }
        var seen = Set<[UInt64]>(), layer = m.initialStates, checked = 0
        while !layer.isEmpty && checked < 300 {
            var next: [ReplayedState] = []
            for s in layer where seen.insert(s.fingerprint).inserted {
                checked += 1
                for sigma in renamings {
                    var t = m.initialStates[0]
                    for step in s.path {
                        let want: ActorID
                        if case .vcpu(let v) = step.actor { want = .vcpu(sigma[v]) } else { want = step.actor }
                        let a = try #require(m.actions(in: t).first { want == step.actor ? $0 == step : $0.actor == want },
                                             "\(step) renamed is not enabled")
                        t = m.apply(a, to: t)
                    }
                    // A dead TD's outcome names the vCPU that killed it, so
                    // terminal states stay apart (less reduction, still sound:
                    // nothing follows them); every other state must merge.
                    if !s.terminal { #expect(m.canonical(t).fingerprint == m.canonical(s).fingerprint, "\(s.path.map(\.command))") }
                    #expect(t.terminal == s.terminal)
                    #expect(Set(t.violations.map(\.invariant)) == Set(s.violations.map(\.invariant)))
                }
                next += m.actions(in: s).map { m.apply($0, to: s) }
            }
            layer = next
        }
    }

    /// Two vCPUs with the same program: the states where they swapped roles
    /// are stored once.
    @Test func symmetryStoresIdenticalVCPUsOnce() throws {
        var c = AcceptMemoryModel.Config(host: "tdx-huge")
        let p: [ProgramOp] = [.accept(Range(start: GuestFrameNumber(0), count: 0x400)), .touch(GuestFrameNumber(0x5).only)]
        c.programs = [p, p]
        let m = try AcceptMemoryModel(c)
        let full = run(m, symmetry: false, por: false), sym = run(m, symmetry: true, por: false)
        #expect(sym.states < full.states, "\(sym.states) of \(full.states)")
        #expect(lengths(sym) == lengths(full))
        // Different programs: nothing to reduce.
        c.programs = [p, [.accept(Range(start: GuestFrameNumber(0x400), count: 0x200))]]
        let m2 = try AcceptMemoryModel(c)
        #expect(run(m2, symmetry: true, por: false).states == run(m2, symmetry: false, por: false).states)
    }

    /// Three vCPUs on disjoint blocks: the sleep sets prune transitions (the
    /// lock steps on disjoint windows and the accepts commute), the states stay.
    @Test func sleepSetsPruneDisjointAccepts() throws {
        var c = AcceptMemoryModel.Config(host: "tdx-huge")
        c.programs = [0x0, 0x400, 0x800].map { (g: UInt64) in
            [.accept(Range(start: GuestFrameNumber(g), count: 0x200)), .touch(GuestFrameNumber(g + 5).only)]
        }
        c.vcpus = 3
        let m = try AcceptMemoryModel(c)
        let full = run(m, symmetry: false, por: false), por = run(m, symmetry: false, por: true)
        #expect(por.states == full.states)
        #expect(por.transitions * 2 < full.transitions, "\(por.transitions) of \(full.transitions)")
        // Steps on overlapping windows are never candidates.
        let s = m.initialStates[0]
        let a = m.actions(in: s)
        #expect(a.count == 3 && !m.independent(a[0], a[0], in: s))
    }

    /// A swarm on the planted list-less fault finds the double accept, and
    /// the check file as a sweep gives one row per seed.
    @Test func swarmAndSweepOnAPlantedFault() throws {
        let text = try readTextFile(URLPath.packageRoot + "/examples/check/accept-memory-swarm.yaml", what: "example", maxBytes: 1 << 16)
        let file = try CheckFile.parse(text, name: "accept-memory-swarm.yaml")
        #expect(file.search == .swarm)
        let r = try CheckModels.run(file)
        #expect(r.violations.contains { $0.invariant == InvariantRegistry.acceptSucceeds.name })
        #expect(r.searches == file.swarmSeeds.count)
        let sweep = try CheckSweep(text: text, name: "accept-memory-swarm.yaml")
        let rows = try sweep.run(shard: nil, jobs: 1).rows
        #expect(rows.count == file.swarmSeeds.count)
        #expect(Set(rows.map { "\($0["check_seed"] ?? .null)" }).count == rows.count)
    }

    /// The engine options the model takes, and the two it refuses.
    @Test func engineOptions() throws {
        let base = "model: accept-memory\nparameters:\n  vcpu0: accept 0x0+0x200\n"
        for extra in ["symmetry: off\n", "por: on\n", "max-depth: 2\n", "max-states: 3\n", "search: swarm\nswarm: {seeds: 1-2, max-depth: 4}\n"] {
            _ = try CheckModels.run(CheckFile.parse(base + extra, name: "o.yaml"))
        }
        for extra in ["hash-compaction: on\n", "cycles: on\n"] {
            #expect(throws: CocomemError.self, "\(extra)") { try CheckModels.run(CheckFile.parse(base + extra, name: "o.yaml")) }
        }
        let cut = try CheckModels.run(CheckFile.parse(base + "max-depth: 1\n", name: "o.yaml"))
        #expect(!cut.complete && cut.depthReached == 1)
    }

    /// `accept RANGE at 2M|4K`: edk2's TdAcceptPages() at a fixed size.
    /// Alone it holds; before the kernel's accept_memory() of the same range
    /// (the firmware accepted memory the bitmap still calls unaccepted) the
    /// kernel meets TDX_PAGE_ALREADY_ACCEPTED and panics; after it,
    /// TdAcceptPages tolerates the duplicate.
    @Test func acceptAtAFixedSize() throws {
        func check(_ programs: [String], host: String = "tdx-huge") throws -> CheckReport {
            let lines = programs.enumerated().map { "  vcpu\($0.offset): \($0.element)\n" }.joined()
            return try CheckModels.run(CheckFile.parse("model: accept-memory\nparameters:\n  host: \(host)\n" + lines, name: "a.yaml"))
        }
        for size in ["2M", "4K"] {
            for host in ["tdx", "tdx-huge"] {
                let alone = try check(["accept 0x0+0x200 at \(size); touch 0x5"], host: host)
                #expect(alone.violations.isEmpty, "\(size) \(host): \(alone.violations.map(\.invariant))")
            }
        }
        let race = try check(["accept 0x0+0x200 at 4K", "accept 0x0+0x200"])
        let broken = try #require(race.violations.first { $0.invariant == InvariantRegistry.acceptSucceeds.name })
        #expect(broken.steps.first?.call.hasPrefix("TdAcceptPages() at 4K") == true, "\(broken.steps.map(\.call))")
        // One vCPU: the kernel first, then the firmware's accept: tolerated.
        let after = try check(["accept 0x0+0x200; accept 0x0+0x200 at 2M; touch 0x5"])
        #expect(after.violations.isEmpty, "\(after.violations.map(\.invariant))")
        for bad in ["accept 0x0 at 1G", "accept 0x0 at", "accept 0x0 by 2M"] {
            #expect(throws: CocomemError.self, "\(bad)") { try check([bad]) }
        }
    }
}
