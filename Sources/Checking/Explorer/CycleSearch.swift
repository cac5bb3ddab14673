/// Livelock as a cycle (spin's non-progress cycles, `pan -l`): a reachable
/// cycle of steps none of which is progress (`TransitionSystem.isProgress`:
/// for the acceptance core, no `accept_memory()` returns, no range is
/// skipped or touched), printed as the shortest lasso, a stem from an
/// initial state and the cycle it enters.
///
/// The search runs on `withoutMonitors` states (a counter only an invariant
/// reads would make every lap a new state) without symmetry reduction (a
/// cycle of representatives may not be one of states). Steps:
/// 1. breadth-first search of every reachable state, with its distance and
///    its non-progress edges;
/// 2. the strongly connected components of the non-progress edges
///    (Tarjan, iterative): a state lies on a non-progress cycle exactly
///    when its component has an edge inside it;
/// 3. for those states in order of distance, the shortest cycle through
///    each (breadth-first inside its component), until the distance alone
///    is no shorter than the best lasso found: the lasso minimizes stem
///    plus cycle.
///
/// No fairness is assumed (as `pan -l` without `-f`): a cycle on which one
/// vCPU spins while another could run is a livelock of the first.
public struct CycleSearch<System: TransitionSystem> {
    public struct Lasso {
        public let initial: System.State
        public let stem: [System.Action]
        public let cycle: [System.Action]
        public let stemSteps: [TraceStep]
        public let cycleSteps: [TraceStep]
    }

    public struct Result {
        public var states = 0
        public var transitions = 0
        /// False when `maxStates` cut the search: a cycle may have been missed.
        public var complete = true
        public var lasso: Lasso?
        /// Bytes the search keeps per stored state: the store (packed words
        /// and table, or the values), distance, parent, the action ordinal
        /// it was reached by, and the non-progress edges (target and
        /// ordinal), at the capacities arrays grown by doubling have.
        public var bytesPerState = 0.0
    }

    public let system: System
    public let maxStates: Int
    /// Store states packed (`PackedStateTable`) when the model has an
    /// encoding; false keeps the values (`ValueStateTable`), as a model
    /// without one always does.
    public let packed: Bool

    public init(_ system: System, maxStates: Int = 5_000_000, packed: Bool = true) {
        self.system = system
        self.maxStates = maxStates
        self.packed = packed
    }

    /// The non-progress edges in compressed rows: state i's are
    /// `to[start[i]..<start[i + 1]]`, each with the ordinal of its action
    /// in `actions(in:)` (the action itself is recomputed when a trace
    /// needs it): 6 bytes an edge instead of a stored action.
    struct Edges {
        var start: [UInt32] = [0]
        var to: [UInt32] = []
        var ordinal: [UInt16] = []
        var count: Int { start.count - 1 }
        func range(_ i: Int) -> Range<Int> { Int(start[i])..<Int(start[i + 1]) }
        var bytes: Int { doublingCapacity(start.count) * 4 + doublingCapacity(to.count) * 4 + doublingCapacity(ordinal.count) * 2 }
    }

    /// - Complexity: O(states + transitions) for steps 1 and 2; step 3 is
    ///   O(component size) per candidate, stopping early.
    public func run() -> Result {
        if packed && system.packedWords > 0 {
            var table = PackedStateTable(system, slots: 1 << 10)
            return search(&table) { t, i in
                t.words.withUnsafeBufferPointer { w in system.unpack(UnsafeBufferPointer(rebasing: w[(i * t.width)..<(i * t.width + t.width)])) }
            }
        }
        var table = ValueStateTable<System.State>()
        return search(&table) { t, i in t.states[i] }
    }

