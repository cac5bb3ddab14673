import Foundation
import MemoryModel

/// What `cocomem check` found, model-independent: the counts, the cost,
/// and each violation with its readable trace.
public struct CheckReport: Sendable {
    public struct Found: Sendable {
        public var invariant: String
        public var detail: String
        public var steps: [TraceStep]
        /// The trace as a scenario file `cocomem run` replays (the models on
        /// the real layers' interfaces write their own commands; the
        /// acceptance core's are translated, `AcceptanceCore.hostScenario`),
        /// nil for a model without a translation.
        public var scenarioFile: String?

        public init(invariant: String, detail: String, steps: [TraceStep], scenarioFile: String? = nil) {
            self.invariant = invariant
            self.detail = detail
            self.steps = steps
            self.scenarioFile = scenarioFile
        }

        /// The file name `cocomem check --counterexamples` gives it:
        /// the check file's stem, then the invariant.
        public func fileName(checkFile: String) -> String {
            var stem = checkFile.split(separator: "/").last.map(String.init) ?? checkFile
            for ext in [".yaml", ".yml"] where stem.hasSuffix(ext) { stem = String(stem.dropLast(ext.count)) }
            return "\(stem)-\(invariant.replacingOccurrences(of: ".", with: "-")).yaml"
        }
    }

    public var file: String
    public var model: String
    public var search: CheckFile.Search
    /// `symmetry on, por off, ...` as the search ran.
    public var settings: [(String, String)]
    public var invariants: [String]
    public var states = 0
    public var transitions = 0
    public var depthReached = 0
    public var complete = true
    /// Wall seconds of the search alone.
    public var seconds = 0.0
    public var bytesPerState: Double?
    public var omissionProbability: Double?
    /// Searches run (swarm).
    public var searches: Int?
    public var violations: [Found] = []
    /// With `cycles: on`: whether the cycle search ran, its states, and the
    /// shortest livelock lasso it found (nil: none).
    public var cyclesSearched = false
    public var cycleStates = 0
    /// Bytes the cycle search kept per stored state (`CycleSearch.Result.bytesPerState`).
    public var cycleBytesPerState = 0.0
    public var cycleSearchComplete = true
    public var lasso: (stem: [TraceStep], cycle: [TraceStep])?

    public var statesPerSecond: Double { seconds > 0 ? Double(states) / seconds : 0 }

    /// The plain report. Wall time (`time:`, states a second) only with
    /// `timing`: without it the report is the same on every run and
    /// machine, like every other command's stdout (docs/CLI.md).
    public func text(timing: Bool = false) -> String {
        var s = "check \(file): model \(model), \(search == .bfs ? "breadth-first" : "swarm") search\n"
        s += "  " + settings.map { "\($0.0) \($0.1)" }.joined(separator: ", ") + "\n"
        if let searches { s += "searches:        \(searches)\n" }
        s += "states:          \(states)\(search == .swarm ? " (summed over the searches)" : "")\n"
        s += "transitions:     \(transitions)\n"
        s += "depth reached:   \(depthReached)\n"
        s += "complete:        \(complete ? "yes (every reachable state explored)" : "no (a bound cut the search short: the verdict holds for the part explored)")\n"
        if timing {
            // The replayed models store tens of states a second: millions would read 0.00.
            let rate = statesPerSecond >= 10_000 ? "\(Self.fixed(statesPerSecond / 1e6, 2)) M" : Self.fixed(statesPerSecond, 1)
            s += "time:            \(Self.fixed(seconds, 3)) s (\(rate) states/s)\n"
        }
        if let b = bytesPerState { s += "bytes per state: \(Self.fixed(b, 1))\n" }
        if let p = omissionProbability { s += "hash compaction: a state may have been missed with probability at most \(p == 0 ? "0" : String(describing: p))\n" }
        s += "invariants:      \(invariants.count) checked (\(invariants.joined(separator: ", ")))\n"
        s += cycleText
        if violations.isEmpty {
            s += "violations:      none\n"
            return s
        }
        s += "violations:      \(violations.count)\n"
        for v in violations {
            s += "\n\(v.invariant): \(v.detail)\n"
            s += "  \(search == .bfs ? "shortest " : "")trace, \(v.steps.count) steps:\n"
            for (i, st) in v.steps.enumerated() {
                s += "  \(String(i + 1).leftPad(3)). \(st.actor.description.rightPad(6)) \(st.call)"
                if !st.result.isEmpty { s += " → \(st.result)" }
                s += "\n"
                if !st.state.isEmpty { s += "        \(st.state)\n" }
            }
        }
        return s
    }

    /// The cycle search's lines: none, or the lasso, its steps numbered on
    /// from the stem into the cycle.
    var cycleText: String {
        guard cyclesSearched else { return "" }
        var s = "livelock cycles:  searched \(cycleStates) states (monitors cleared, symmetry off, \(Self.fixed(cycleBytesPerState, 1)) bytes a state)\(cycleSearchComplete ? "" : ", cut by the state bound")"
        guard let l = lasso else { return s + ": no cycle without progress\n" }
        s += ": a cycle on which no accept_memory() returns (spin's non-progress cycle)\n"
        s += "  stem, \(l.stem.count) steps:\n"
        for (i, st) in l.stem.enumerated() { s += Self.stepLine(i + 1, st) }
        s += "  cycle, \(l.cycle.count) steps, back to the state after step \(l.stem.count) (the ACCEPT call counter aside), for ever:\n"
        for (i, st) in l.cycle.enumerated() { s += Self.stepLine(l.stem.count + i + 1, st) }
        return s
    }

