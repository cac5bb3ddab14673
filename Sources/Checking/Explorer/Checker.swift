/// The fast breadth-first engine: the same search as `Explorer` (every
/// reachable state within the bounds, one shortest counterexample per
/// invariant), with compact fixed-width states (`TransitionSystem.pack`)
/// in an open-addressing table, parent pointers instead of stored paths,
/// and optional reductions:
///
/// - **symmetry**: states are stored as `canonical` representatives;
///   counterexamples are made concrete again by replaying them and, at each
///   step, picking the concrete action whose successor has the stored
///   representative (the permutation undone), so every trace replays.
/// - **partial-order reduction** by sleep sets (Godefroid): an action
///   explored from a state is not explored again from a successor reached
///   by an action independent of it (`independent`), since both orders
///   reach the same state. Sleep sets prune transitions, never states: the
///   reduced search stores exactly the states of the full one (when a
///   stored state is reached again with a smaller sleep set, the actions
///   it no longer sleeps on are explored from it). With symmetry, a
///   successor whose representative differs from it gets an empty sleep
///   set (its sleep set would have to be permuted).
/// - **hash compaction**: only a 64-bit hash per state (may miss states;
///   `Result.omissionProbability` says how likely).
public struct Checker<System: TransitionSystem> {
    public struct Options: Sendable {
        public var symmetry = true
        public var partialOrder = false
        public var hashCompaction = false
        /// Paths longer than this are not followed (0: no limit).
        public var maxDepth = 0
        /// Stop after storing this many states (0: no limit).
        public var maxStates = 0
        public var stopAtFirstViolation = false

        public init(symmetry: Bool = true, partialOrder: Bool = false, hashCompaction: Bool = false,
                    maxDepth: Int = 0, maxStates: Int = 0, stopAtFirstViolation: Bool = false) {
            self.symmetry = symmetry
            self.partialOrder = partialOrder
            self.hashCompaction = hashCompaction
            self.maxDepth = maxDepth
            self.maxStates = maxStates
            self.stopAtFirstViolation = stopAtFirstViolation
        }
    }

    /// A counterexample made concrete: actions that replay from `initial`
    /// with `apply`, each with its readable step.
    public struct Counterexample {
        public let violation: Violation
        public let initial: System.State
        public let actions: [System.Action]
        public let steps: [TraceStep]
    }

    public struct Result {
        /// Distinct states stored (representatives under symmetry).
        public var states = 0
        /// Transitions taken, to new states or not.
        public var transitions = 0
        public var depthReached = 0
        /// False when a bound cut the search short.
        public var complete = true
        public var counterexamples: [Counterexample] = []
        /// Bytes of the state store, parent pointers and sleep sets at the
        /// end (allocated capacity), over the states stored.
        public var bytesPerState = 0.0
        /// With hash compaction: the chance that a hash collision hid a state.
        public var omissionProbability: Double?
    }

    public let system: System
    public let options: Options

    /// The most states one search stores: parent pointers are 32-bit.
    public static var stateLimit: Int { Int(UInt32.max) - 1 }

    public init(_ system: System, options: Options = Options()) {
        self.system = system
        self.options = options
    }

    /// Explores every state reachable within the options' bounds.
    ///
    /// - Parameter progress: called every 65,536 stored states.
    /// - Complexity: O(states × enabled actions) applications; memory
    ///   `bytesPerState` × states, plus the widest breadth-first layer.
    public func run(progress: ((Result) -> Void)? = nil) -> Result {
        if options.hashCompaction {
            var t = CompactStateTable(system)
            var r = search(&t, progress: progress)
            r.omissionProbability = CompactStateTable<System>.omissionProbability(states: r.states)
            return r
        }
        if system.packedWords > 0 {
            var t = PackedStateTable(system)
            return search(&t, progress: progress)
        }
        var t = ValueStateTable<System.State>()
        return search(&t, progress: progress)
    }

    @inline(__always) func canon(_ s: System.State) -> System.State {
        options.symmetry ? system.canonical(s) : s
    }

    /// One entry of a breadth-first layer: a state, its index, and with
    /// partial-order reduction the actions to skip (its sleep set) or, for
    /// a re-expansion, the only actions to explore.
    struct Entry {
        var state: System.State
        var index: Int
        var only: [System.Action]?
    }