    func search<Table: LookupStateTable>(_ table: inout Table, state: (Table, Int) -> System.State) -> Result where Table.State == System.State {
        var result = Result()
        var dist: [UInt32] = [], parent: [Int32] = [], via: [UInt16] = []
        var edges = Edges()
        for s0 in system.initialStates where table.insert(system.withoutMonitors(s0)).inserted {
            dist.append(0); parent.append(-1); via.append(0)
        }
        var head = 0
        while head < table.count {
            let i = head
            head += 1
            let s = state(table, i)
            for (n, a) in system.actions(in: s).enumerated() {
                result.transitions += 1
                let t = system.withoutMonitors(system.apply(a, to: s))
                let j: Int
                if table.count >= maxStates {
                    // Full: a state already stored is still found (its edge kept).
                    guard let k = table.find(t) else { result.complete = false; continue }
                    j = k
                } else {
                    let (k, new) = table.insert(t)
                    j = k
                    if new { dist.append(dist[i] + 1); parent.append(Int32(i)); via.append(UInt16(n)) }
                }
                if !system.isProgress(a, in: s) { edges.to.append(UInt32(j)); edges.ordinal.append(UInt16(n)) }
            }
            edges.start.append(UInt32(edges.to.count))
        }
        result.states = table.count
        let perState = doublingCapacity(table.count) * (4 + 4 + 2)
        result.bytesPerState = table.count > 0 ? Double(table.bytes + perState + edges.bytes) / Double(table.count) : 0
        let component = Self.components(edges)
        var best: (stemEnd: Int, cycle: [(from: Int, ordinal: UInt16)], length: Int)?
        // States are stored in breadth-first order: by distance.
        for i in 0..<table.count {
            if let b = best, Int(dist[i]) >= b.length { break }
            guard edges.range(i).contains(where: { component[Int(edges.to[$0])] == component[i] }) else { continue }
            guard let cycle = shortestCycle(through: i, edges: edges, component: component) else { continue }
            let length = Int(dist[i]) + cycle.count
            if best == nil || length < best!.length { best = (i, cycle, length) }
        }
        guard let b = best else { return result }
        func action(_ from: Int, _ n: UInt16) -> System.Action { system.actions(in: state(table, from))[Int(n)] }
        var stem: [System.Action] = []
        var k = b.stemEnd
        while parent[k] >= 0 { stem.append(action(Int(parent[k]), via[k])); k = Int(parent[k]) }
        stem.reverse()
        let cycleActions = b.cycle.map { action($0.from, $0.ordinal) }
        // Concrete steps from the real initial state (monitors included).
        let root = state(table, k)
        var s = system.initialStates.first { system.withoutMonitors($0) == root } ?? system.initialStates[0]
        let initial = s
        var stemSteps: [TraceStep] = [], cycleSteps: [TraceStep] = []
        for a in stem { stemSteps.append(system.describe(a, in: s)); s = system.apply(a, to: s) }
        for a in cycleActions { cycleSteps.append(system.describe(a, in: s)); s = system.apply(a, to: s) }
        result.lasso = Lasso(initial: initial, stem: stem, cycle: cycleActions, stemSteps: stemSteps, cycleSteps: cycleSteps)
        return result
    }

    /// The shortest cycle from state `i` back to it over non-progress edges
    /// inside its component: each step as the state it leaves and its
    /// action's ordinal there.
    func shortestCycle(through i: Int, edges: Edges, component: [Int]) -> [(from: Int, ordinal: UInt16)]? {
        var back: [Int: (from: Int, ordinal: UInt16)] = [:]
        var queue = [i], head = 0
        while head < queue.count {
            let u = queue[head]
            head += 1
            for e in edges.range(u) where component[Int(edges.to[e])] == component[i] {
                let to = Int(edges.to[e])
                if to == i {
                    var path = [(from: u, ordinal: edges.ordinal[e])]
                    var w = u
                    while w != i, let p = back[w] { path.append(p); w = p.from }
                    return path.reversed()
                }
                if back[to] == nil {
                    back[to] = (u, edges.ordinal[e])
                    queue.append(to)
                }
            }
        }
        return nil
    }

    /// Tarjan's strongly connected components, iteratively (a recursion as
    /// deep as the graph would overflow the stack): the component of each node.
    static func components(_ edges: Edges) -> [Int] {
        let n = edges.count
        var order = [Int](repeating: -1, count: n), low = [Int](repeating: 0, count: n)
        var onStack = [Bool](repeating: false, count: n), comp = [Int](repeating: -1, count: n)
        var stack: [Int] = [], counter = 0, components = 0
        for root in 0..<n where order[root] < 0 {
            var work: [(node: Int, next: Int)] = [(root, 0)]
            order[root] = counter; low[root] = counter; counter += 1
            stack.append(root); onStack[root] = true
            while let (v, next) = work.last {
                let r = edges.range(v)
                if next < r.count {
                    work[work.count - 1].next += 1
                    let w = Int(edges.to[r.lowerBound + next])
                    if order[w] < 0 {
                        order[w] = counter; low[w] = counter; counter += 1
                        stack.append(w); onStack[w] = true
                        work.append((w, 0))
                    } else if onStack[w] {
                        low[v] = min(low[v], order[w])
                    }
                    continue
                }
                work.removeLast()
                if let (u, _) = work.last { low[u] = min(low[u], low[v]) }
                if low[v] == order[v] {
                    while let w = stack.popLast() {
                        onStack[w] = false
                        comp[w] = components
                        if w == v { break }
                    }
                    components += 1
                }
            }
        }
        return comp
    }
}
