import Foundation
public import MemoryModel

/// The models `cocomem check` knows, by the name a check file gives in
/// `model:`. Adding a model is one entry here: its name, the invariants it
/// registers, and a factory that reads its `parameters:` (taking each key
/// it knows; the rest are refused).
public enum CheckModels {
    public struct Entry: Sendable {
        public let name: String
        public let summary: String
        /// The registered names of the invariants the model checks.
        public let invariants: [String]
        /// Builds the model from its parameters and runs the file's search
        /// on it, with the engine specialized for the model's own types
        /// (a search through an existential would run several times slower).
        let run: @Sendable (CheckFile, (any ProgressReporter)?) throws -> CheckReport

        /// An entry for a model of type `S`: `make` takes its keys from
        /// `parameters:` (the rest are refused).
        /// `scenario`, when given, writes a counterexample (its actions and
        /// violation) as a scenario file for `cocomem run`; its first
        /// argument is the check file's name.
        public static func model<S: TransitionSystem & Sendable>(_ name: String, summary: String, invariants: [String],
                                                      make: @escaping @Sendable (inout CheckParameters) throws -> S,
                                                      scenario: (@Sendable (String, S, [S.Action], Violation) -> String)? = nil,
                                                      refuses: (@Sendable (CheckFile) -> String?)? = nil) -> Entry {
            Entry(name: name, summary: summary, invariants: invariants) { file, progress in
                if let why = refuses?(file) { throw CocomemError(.invalidScenario, "\(file.name): model \(name): \(why)") }
                var p = file.parameters
                let system: S
                do { system = try make(&p) } catch let e as CocomemError {
                    // CheckParameters already names the file; the model's own checks do not.
                    throw e.message.hasPrefix(file.name + ":") ? e : CocomemError(.invalidScenario, "\(file.name): \(e.message)")
                }
                try p.finish()
                return CheckRunner(file: file, invariants: invariants, progress: progress)
                    .run(system, scenario: scenario.map { f in { f(file.name, $0, $1, $2) } })
            }
        }
    }

    public static let registry: [Entry] = [
        .model("acceptance-core",
               summary: "a TDX guest's accept_memory() on 2-3 vCPUs against a host that AUGs, splits and converts (AcceptanceCore)",
               invariants: AcceptanceCore.invariants.map(\.name),
               make: { p in try AcceptanceCore(AcceptanceCore.Configuration(&p)) },
               scenario: { file, m, actions, v in m.scenarioFile(actions, violation: v, checkFile: file) }),
        .replayed("host-conversion", summary: "seed 004's conversion policies on the real KVM/TDX host model, with injected faults (HostModels.Conversion)"),
        .replayed("kexec", summary: "seed 001's kexec load and reboot on the real guest kernel model (KexecModel)"),
        .model("accept-memory",
               summary: "accept_memory() on 1-3 guest vCPUs at the kernel's lock steps, over the real unaccepted table and KVM/TDX host, by kernel release or with a planted fault (AcceptMemoryModel)",
               invariants: registeredInvariants,
               make: { p in
                   // ModelCatalog reads the keys (and refuses unknown ones).
                   let values = p.values
                   for k in values.keys { _ = p.take(k) }
                   return try AcceptMemoryModel(ModelCatalog.acceptMemoryConfig(values))
               },
               scenario: { file, m, actions, v in m.scenarioFile(actions, violation: v, checkFile: file) },
               refuses: { f in
                   // States are replayed paths: no fixed-width encoding to
                   // compact, and no progress labels for a cycle search.
                   f.hashCompaction ? "hash-compaction is for packed models (states here are replayed paths, stored whole)"
                       : f.cycles ? "cycles is for packed models (a livelock here is a refused AUG, checked as guest.accept-completes)" : nil
               }),
        .replayed("adversarial-host", summary: "a host that removes, re-adds, remaps or refuses pages, against a guest that trusts ALREADY_ACCEPTED or not (HostModels)"),
    ]

    public static var names: [String] { registry.map(\.name) }

    /// The invariants a replayed model is checked against: the whole
    /// registry (`InvariantRegistry.all`).
    static var registeredInvariants: [String] { InvariantRegistry.all.map(\.name) }

