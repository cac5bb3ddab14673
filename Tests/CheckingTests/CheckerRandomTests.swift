import Checking
import MemoryModel
import Testing

/// A seeded random system of identical processes over shared variables:
/// each process runs the same short random program (copy, add, await,
/// load into its register, store it), values mod 3. Small enough that the
/// plain `Explorer` exhausts it, varied enough to exercise every reduction.
struct RandomProcesses: TransitionSystem {
    enum Instruction: Hashable {
        case add(target: Int, source: Int, constant: Int)
        case await(variable: Int, value: Int)
        case load(variable: Int)
        case store(variable: Int)
    }
    struct State: Hashable {
        var shared: [Int]
        /// Per process: program counter and register.
        var procs: [[Int]]
    }
    struct Action: Hashable, CustomStringConvertible {
        let process: Int
        var description: String { "p\(process)" }
    }

    let program: [Instruction]
    let processes: Int
    let variables: Int
    /// Broken-state predicates: the invariant `bad-i` fails when
    /// `shared[v] == x`.
    let bad: [(v: Int, x: Int)]

    init(seed: UInt64) {
        var g = SplitMix64(seed: seed)
        processes = 2 + Int(g.next() % 2)
        variables = 2 + Int(g.next() % 2)
        let n = variables
        program = (0..<(3 + Int(g.next() % 3))).map { _ in
            switch g.next() % 4 {
            case 0: .add(target: Int(g.next() % UInt64(n)), source: Int(g.next() % UInt64(n)), constant: 1 + Int(g.next() % 2))
            case 1: .await(variable: Int(g.next() % UInt64(n)), value: Int(g.next() % 3))
            case 2: .load(variable: Int(g.next() % UInt64(n)))
            default: .store(variable: Int(g.next() % UInt64(n)))
            }
        }
        bad = (0..<2).map { _ in (Int(g.next() % UInt64(n)), 1 + Int(g.next() % 2)) }
    }

    var initialStates: [State] { [State(shared: Array(repeating: 0, count: variables), procs: Array(repeating: [0, 0], count: processes))] }

    func enabled(_ p: Int, _ s: State) -> Bool {
        let pc = s.procs[p][0]
        guard pc < program.count else { return false }
        if case .await(let v, let x) = program[pc] { return s.shared[v] == x }
        return true
    }

    func actions(in s: State) -> [Action] { (0..<processes).filter { enabled($0, s) }.map { Action(process: $0) } }

    func apply(_ a: Action, to s: State) -> State {
        var t = s
        let p = a.process
        switch program[t.procs[p][0]] {
        case .add(let d, let src, let c): t.shared[d] = (t.shared[src] + c) % 3
        case .await: break
        case .load(let v): t.procs[p][1] = t.shared[v]
        case .store(let v): t.shared[v] = t.procs[p][1]
        }
        t.procs[p][0] += 1
        return t
    }

    func violations(in s: State) -> [Violation] {
        bad.enumerated().compactMap { i, b in s.shared[b.v] == b.x ? Violation(invariant: "bad-\(i)", detail: "shared[\(b.v)] = \(b.x)") : nil }
    }

    func actor(of a: Action) -> ActorID { .vcpu(a.process) }
    func canonical(_ s: State) -> State { State(shared: s.shared, procs: s.procs.sorted { $0.lexicographicallyPrecedes($1) }) }
    func independent(_ a: Action, _ b: Action, in s: State) -> Bool { a.process != b.process && commute(a, b, in: s) }
}

/// A reduction bug planted on purpose: every pair of processes claimed
/// independent, commuting or not.
struct WrongIndependence: TransitionSystem {
    let base: RandomProcesses
    var initialStates: [RandomProcesses.State] { base.initialStates }
    func actions(in s: RandomProcesses.State) -> [RandomProcesses.Action] { base.actions(in: s) }
    func apply(_ a: RandomProcesses.Action, to s: RandomProcesses.State) -> RandomProcesses.State { base.apply(a, to: s) }
    func violations(in s: RandomProcesses.State) -> [Violation] { base.violations(in: s) }
    func actor(of a: RandomProcesses.Action) -> ActorID { base.actor(of: a) }
    func independent(_ a: RandomProcesses.Action, _ b: RandomProcesses.Action, in s: RandomProcesses.State) -> Bool { a.process != b.process }
}

/// A symmetry bug planted on purpose: the registers are dropped from the
/// canonical form, so states that differ collapse.
struct WrongSymmetry: TransitionSystem {
    let base: RandomProcesses
    var initialStates: [RandomProcesses.State] { base.initialStates }
    func actions(in s: RandomProcesses.State) -> [RandomProcesses.Action] { base.actions(in: s) }
    func apply(_ a: RandomProcesses.Action, to s: RandomProcesses.State) -> RandomProcesses.State { base.apply(a, to: s) }
    func violations(in s: RandomProcesses.State) -> [Violation] { base.violations(in: s) }
    func canonical(_ s: RandomProcesses.State) -> RandomProcesses.State {
        RandomProcesses.State(shared: s.shared, procs: s.procs.map { [$0[0], 0] }.sorted { $0.lexicographicallyPrecedes($1) })
    }
}

