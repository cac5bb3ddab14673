/// Breadth-first exploration of every reachable state of a `TransitionSystem`,
/// storing each state once, so the first path found to a violating state is
/// a shortest one.
///
/// This is the plain reference search: states are stored as values in a
/// hash set and every enabled action is expanded. Reductions (symmetry
/// through `canonical`, partial-order reduction) and compact encodings are
/// built on top and must report the same violations as this search.
public struct Explorer<System: TransitionSystem> {
    /// Limits of one search.
    public struct Bounds: Sendable {
        /// Paths longer than this are not followed (0: no limit).
        public var maxDepth: Int
        /// The search stops after storing this many states (0: no limit).
        public var maxStates: Int
        /// Stop at the first violation instead of collecting one shortest
        /// trace per distinct invariant.
        public var stopAtFirstViolation: Bool

        public init(maxDepth: Int = 0, maxStates: Int = 0, stopAtFirstViolation: Bool = false) {
            self.maxDepth = maxDepth
            self.maxStates = maxStates
            self.stopAtFirstViolation = stopAtFirstViolation
        }
    }

    /// A shortest path from an initial state to a state that violates an
    /// invariant.
    ///
    /// With a `canonical` that is not the identity, each action applies to
    /// the canonical representative of the state before it: a concrete
    /// replayable trace then needs the permutations undone.
    public struct Counterexample {
        /// The first invariant broken in the last state of `actions`.
        public let violation: Violation
        /// The initial state the path starts from.
        public let initial: System.State
        /// The actions, in order.
        public let actions: [System.Action]
    }

    /// What a search found.
    public struct Result {
        /// Distinct states stored (after `canonical`).
        public var states = 0
        /// Transitions taken, including those to states already seen.
        public var transitions = 0
        /// The length of the longest shortest path to a stored state.
        public var depthReached = 0
        /// False when a bound cut the search short: the verdict then holds
        /// only for the part explored.
        public var complete = true
        /// One shortest counterexample per invariant broken, in the order
        /// found.
        public var counterexamples: [Counterexample] = []
    }

    public let system: System
    public let bounds: Bounds

    public init(_ system: System, bounds: Bounds = Bounds()) {
        self.system = system
        self.bounds = bounds
    }

    /// Explores every state reachable within `bounds`.
    ///
    /// - Parameter progress: called every 65,536 stored states with the
    ///   result so far.
    /// - Complexity: O(states × enabled actions) applications and hashes;
    ///   memory O(states).
    public func run(progress: ((Result) -> Void)? = nil) -> Result {
        var result = Result()
        var index: [System.State: Int] = [:]
        var states: [System.State] = []
        // For each stored state: the state it was first reached from and
        // the action taken (-1 for initial states), so a trace is rebuilt
        // by walking back.
        var parent: [Int32] = []
        var via: [System.Action?] = []
        var depth: [Int32] = []
        var brokenInvariants = Set<String>()

        func store(_ s: System.State, from p: Int, action: System.Action?, d: Int) -> Bool {
            let c = system.canonical(s)
            guard index[c] == nil else { return false }
            index[c] = states.count
            states.append(c)
            parent.append(Int32(p))
            via.append(action)
            depth.append(Int32(d))
            result.depthReached = max(result.depthReached, d)
            return true
        }

        func check(_ i: Int) -> Bool {
            for v in system.violations(in: states[i]) where brokenInvariants.insert(v.invariant).inserted {
                result.counterexamples.append(trace(to: i, violation: v))
                if bounds.stopAtFirstViolation { return true }
            }
            return false
        }

        func trace(to i: Int, violation: Violation) -> Counterexample {
            var actions: [System.Action] = []
            var j = i
            while parent[j] >= 0, let a = via[j] {
                actions.append(a)
                j = Int(parent[j])
            }
            return Counterexample(violation: violation, initial: states[j], actions: actions.reversed())
        }

        for s in system.initialStates where store(s, from: -1, action: nil, d: 0) {
            if check(states.count - 1) { result.states = states.count; return result }
        }
        var next = 0
        while next < states.count {
            let i = next
            next += 1
            let d = Int(depth[i])
            if bounds.maxDepth > 0 && d >= bounds.maxDepth {
                if !system.actions(in: states[i]).isEmpty { result.complete = false }
                continue
            }
            for a in system.actions(in: states[i]) {
                result.transitions += 1
                let s = system.apply(a, to: states[i])
                guard store(s, from: i, action: a, d: d + 1) else { continue }
                if check(states.count - 1) { result.states = states.count; return result }
                if bounds.maxStates > 0 && states.count >= bounds.maxStates {
                    result.complete = false
                    result.states = states.count
                    return result
                }
                if states.count % 65_536 == 0 { result.states = states.count; progress?(result) }
            }
        }
        result.states = states.count
        return result
    }
}
