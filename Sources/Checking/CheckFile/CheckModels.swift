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
        public static func model<S: TransitionSystem & Sendable>(_ name: String, summary: String, invariants: [String],
                                                      make: @escaping @Sendable (inout CheckParameters) throws -> S) -> Entry {
            Entry(name: name, summary: summary, invariants: invariants) { file, progress in
                var p = file.parameters
                let system: S
                do { system = try make(&p) } catch let e as CocomemError {
                    throw CocomemError(.invalidScenario, "\(file.name): \(e.message)")
                }
                try p.finish()
                return CheckRunner(file: file, invariants: invariants, progress: progress).run(system)
            }
        }
    }

    public static let registry: [Entry] = [
        .model("acceptance-core",
               summary: "a TDX guest's accept_memory() on 2-3 vCPUs against a host that AUGs, splits and converts (AcceptanceCore)",
               invariants: AcceptanceCore.invariants.map(\.name),
               make: { p in try AcceptanceCore(AcceptanceCore.Configuration(&p)) }),
    ]

    public static var names: [String] { registry.map(\.name) }

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
    }
}
