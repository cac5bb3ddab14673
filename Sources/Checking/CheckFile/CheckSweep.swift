import Foundation
import MemoryModel
public import Sweep

/// A check file run as a sweep (`cocomem sweep CHECKFILE`): a swarm's
/// searches are its points, one per seed (point index = the seed's position
/// in `swarm.seeds`), so `--shard I/N`, `cocomem results merge` and
/// `scripts/slurm-sweep.sh` spread them over machines or a Slurm array as
/// they do any sweep's points. A breadth-first check file is a sweep of one
/// point.
///
/// Each point's row (`Row`, the results database's `points` table):
/// - scenario columns: `check_model`, `check_parameters` (`key=value`
///   sorted), `check_search`, `check_symmetry`, `check_seed` (swarm),
///   `check_max_depth`, `check_max_states_per_search` (swarm);
/// - figures: `check_states`, `check_transitions`, `check_depth_reached`,
///   `check_violations` (how many invariants broke) and, per invariant the
///   model checks, `check_trace_<invariant>` (the shortest trace's steps;
///   NULL when not broken);
/// - `outcome`: `ok`, or `violated: NAME, NAME` (`outcome_kind` `violated`).
///
/// A row depends only on its point (the seed's search is deterministic),
/// so rows are the same whatever `jobs`, and the shards' rows merged are
/// the single run's.
public struct CheckSweep: Sendable {
    public let file: CheckFile
    /// The file's text, for the `runs` table.
    public let text: String

    public init(text: String, name: String) throws {
        self.text = text
        file = try CheckFile.parse(text, name: name)
    }

    /// Whether `text` is a check file (its top-level mapping has `model:`,
    /// a key no scenario or sweep file has) rather than a sweep file.
    public static func isCheckFile(_ text: String) -> Bool {
        text.split(separator: "\n").contains { $0.hasPrefix("model:") }
    }

    /// The points: one per seed for a swarm, one for a breadth-first search.
    public var count: Int { file.search == .swarm ? file.swarmSeeds.count : 1 }

    /// The check file of point `i`: the swarm with that seed alone.
    func pointFile(_ i: Int) -> CheckFile {
        var f = file
        if f.search == .swarm { f.swarmSeeds = [f.swarmSeeds[i]] }
        return f
    }

    /// What identifies a point's result, whatever the file's comments,
    /// key order or seed list around it.
    func identity(_ i: Int) -> [String] {
        let f = pointFile(i)
        var parts = ["check", f.model, parameters, "search=\(f.search.rawValue)", "symmetry=\(f.symmetry)"]
        if f.search == .swarm {
            parts += ["seed=\(f.swarmSeeds[0])", "max-depth=\(f.swarmMaxDepth)", "max-states-per-search=\(f.swarmMaxStates)"]
        } else {
            parts += ["por=\(f.partialOrder)", "hash-compaction=\(f.hashCompaction)", "max-depth=\(f.maxDepth)", "max-states=\(f.maxStates)",
                      "stop-at-first-violation=\(f.stopAtFirstViolation)"]
        }
        return parts + [CocomemVersion.current]
    }

