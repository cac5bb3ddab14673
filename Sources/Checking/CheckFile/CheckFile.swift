import Foundation
import MemoryModel
import Simulation
import Yams

/// A `cocomem check` configuration file (docs/CHECKER.md): which model,
/// its parameters, and how to search it.
///
///     model: acceptance-core
///     parameters: {vcpus: 2, ranges: 2, pages-per-range: 2, host-mapping: 2m}
///     search: bfs            # or swarm
///     symmetry: on
///     por: off
///     hash-compaction: off
///     max-depth: 0           # 0: no bound
///     max-states: 0
///     swarm: {seeds: 1-64, max-depth: 200, max-states-per-search: 100000}
public struct CheckFile: Sendable {
    public enum Search: String, Sendable, CaseIterable {
        case bfs, swarm
    }

    public var name: String
    /// The model's registered name (`CheckModels.names`).
    public var model: String
    public var parameters: CheckParameters
    public var search = Search.bfs
    public var symmetry = true
    public var partialOrder = false
    public var hashCompaction = false
    public var maxDepth = 0
    public var maxStates = 0
    public var stopAtFirstViolation = false
    /// Also search for livelocks as cycles (`CycleSearch`, `cycles: on`).
    public var cycles = false
    public var swarmSeeds: [UInt64] = Array(1...16)
    public var swarmMaxDepth = 200
    public var swarmMaxStates = 100_000
    /// `I/N` when `cocomem check --shard` kept only a share of the seeds.
    public var shard: String?

    static let topKeys = ["model", "parameters", "search", "symmetry", "por", "hash-compaction", "max-depth", "max-states", "stop-at-first-violation", "cycles", "swarm"]

    /// Reads a configuration.
    /// - Throws: `.invalidScenario` naming the file and the key.
    public static func parse(_ text: String, name: String = "check file") throws -> CheckFile {
        let node: Node?
        let normalized = text.replacingOccurrences(of: "\r\n", with: "\n")
        try YAMLKeyGuard.check(normalized, name: name)
        do { node = try Yams.compose(yaml: normalized) } catch let e as YamlError {
            throw CocomemError(.invalidScenario, "\(name) \(ScenarioFile.describe(e))")
        }
        guard let map = node?.mapping else {
            throw CocomemError(.invalidScenario, "\(name): the file is empty or not a mapping (expected `model:` and its parameters, docs/CHECKER.md)")
        }
        var top = try CheckParameters(map, name: name, section: nil)
        guard let model = top.values["model"] else { throw CocomemError(.invalidScenario, "\(name): no `model:` (one of \(CheckModels.names.joined(separator: ", ")))") }
        guard CheckModels.names.contains(model) else {
            throw CocomemError(.invalidScenario, "\(name): unknown model '\(model)' (one of \(CheckModels.names.joined(separator: ", ")))")
        }
        let params = try map["parameters"].map { n -> CheckParameters in
            guard let m = n.mapping else { throw CocomemError(.invalidScenario, "\(name): `parameters:` must be a mapping") }
            return try CheckParameters(m, name: name, section: "parameters")
        } ?? CheckParameters(name: name, section: "parameters")
        var f = CheckFile(name: name, model: model, parameters: params)
        _ = top.take("model")
        f.search = try top.choice("search", default: .bfs)
        f.symmetry = try top.bool("symmetry", default: true)
        f.partialOrder = try top.bool("por", default: false)
        f.hashCompaction = try top.bool("hash-compaction", default: false)
        f.maxDepth = try top.int("max-depth", default: 0, 0...1_000_000)
        f.maxStates = try top.int("max-states", default: 0, 0...2_000_000_000)
        f.stopAtFirstViolation = try top.bool("stop-at-first-violation", default: false)
        f.cycles = try top.bool("cycles", default: false)
        if let s = map["swarm"] {
            guard let m = s.mapping else { throw CocomemError(.invalidScenario, "\(name): `swarm:` must be a mapping") }
            var sw = try CheckParameters(m, name: name, section: "swarm")
            if let seeds = sw.take("seeds") { f.swarmSeeds = try Self.seeds(seeds, name: name) }
            f.swarmMaxDepth = try sw.int("max-depth", default: 200, 1...1_000_000)
            f.swarmMaxStates = try sw.int("max-states-per-search", default: 100_000, 1...2_000_000_000)
            try sw.finish()
        }
        _ = top.take("parameters")
        _ = top.take("swarm")
        try top.finish()
        if f.partialOrder && f.hashCompaction {
            throw CocomemError(.invalidScenario, "\(name): `por: on` needs the stored states to re-explore revisited ones; it cannot be combined with `hash-compaction: on`")
        }
        if f.cycles && f.search == .swarm {
            throw CocomemError(.invalidScenario, "\(name): `cycles: on` searches every reachable state for a livelock cycle; it needs `search: bfs`")
        }
        if f.search == .swarm && (f.partialOrder || f.hashCompaction || f.maxStates > 0 || f.maxDepth > 0) {
            throw CocomemError(.invalidScenario, "\(name): `search: swarm` takes its bounds from `swarm:` (max-depth, max-states-per-search); por, hash-compaction, max-depth and max-states are for `search: bfs`")
        }
        return f
    }