    public static func entry(_ name: String) -> Entry? { registry.first { $0.name == name } }

    /// Builds the file's model and searches it as the file says.
    /// - Throws: `.invalidScenario` for a parameter the model refuses.
    public static func run(_ file: CheckFile, progress: (any ProgressReporter)? = nil) throws -> CheckReport {
        guard let entry = entry(file.model) else {
            throw CocomemError(.invalidScenario, "\(file.name): unknown model '\(file.model)' (one of \(names.joined(separator: ", ")))")
        }
        return try entry.run(file, progress)
    }
}

extension CheckModels.Entry {
    /// An entry for a model on the layers' real interfaces
    /// (`ModelCatalog`): its states are paths replayed through the real
    /// layers, explored breadth-first to the depth its own `depth`
    /// parameter gives (`Verdicts.run`). The engine's options (swarm, por,
    /// hash compaction, max-depth, max-states) apply to packed models only
    /// and are refused here rather than ignored.
    static func replayed(_ name: String, summary: String) -> Self {
        Self(name: name, summary: summary, invariants: CheckModels.registeredInvariants) { file, _ in
            guard file.search == .bfs, !file.partialOrder, !file.hashCompaction, file.maxDepth == 0, file.maxStates == 0, !file.cycles else {
                throw CocomemError(.invalidScenario, "\(file.name): model \(name) is explored by replaying paths through the real layers; "
                    + "search, por, hash-compaction, max-depth, max-states and cycles are for the packed models (use the model's own `depth` parameter)")
            }
            let outcome: ModelCatalog.Outcome
            let clock = ContinuousClock()
            let start = clock.now
            do { outcome = try ModelCatalog.explore(model: name, parameters: file.parameters.values) } catch let e as CocomemError {
                throw CocomemError(.invalidScenario, "\(file.name): \(e.message)")
            }
            let elapsed = clock.now - start
            var r = CheckReport(file: file.name, model: name, search: .bfs,
                                settings: [("explored", "by replay through the real layers")] + file.parameters.values.sorted { $0.key < $1.key }.map { ($0.key, $0.value) },
                                invariants: CheckModels.registeredInvariants)
            r.states = outcome.states
            r.transitions = outcome.transitions
            r.depthReached = outcome.depthReached
            r.complete = outcome.complete
            // Wall time of the exploration with its counterexamples' traces
            // (printed only with --timing: the report is otherwise the same on every run).
            r.seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
            r.violations = outcome.findings.map { f in
                // The verdict table's file, its first line naming this command.
                let body = f.scenarioFile.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).dropFirst().first.map(String.init) ?? ""
                return .init(invariant: f.invariant, detail: f.detail,
                             steps: f.trace.map { TraceStep(actor: $0.step.actor, call: "\($0.step.call): \($0.step.command.trimmingCharacters(in: .whitespaces))", result: $0.observed, state: "") },
                             scenarioFile: "# cocomem scenario: the shortest counterexample `cocomem check \(file.name)` found (docs/CHECKER.md)\n" + body)
            }
            return r
        }
    }
}

extension AcceptanceCore.Configuration {
    /// Reads the `acceptance-core` parameters (docs/CHECKER.md).
    public init(_ p: inout CheckParameters) throws {
        self.init()
        vcpus = try p.int("vcpus", default: vcpus, 1...3)
        ranges = try p.int("ranges", default: ranges, 1...3)
        pagesPerRange = try p.int("pages-per-range", default: pagesPerRange, 1...4)
        hostMapping = try p.choice("host-mapping", default: hostMapping)
        splits = try p.int("splits", default: splits, 0...15)
        conversions = try p.int("conversions", default: conversions, 0...15)
        zaps = try p.int("zaps", default: zaps, 0...15)
        acceptingList = try p.bool("accepting-list", default: acceptingList)
        alreadyAccepted = try p.choice("already-accepted", default: alreadyAccepted)
        progressBound = try p.int("progress-bound", default: progressBound, 1...30)
        refuseAUG = try p.bool("refuse-aug", default: refuseAUG)
    }
}