    var parameters: String { file.parameters.values.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",") }

    /// Runs this shard's points (all without one) on `jobs` threads; a
    /// point whose key `existing` knows is not run again.
    /// - Returns: the rows in point order, and which were run now.
    /// - Throws: the model's error for a bad parameter (before any point runs).
    /// - Complexity: one swarm search (or the whole search) per point.
    public func run(shard: Shard?, jobs: Int, existing: @escaping @Sendable (String) -> Row? = { _ in nil },
                    onPointCompleted: (@Sendable (Int) -> Void)? = nil) throws -> (rows: [Row], isNew: [Bool]) {
        // A bad parameter is one error, not a failed row per point.
        guard let entry = CheckModels.entry(file.model) else { throw CocomemError(.invalidScenario, "\(file.name): unknown model '\(file.model)'") }
        let points = (0..<count).filter { shard?.contains($0) ?? true }
        if let first = points.first, file.search == .swarm {
            var probe = pointFile(first)
            probe.swarmMaxStates = 1
            probe.swarmMaxDepth = 1
            _ = try CheckModels.run(probe)
        }
        let me = self
        let out = parallelMap(points.count, jobs: jobs) { k -> Swift.Result<(Row, Bool), CocomemError> in
            let i = points[k]
            let key = StableHash.key(me.identity(i))
            if let row = existing(key) { onPointCompleted?(i); return .success((row, false)) }
            do {
                let report = try CheckModels.run(me.pointFile(i))
                onPointCompleted?(i)
                return .success((me.row(report, point: i, key: key, invariants: entry.invariants), true))
            } catch let e as CocomemError { return .failure(e) } catch { return .failure(CocomemError(.invalidScenario, "\(error)")) }
        }
        var rows: [Row] = [], isNew: [Bool] = []
        for r in out {
            let (row, new) = try r.get()
            rows.append(row)
            isNew.append(new)
        }
        return (rows, isNew)
    }

    /// Column of an invariant's shortest trace length.
    public static func traceColumn(_ invariant: String) -> String { Row.column("check_trace_" + invariant) }

    func row(_ r: CheckReport, point: Int, key: String, invariants: [String]) -> Row {
        var row = Row()
        let broken = r.violations.map(\.invariant)
        let outcome = broken.isEmpty ? "ok" : "violated: " + broken.joined(separator: ", ")
        row.append("key", .text(key))
        row.append("point", .int(Int64(point)))
        row.append("cocomem_version", .text(CocomemVersion.current))
        row.append("calibration_hash", .text(""))
        row.append("outcome", .text(outcome))
        row.append("outcome_kind", .text(Row.outcomeKind(outcome)))
        let f = pointFile(point)
        var scenario: [(String, Cell)] = [("check_model", .text(f.model)), ("check_parameters", .text(parameters)),
                                          ("check_search", .text(f.search.rawValue)), ("check_symmetry", .text(f.symmetry ? "on" : "off"))]
        if f.search == .swarm {
            scenario += [("check_seed", .int(Int64(f.swarmSeeds[0]))), ("check_max_depth", .int(Int64(f.swarmMaxDepth))),
                         ("check_max_states_per_search", .int(Int64(f.swarmMaxStates)))]
        } else {
            scenario += [("check_max_depth", .int(Int64(f.maxDepth))), ("check_max_states", .int(Int64(f.maxStates)))]
        }
        for (c, v) in scenario { row.append(c, v) }
        row.scenarioColumns = Set(scenario.map(\.0))
        row.append("check_states", .int(Int64(r.states)))
        row.append("check_transitions", .int(Int64(r.transitions)))
        row.append("check_depth_reached", .int(Int64(r.depthReached)))
        row.append("check_complete", .text(r.complete ? "yes" : "no"))
        row.append("check_violations", .int(Int64(broken.count)))
        for inv in invariants {
            let steps = r.violations.first { $0.invariant == inv }?.steps.count
            row.append(Self.traceColumn(inv), steps.map { .int(Int64($0)) } ?? .null)
        }
        return row
    }

    /// The violations a check sweep's rows found, across its points: per
    /// invariant, how many searches broke it and the shortest trace (the
    /// lowest seed on a tie), as `cocomem check` merges a swarm. Nil when
    /// no row is a check row.
    /// - Complexity: O(rows × columns).
    public static func summary(_ rows: [Row]) -> String? {
        let checks = rows.filter { $0["check_model"] != nil && $0["check_model"] != .null }
        guard !checks.isEmpty else { return nil }
        var best: [String: (steps: Int64, seed: String, count: Int)] = [:]
        var order: [String] = []
        for r in checks {
            guard case .text(let outcome)? = r["outcome"], outcome.hasPrefix("violated: ") else { continue }
            let seed = (r["check_seed"] ?? .null).text
            for name in outcome.dropFirst("violated: ".count).components(separatedBy: ", ") {
                guard case .int(let n)? = r[traceColumn(name)] else { continue }
                if let b = best[name] {
                    let better = n < b.steps || (n == b.steps && (Int64(seed) ?? 0) < (Int64(b.seed) ?? 0))
                    best[name] = better ? (n, seed, b.count + 1) : (b.steps, b.seed, b.count + 1)
                } else {
                    best[name] = (n, seed, 1)
                    order.append(name)
                }
            }
        }
        let states = checks.reduce(Int64(0)) { acc, r in acc + ((r["check_states"]?.number).map { Int64($0) } ?? 0) }
        var s = "check: \(checks.count) search\(checks.count == 1 ? "" : "es"), \(states) states stored in all"
        if order.isEmpty { return s + ", violations: none\n" }
        s += ", violations:\n"
        for name in order.sorted() {
            let b = best[name]!
            s += "  \(name): \(b.count) search\(b.count == 1 ? "" : "es"), shortest trace \(b.steps) steps\(b.seed.isEmpty ? "" : " (seed \(b.seed))")\n"
        }
        return s
    }
}
