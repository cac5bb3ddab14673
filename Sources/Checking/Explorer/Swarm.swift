import MemoryModel

/// Swarm verification (Holzmann, Joshi and Groce): many bounded depth-first
/// searches, each taking the enabled actions in a random order drawn from
/// its own seed, for configurations too large to exhaust. Each search is
/// deterministic per seed and independent of the others, so the seeds can
/// be split across machines like the points of a sweep (each search reports
/// on its own; merging keeps, per invariant, the shortest trace found, the
/// lowest seed on a tie).
///
/// A swarm proves nothing about the states it did not reach: `complete` is
/// never claimed.
public struct Swarm<System: TransitionSystem> {
    public struct Options: Sendable {
        public var seeds: [UInt64]
        /// Depth bound of every search (required: depth-first search needs one).
        public var maxDepth: Int
        /// States one search stores before it stops (0: no limit).
        public var maxStatesPerSearch: Int
        public var symmetry: Bool

        public init(seeds: [UInt64], maxDepth: Int = 200, maxStatesPerSearch: Int = 100_000, symmetry: Bool = true) {
            self.seeds = seeds
            self.maxDepth = maxDepth
            self.maxStatesPerSearch = maxStatesPerSearch
            self.symmetry = symmetry
        }
    }

    /// What one search found.
    public struct Search {
        public var seed: UInt64
        public var states = 0
        public var transitions = 0
        public var depthReached = 0
        public var counterexamples: [Checker<System>.Counterexample] = []
    }

    public struct Result {
        public var searches: [Search] = []
        /// Per invariant, the shortest trace any search found.
        public var counterexamples: [Checker<System>.Counterexample] = []
        /// States stored, summed over the searches (a state two searches
        /// reach counts twice).
        public var states: Int { searches.reduce(0) { $0 + $1.states } }
        public var transitions: Int { searches.reduce(0) { $0 + $1.transitions } }
        public var depthReached: Int { searches.map(\.depthReached).max() ?? 0 }
    }

    public let system: System
    public let options: Options

    public init(_ system: System, options: Options) {
        self.system = system
        self.options = options
    }

    /// Runs every seed's search, in seed order.
    /// - Parameter progress: called after each search.
    /// - Complexity: per search O(maxStatesPerSearch × enabled actions).
    public func run(progress: ((Search) -> Void)? = nil) -> Result {
        var result = Result()
        var best: [String: Checker<System>.Counterexample] = [:]
        var order: [String] = []
        for seed in options.seeds {
            let s = search(seed: seed)
            for cx in s.counterexamples {
                if let b = best[cx.violation.invariant] {
                    if cx.actions.count < b.actions.count { best[cx.violation.invariant] = cx }
                } else {
                    best[cx.violation.invariant] = cx
                    order.append(cx.violation.invariant)
                }
            }
            result.searches.append(s)
            progress?(s)
        }
        result.counterexamples = order.compactMap { best[$0] }
        return result
    }

    /// One bounded depth-first search in the random order of `seed`.
    public func search(seed: UInt64) -> Search {
        if system.packedWords > 0 {
            var t = PackedStateTable(system)
            return search(seed: seed, &t)
        }
        var t = ValueStateTable<System.State>()
        return search(seed: seed, &t)
    }

    struct Frame {
        var state: System.State
        var actions: [System.Action]
        var next = 0
    }

    func search<T: StateTable>(seed: UInt64, _ table: inout T) -> Search where T.State == System.State {
        var out = Search(seed: seed)
        var rng = SplitMix64(seed: seed)
        var broken = Set<String>()
        let initial = system.initialStates
        guard !initial.isEmpty else { return out }
        let start = initial[Int(rng.next() % UInt64(initial.count))]
        func canon(_ s: System.State) -> System.State { options.symmetry ? system.canonical(s) : s }
        func shuffled(_ a: [System.Action]) -> [System.Action] {
            var a = a
            var i = a.count
            while i > 1 {
                let j = Int(rng.next() % UInt64(i))
                i -= 1
                a.swapAt(i, j)
            }
            return a
        }
        func record(_ s: System.State, _ stack: [Frame], last: System.Action?) {
            for v in system.violations(in: s) where broken.insert(v.invariant).inserted {
                var actions: [System.Action] = []
                var steps: [TraceStep] = []
                for (k, f) in stack.enumerated() where k + 1 < stack.count || last != nil {
                    let a = k + 1 < stack.count ? f.actions[f.next - 1] : last!
                    actions.append(a)
                    steps.append(system.describe(a, in: f.state))
                }
                out.counterexamples.append(.init(violation: v, initial: start, actions: actions, steps: steps))
            }
        }
        _ = table.insert(canon(start))
        record(start, [], last: nil)
        var stack = [Frame(state: start, actions: shuffled(system.actions(in: start)))]
        while let top = stack.last {
            out.depthReached = max(out.depthReached, stack.count - 1)
            guard top.next < top.actions.count, stack.count <= options.maxDepth else {
                stack.removeLast()
                continue
            }
            let a = top.actions[top.next]
            stack[stack.count - 1].next += 1
            out.transitions += 1
            let s = system.apply(a, to: top.state)
            guard table.insert(canon(s)).inserted else { continue }
            record(s, stack, last: a)
            if options.maxStatesPerSearch > 0 && table.count >= options.maxStatesPerSearch { break }
            stack.append(Frame(state: s, actions: shuffled(system.actions(in: s))))
        }
        out.states = table.count
        return out
    }
}
