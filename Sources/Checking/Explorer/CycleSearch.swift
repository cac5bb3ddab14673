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
    }

    public let system: System
    public let maxStates: Int

    public init(_ system: System, maxStates: Int = 5_000_000) {
        self.system = system
        self.maxStates = maxStates
    }

    /// - Complexity: O(states + transitions) for steps 1 and 2; step 3 is
    ///   O(component size) per candidate, stopping early.
    public func run() -> Result {
        var result = Result()
        var index: [System.State: Int] = [:]
        var states: [System.State] = []
        var dist: [Int] = [], parent: [Int] = [], via: [System.Action?] = []
        var edges: [[(to: Int, action: System.Action)]] = []
        for s0 in system.initialStates {
            let s = system.withoutMonitors(s0)
            guard index[s] == nil else { continue }
            index[s] = states.count
            states.append(s); dist.append(0); parent.append(-1); via.append(nil); edges.append([])
        }
        var head = 0
        while head < states.count {
            let i = head
            head += 1
            let s = states[i]
            for a in system.actions(in: s) {
                result.transitions += 1
                let t = system.withoutMonitors(system.apply(a, to: s))
                let j: Int
                if let k = index[t] { j = k } else {
                    guard states.count < maxStates else { result.complete = false; continue }
                    j = states.count
                    index[t] = j
                    states.append(t); dist.append(dist[i] + 1); parent.append(i); via.append(a); edges.append([])
                }
                if !system.isProgress(a, in: s) { edges[i].append((j, a)) }
            }
        }
        result.states = states.count
        let component = Self.components(edges)
        var best: (stemEnd: Int, cycle: [System.Action], length: Int)?
        // States are stored in breadth-first order: by distance.
        for i in states.indices {
            if let b = best, dist[i] >= b.length { break }
            guard edges[i].contains(where: { component[$0.to] == component[i] }) else { continue }
            guard let cycle = shortestCycle(through: i, edges: edges, component: component) else { continue }
            let length = dist[i] + cycle.count
            if best == nil || length < best!.length { best = (i, cycle, length) }
        }
        guard let b = best else { return result }
        var stem: [System.Action] = []
        var k = b.stemEnd
        while parent[k] >= 0, let a = via[k] { stem.append(a); k = parent[k] }
        stem.reverse()
        // Concrete steps from the real initial state (monitors included).
        var s = system.initialStates.first { system.withoutMonitors($0) == states[k] } ?? system.initialStates[0]
        let initial = s
        var stemSteps: [TraceStep] = [], cycleSteps: [TraceStep] = []
        for a in stem { stemSteps.append(system.describe(a, in: s)); s = system.apply(a, to: s) }
        for a in b.cycle { cycleSteps.append(system.describe(a, in: s)); s = system.apply(a, to: s) }
        result.lasso = Lasso(initial: initial, stem: stem, cycle: b.cycle, stemSteps: stemSteps, cycleSteps: cycleSteps)
        return result
    }

    /// The shortest cycle from state `i` back to it over non-progress edges
    /// inside its component.
    func shortestCycle(through i: Int, edges: [[(to: Int, action: System.Action)]], component: [Int]) -> [System.Action]? {
        var back: [Int: (from: Int, action: System.Action)] = [:]
        var queue = [i], head = 0
        while head < queue.count {
            let u = queue[head]
            head += 1
            for e in edges[u] where component[e.to] == component[i] {
                if e.to == i {
                    var path = [e.action]
                    var w = u
                    while w != i, let p = back[w] { path.append(p.action); w = p.from }
                    return path.reversed()
                }
                if back[e.to] == nil {
                    back[e.to] = (u, e.action)
                    queue.append(e.to)
                }
            }
        }
        return nil
    }

    /// Tarjan's strongly connected components, iteratively (a recursion as
    /// deep as the graph would overflow the stack): the component of each node.
    static func components(_ edges: [[(to: Int, action: System.Action)]]) -> [Int] {
        let n = edges.count
        var order = [Int](repeating: -1, count: n), low = [Int](repeating: 0, count: n)
        var onStack = [Bool](repeating: false, count: n), comp = [Int](repeating: -1, count: n)
        var stack: [Int] = [], counter = 0, components = 0
        for root in 0..<n where order[root] < 0 {
            var work: [(node: Int, next: Int)] = [(root, 0)]
            order[root] = counter; low[root] = counter; counter += 1
            stack.append(root); onStack[root] = true
            while let (v, next) = work.last {
                if next < edges[v].count {
                    work[work.count - 1].next += 1
                    let w = edges[v][next].to
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