    static func stepLine(_ n: Int, _ st: TraceStep) -> String {
        var s = "  \(String(n).leftPad(3)). \(st.actor.description.rightPad(6)) \(st.call)"
        if !st.result.isEmpty { s += " → \(st.result)" }
        s += "\n"
        if !st.state.isEmpty { s += "        \(st.state)\n" }
        return s
    }

    static func fixed(_ x: Double, _ digits: Int) -> String {
        var p = 1.0
        for _ in 0..<digits { p *= 10 }
        let v = (x * p).rounded() / p
        var t = String(v)
        if let dot = t.firstIndex(of: ".") {
            let have = t.distance(from: dot, to: t.endIndex) - 1
            if have < digits { t += String(repeating: "0", count: digits - have) }
        }
        return t
    }
}

extension String {
    func leftPad(_ n: Int) -> String { count >= n ? self : String(repeating: " ", count: n - count) + self }
    func rightPad(_ n: Int) -> String { count >= n ? self : self + String(repeating: " ", count: n - count) }
}

/// Runs one check file's search on a model of any type.
struct CheckRunner {
    let file: CheckFile
    let invariants: [String]
    let progress: (any ProgressReporter)?

    func run<S: TransitionSystem>(_ system: S, scenario: ((S, [S.Action], Violation) -> String)? = nil) -> CheckReport {
        var r = CheckReport(file: file.name, model: file.model, search: file.search, settings: [], invariants: invariants)
        let clock = ContinuousClock()
        let start = clock.now
        switch file.search {
        case .bfs:
            r.settings = [("symmetry", onOff(file.symmetry)), ("por", onOff(file.partialOrder)), ("hash-compaction", onOff(file.hashCompaction)),
                          ("max-depth", file.maxDepth == 0 ? "none" : "\(file.maxDepth)"), ("max-states", file.maxStates == 0 ? "none" : "\(file.maxStates)")]
                + (file.cycles ? [("cycles", "on")] : [])
            let opts = Checker<S>.Options(symmetry: file.symmetry, partialOrder: file.partialOrder, hashCompaction: file.hashCompaction,
                                          maxDepth: file.maxDepth, maxStates: file.maxStates, stopAtFirstViolation: file.stopAtFirstViolation)
            let total = UInt64(file.maxStates > 0 ? file.maxStates : Checker<S>.stateLimit)
            progress?.begin(ProgressTask("checking \(file.model) (breadth-first; of the \(file.maxStates > 0 ? "max-states bound" : "engine's limit"))", total: total, unit: .items("states"), totalIsExact: false))
            var reported = 0
            let res = Checker(system, options: opts).run { partial in
                progress?.advance(by: UInt64(partial.states - reported))
                reported = partial.states
            }
            progress?.end()
            r.states = res.states
            r.transitions = res.transitions
            r.depthReached = res.depthReached
            r.complete = res.complete
            r.bytesPerState = res.bytesPerState
            r.omissionProbability = res.omissionProbability
            r.violations = res.counterexamples.map {
                .init(invariant: $0.violation.invariant, detail: $0.violation.detail, steps: $0.steps, scenarioFile: scenario?(system, $0.actions, $0.violation))
            }
            if file.cycles {
                let c = CycleSearch(system, maxStates: file.maxStates > 0 ? file.maxStates : 5_000_000).run()
                r.cyclesSearched = true
                r.cycleStates = c.states
                r.cycleBytesPerState = c.bytesPerState
                r.cycleSearchComplete = c.complete
                r.lasso = c.lasso.map { ($0.stemSteps, $0.cycleSteps) }
            }
        case .swarm:
            r.settings = [("symmetry", onOff(file.symmetry)), ("seeds", "\(file.swarmSeeds.count)"), ("max-depth", "\(file.swarmMaxDepth)"),
                          ("max-states-per-search", "\(file.swarmMaxStates)")] + (file.shard.map { [("shard", $0)] } ?? [])
            let opts = Swarm<S>.Options(seeds: file.swarmSeeds, maxDepth: file.swarmMaxDepth, maxStatesPerSearch: file.swarmMaxStates, symmetry: file.symmetry)
            progress?.begin(ProgressTask("checking \(file.model) (swarm)", total: UInt64(file.swarmSeeds.count), unit: .items("searches")))
            let res = Swarm(system, options: opts).run { _ in progress?.advance(by: 1) }
            progress?.end()
            r.searches = res.searches.count
            r.states = res.states
            r.transitions = res.transitions
            r.depthReached = res.depthReached
            r.complete = false
            r.violations = res.counterexamples.map {
                .init(invariant: $0.violation.invariant, detail: $0.violation.detail, steps: $0.steps, scenarioFile: scenario?(system, $0.actions, $0.violation))
            }
        }
        let d = clock.now - start
        r.seconds = Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
        return r
    }

    func onOff(_ b: Bool) -> String { b ? "on" : "off" }
}