    /// `1-64`, `7`, or `[1, 5, 9]` (a flow list arrives as `1,5,9`).
    static func seeds(_ text: String, name: String) throws -> [UInt64] {
        let bad = CocomemError(.invalidScenario, "\(name): swarm.seeds: '\(text)' is not a seed, a range a-b or a list of seeds")
        var out: [UInt64] = []
        for part in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) {
            let ends = part.split(separator: "-", omittingEmptySubsequences: false)
            guard let a = UInt64(ends[0]) else { throw bad }
            if ends.count == 1 { out.append(a); continue }
            guard ends.count == 2, let b = UInt64(ends[1]), a <= b else { throw bad }
            guard b - a < 1_000_000, out.count + Int(b - a) < 1_000_000 else {
                throw CocomemError(.invalidScenario, "\(name): swarm.seeds: more than 1,000,000 searches")
            }
            out += Array(a...b)
        }
        guard !out.isEmpty else { throw bad }
        return out
    }
}

/// The scalar keys of one section of a check file, taken one by one; keys
/// nobody took are an error (a typo must not be silently ignored).
public struct CheckParameters: Sendable {
    public var values: [String: String] = [:]
    let name: String
    let section: String?

    init(name: String, section: String?) {
        self.name = name
        self.section = section
    }

    init(_ map: Node.Mapping, name: String, section: String?) throws {
        self.init(name: name, section: section)
        for (k, v) in map {
            guard let key = k.scalar?.string else { throw CocomemError(.invalidScenario, "\(name): a key that is not a string") }
            if section == nil && (key == "parameters" || key == "swarm") { values[key] = ""; continue }
            if let s = v.scalar?.string {
                values[key] = s
            } else if let seq = v.sequence, section == "swarm" {
                values[key] = try seq.map { n -> String in
                    guard let s = n.scalar?.string else { throw CocomemError(.invalidScenario, "\(name): swarm.\(key): a list of numbers") }
                    return s
                }.joined(separator: ",")
            } else {
                throw CocomemError(.invalidScenario, "\(name): \(path(key)) must be a single value")
            }
        }
    }

    func path(_ key: String) -> String { section.map { "\($0).\(key)" } ?? key }

    /// The value of `key`, removed so `finish` does not complain about it.
    public mutating func take(_ key: String) -> String? { values.removeValue(forKey: key) }

    public mutating func int(_ key: String, default d: Int, _ range: ClosedRange<Int>) throws -> Int {
        guard let s = take(key) else { return d }
        guard let v = Int(s), range.contains(v) else {
            throw CocomemError(.invalidScenario, "\(name): \(path(key)): '\(s)' is not a number in \(range.lowerBound)...\(range.upperBound)")
        }
        return v
    }

    public mutating func bool(_ key: String, default d: Bool) throws -> Bool {
        guard let s = take(key) else { return d }
        switch s {
        case "on", "true", "yes": return true
        case "off", "false", "no": return false
        default: throw CocomemError(.invalidScenario, "\(name): \(path(key)): '\(s)' is not on or off")
        }
    }

    public mutating func choice<E: RawRepresentable & CaseIterable>(_ key: String, default d: E) throws -> E where E.RawValue == String {
        guard let s = take(key) else { return d }
        guard let v = E(rawValue: s) else {
            throw CocomemError(.invalidScenario, "\(name): \(path(key)): '\(s)' is not one of \(E.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return v
    }

    /// Refuses any key not taken.
    public func finish() throws {
        if let k = values.keys.sorted().first {
            throw CocomemError(.invalidScenario, "\(name): unknown key '\(path(k))'")
        }
    }
}