    func search<T: StateTable>(_ table: inout T, progress: ((Result) -> Void)?) -> Result where T.State == System.State {
        let por = options.partialOrder && !options.hashCompaction
        var result = Result()
        var parent: [UInt32] = []
        var via: [UInt16] = []
        var sleep: [Int: [System.Action]] = [:]
        var broken = Set<String>()
        var found: [(Violation, Int)] = []
        var layer: [Entry] = []
        var next: [Entry] = []
        var reexpand: [Entry] = []
        var cursor = -1
        var stop = false
        let limit = options.maxStates > 0 ? min(options.maxStates, Self.stateLimit) : Self.stateLimit

        func check(_ s: System.State, _ i: Int) {
            for v in system.violations(in: s) where broken.insert(v.invariant).inserted {
                found.append((v, i))
                if options.stopAtFirstViolation { stop = true }
            }
        }

        for (k, s0) in system.initialStates.enumerated() {
            let c = canon(s0)
            let (i, new) = table.insert(c)
            guard new else { continue }
            parent.append(UInt32.max)
            via.append(UInt16(k))
            layer.append(Entry(state: c, index: i, only: nil))
            check(c, i)
        }
        var depth = 0
        var lastReport = 0
        while !layer.isEmpty && !stop {
            if options.maxDepth > 0 && depth >= options.maxDepth {
                if layer.contains(where: { !system.actions(in: $0.state).isEmpty }) { result.complete = false }
                break
            }
            layerLoop: for entry in layer {
                let s = entry.state
                if entry.only == nil { cursor = entry.index }
                let enabled = system.actions(in: s)
                let asleep = por && entry.only == nil ? sleep[entry.index] ?? [] : []
                var explored: [System.Action] = []
                for (ord, a) in enabled.enumerated() {
                    if let only = entry.only, !only.contains(a) { continue }
                    if por && asleep.contains(a) { continue }
                    result.transitions += 1
                    let succ = system.apply(a, to: s)
                    let c = canon(succ)
                    var z: [System.Action] = []
                    if por && entry.only == nil && c == succ {
                        z = (asleep + explored).filter { system.independent(a, $0, in: s) }
                    }
                    if por { explored.append(a) }
                    let (i, new) = table.insert(c)
                    if new {
                        parent.append(UInt32(entry.index))
                        via.append(UInt16(ord))
                        if por && !z.isEmpty { sleep[i] = z }
                        next.append(Entry(state: c, index: i, only: nil))
                        check(c, i)
                        if stop { break layerLoop }
                        if table.count >= limit {
                            result.complete = false
                            stop = true
                            break layerLoop
                        }
                        if table.count - lastReport >= 65_536 {
                            lastReport = table.count
                            result.states = table.count
                            result.depthReached = depth + 1
                            progress?(result)
                        }
                    } else if por, let old = sleep[i] {
                        // Reached again: it may sleep only on what every
                        // arrival lets it sleep on.
                        let keep = old.filter { z.contains($0) }
                        guard keep.count < old.count else { continue }
                        if keep.isEmpty { sleep[i] = nil } else { sleep[i] = keep }
                        if i <= cursor {
                            let wake = old.filter { !keep.contains($0) }
                            reexpand.append(Entry(state: c, index: i, only: wake))
                        }
                    }
                }
            }
            if !next.isEmpty { depth += 1 }
            layer = next + reexpand
            next = []
            reexpand = []
        }
        result.states = table.count
        result.depthReached = depth
        let bytes = table.bytes + doublingCapacity(parent.count) * 4 + doublingCapacity(via.count) * 2 + sleep.count * (16 + 4 * MemoryLayout<System.Action>.stride)
        result.bytesPerState = result.states > 0 ? Double(bytes) / Double(result.states) : 0
        result.counterexamples = found.map { concrete($0.0, index: $0.1, parent: parent, via: via) }
        return result
    }

    /// Rebuilds the path to stored state `index` by replay (stored states
    /// are not needed, so this works with hash compaction too), then makes
    /// it concrete: from the real initial state, the action whose
    /// successor has the next stored representative.
    func concrete(_ v: Violation, index: Int, parent: [UInt32], via: [UInt16]) -> Counterexample {
        var chain: [Int] = []
        var j = index
        while parent[j] != UInt32.max {
            chain.append(j)
            j = Int(parent[j])
        }
        chain.reverse()
        let initial = system.initialStates[Int(via[j])]
        var c = canon(initial)
        var s = initial
        var actions: [System.Action] = []
        var steps: [TraceStep] = []
        for k in chain {
            let a = system.actions(in: c)[Int(via[k])]
            c = canon(system.apply(a, to: c))
            let concreteAction = system.actions(in: s).first { canon(system.apply($0, to: s)) == c } ?? a
            steps.append(system.describe(concreteAction, in: s))
            actions.append(concreteAction)
            s = system.apply(concreteAction, to: s)
        }
        return Counterexample(violation: v, initial: initial, actions: actions, steps: steps)
    }
}