@Suite struct CheckerRandomTests {
    static func invariants<S>(_ r: Checker<S>.Result) -> Set<String> { Set(r.counterexamples.map(\.violation.invariant)) }

    /// On 300 seeded random systems every option of the fast engine finds
    /// the plain search's violations; without symmetry and with or without
    /// sleep sets, exactly its states; every trace replays.
    @Test func everyReductionAgreesWithThePlainSearch() {
        for seed in 0..<300 as Range<UInt64> {
            let m = RandomProcesses(seed: seed)
            let plainSym = Explorer(m).run()
            let plain = Explorer(NoSymmetry(m)).run()
            let expected = Set(plain.counterexamples.map(\.violation.invariant))
            #expect(Set(plainSym.counterexamples.map(\.violation.invariant)) == expected, "seed \(seed)")
            let options: [(Checker<RandomProcesses>.Options, Int, Int?)] = [
                (.init(symmetry: false), plain.states, plain.transitions),
                (.init(symmetry: true), plainSym.states, plainSym.transitions),
                (.init(symmetry: false, partialOrder: true), plain.states, nil),
                (.init(symmetry: true, partialOrder: true), plainSym.states, nil),
                (.init(symmetry: false, hashCompaction: true), plain.states, plain.transitions),
            ]
            for (o, states, transitions) in options {
                let r = Checker(m, options: o).run()
                #expect(r.states == states, "seed \(seed) \(o)")
                if let transitions { #expect(r.transitions == transitions, "seed \(seed) \(o)") }
                #expect(Self.invariants(r) == expected, "seed \(seed) \(o)")
                for cx in r.counterexamples {
                    var s = cx.initial
                    for a in cx.actions {
                        guard m.actions(in: s).contains(a) else { Issue.record("seed \(seed) \(o): trace does not replay"); break }
                        s = m.apply(a, to: s)
                    }
                    #expect(m.violations(in: s).contains { $0.invariant == cx.violation.invariant }, "seed \(seed) \(o)")
                }
            }
        }
    }

    /// The comparison catches a wrong independence relation and a wrong
    /// canonical form: on some seed each planted bug changes the states or
    /// the violations found.
    @Test func plantedReductionBugsAreCaught() {
        var porCaught = false, symmetryCaught = false
        for seed in 0..<300 as Range<UInt64> where !(porCaught && symmetryCaught) {
            let m = RandomProcesses(seed: seed)
            let plain = Explorer(NoSymmetry(m)).run()
            let bad = Checker(WrongIndependence(base: m), options: .init(symmetry: false, partialOrder: true)).run()
            if bad.states != plain.states || Self.invariants(bad) != Set(plain.counterexamples.map(\.violation.invariant)) { porCaught = true }
            let plainSym = Explorer(m).run()
            let badSym = Checker(WrongSymmetry(base: m), options: .init(symmetry: true)).run()
            if badSym.states != plainSym.states || Self.invariants(badSym) != Set(plainSym.counterexamples.map(\.violation.invariant)) { symmetryCaught = true }
        }
        #expect(porCaught)
        #expect(symmetryCaught)
    }
}

@Suite struct SwarmTests {
    /// On small random systems, enough random depth-first searches find
    /// every violation the exhaustive search finds (and never one it does
    /// not); each search is the same for the same seed; traces replay.
    @Test func swarmFindsWhatTheExhaustiveSearchFinds() {
        for seed in 0..<100 as Range<UInt64> {
            let m = RandomProcesses(seed: seed)
            let plain = Set(Explorer(m).run().counterexamples.map(\.violation.invariant))
            let swarm = Swarm(m, options: .init(seeds: Array(0..<40), maxDepth: 50)).run()
            #expect(Set(swarm.counterexamples.map(\.violation.invariant)) == plain, "seed \(seed)")
            for cx in swarm.counterexamples {
                var s = cx.initial
                for a in cx.actions { s = m.apply(a, to: s) }
                #expect(m.violations(in: s).contains { $0.invariant == cx.violation.invariant })
            }
            let again = Swarm(m, options: .init(seeds: [7], maxDepth: 50)).search(seed: 7)
            let once = swarm.searches[7]
            #expect(again.states == once.states && again.transitions == once.transitions)
            #expect(again.counterexamples.map(\.actions) == once.counterexamples.map(\.actions))
        }
    }

    @Test func swarmOnTheAcceptanceCore() throws {
        let m = AcceptanceCoreTests.core { $0.zaps = 1; $0.acceptingList = false; $0.alreadyAccepted = .trust; $0.progressBound = 6 }
        let plain = Set(Checker(m).run().counterexamples.map(\.violation.invariant))
        let swarm = Swarm(m, options: .init(seeds: Array(1...30), maxDepth: 60, maxStatesPerSearch: 2_000)).run()
        #expect(Set(swarm.counterexamples.map(\.violation.invariant)).isSubset(of: plain))
        #expect(!swarm.counterexamples.isEmpty)
    }
}
