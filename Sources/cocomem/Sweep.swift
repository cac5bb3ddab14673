import ArgumentParser
import Checking
import Foundation
import MemoryModel
import Reports
import Results
import Simulation
import Sweep

/// `cocomem sweep FILE`: runs every point of a sweep file into the results
/// database and prints the compact table (and the find answers).
struct SweepCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep",
        abstract: "Run a sweep file (a scenario file whose values may be lists or ranges) into a SQLite results database.",
        discussion: "docs/SCENARIOS.md (Sweeps) has the grammar, docs/RESULTS.md the database. Points whose key the database has are not run again. The rows are the same whatever --jobs; --shard I/N runs point index mod N == I-1 (with find:, the searches' groups), and 'cocomem results merge' combines the shards.")
    @Argument(help: "Sweep file (YAML)") var file: String
    @Option(help: "Results database (SQLite; created if missing)") var db = "results.db"
    @Option(help: "Points run at once (default: the number of cores)") var jobs: Int?
    @Option(help: "Run only the I-th of N shares of the points (1-based: 1/4 ... 4/4)") var shard: String?
    @Flag(help: "Run a sweep of more points than its limit (sweep.max-points, default 100000)") var yes = false
    @Flag(help: "Print on stderr the wall time, the time inside the model (summed over threads) and the rest (expansion, scheduling, SQLite) per point: for benchmarks; nothing of it goes into the database") var timings = false
    @OptionGroup var output: JSONOption
    @OptionGroup var progress: ProgressOption
    @OptionGroup var report: ReportOption
    @Option(name: .customLong("plot"), help: ArgumentHelp("A figure of --report: Y against X, one line per value of BY (repeatable; default: total boot time against each numeric axis, one line per combination of the others)", valueName: "X,Y[,BY...]"))
    var plots: [String] = []

    func run() throws {
        let started = DispatchTime.now().uptimeNanoseconds
        // A check file (`model:`): a swarm's searches are the points.
        if file != "-", let text = try? readTextFile(file, what: "sweep file", maxBytes: 1 << 20), CheckSweep.isCheckFile(text) {
            try runChecks(text)
            return
        }
        let sweep = try SweepFile.load(path: file)
        try sweep.checkLimit(yes: yes)
        let shard = try shard.map(Shard.parse)
        if let jobs, jobs < 1 { throw ValidationError("--jobs must be at least 1") }
        var plotSpecs = try plots.map(PlotSpec.parse)
        // A plot is a figure of the page: without --report it would be silently dropped.
        if !plots.isEmpty, report.report == nil { throw ValidationError("--plot draws on the --report page; give --report FILE.html") }
        try report.check(inputs: [file, db])
        let existing = try ResultsDatabase.read(path: db)
        var byKey: [String: Row] = [:]
        for r in existing.rows { byKey[r.key] = r }
        let known = byKey
        let line: SweepProgress? = progress.reporter().map { SweepProgress($0) }
        var pointDone: (@Sendable (Int, Row) -> Void)? = nil
        if let line { pointDone = { _, _ in line.pointDone() } }
        var runner = SweepRunner(file: sweep, jobs: jobs ?? ProcessInfo.processInfo.activeProcessorCount, shard: shard,
                                 existing: { known[$0] }, checkedHostRun: { try $0.runChecked() },
                                 onPointCompleted: pointDone)
        line?.begin(SweepProgress.task(sweep, shard: shard))
        let result: SweepRunner.Result
        do {
            if report.report != nil, !plotSpecs.isEmpty {
                // The plots' columns resolve before the sweep runs: on the rows
                // of the first point of each platform, run first and kept.
                let probe = try runner.probe()
                plotSpecs = try SweepReport.resolve(plotSpecs, columnsOf: probe.rows.keys.sorted().compactMap { probe.rows[$0] })
                runner.done = probe.rows
                runner.doneNew = probe.new
            }
            result = try runner.run()
            line?.end()
        } catch { line?.end(); throw error }
        let fresh = zip(result.rows, result.isNew).filter(\.1).map(\.0)
        let hashes = Set(result.rows.map { ($0["calibration_hash"] ?? .null).text }).sorted().joined(separator: ",")
        let record = ResultsDatabase.RunRecord(cocomemVersion: CocomemVersion.current, calibrationHash: hashes, sweepFile: sweep.text,
                                               shard: shard?.description ?? "", points: result.rows.count, newPoints: fresh.count)
        let added = try ResultsDatabase.append(path: db, runs: [record], rows: fresh)
        if report.report != nil {
            let html = try SweepReport.html(rows: result.rows, plots: plotSpecs.isEmpty ? SweepReport.defaultPlots(result.rows) : plotSpecs, title: "cocomem sweep \(URL(fileURLWithPath: file).lastPathComponent)")
            try report.write(html)
        }
        if timings {
            let wall = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
            let n = Double(max(1, result.rows.count))
            let threads = Double(jobs ?? ProcessInfo.processInfo.activeProcessorCount)
            let machinery = max(0, wall * min(threads, n) - result.modelSeconds)
            FileHandle.standardError.write(Data(String(format: "timings: %d points, wall %.3f s, model %.3f s (summed over threads, %.3f ms/point), machinery %.3f ms/point (thread-seconds outside the model)\n",
                                                        result.rows.count, wall, result.modelSeconds, result.modelSeconds / n * 1000, machinery / n * 1000).utf8))
        }
        if output.json {
            let answers: [JSON] = result.answers.map { a in
                .object([("group", .object(a.group.map { ($0, .string($1)) })), ("value", a.value.map { .string($0) } ?? .null),
                         ("reason", .string(a.reason)), ("not_monotone", .array(a.violations.map { .string($0) }))])
            }
            let rows = ResultsExport.json(ResultsDatabase.Contents(runs: [], rows: result.rows, columns: []))
            print("{\"db\": \(JSON.string(db).serialized()), \"points\": \(result.rows.count), \"new_points\": \(added), \"find\": \(JSON.array(answers).serialized(pretty: false)), \"rows\": \(rows.trimmingCharacters(in: CharacterSet.newlines))}")
            return
        }
        print(CompactTable.render(result.rows), terminator: "")
        if let find = sweep.find {
            print(CompactTable.render(result.answers, find: find, axis: sweep.axes[find.axis].column), terminator: "")
        }
        print("\(result.rows.count) points (\(added) new) in \(db)\(shard.map { ", shard \($0)" } ?? "")")
    }
}

extension SweepCommand {
    /// `cocomem sweep CHECKFILE`: one point per swarm search (docs/CHECKER.md,
    /// "Swarm as a sweep"), into the same database, shards and merge as any sweep.
    func runChecks(_ text: String) throws {
        guard report.report == nil, plots.isEmpty else {
            throw CocomemError(.invalidArgument, "--report and --plot draw a sweep's boot figures; \(file) is a check file (model:), whose rows have none")
        }
        let checks = try CheckSweep(text: text, name: file)
        if checks.count > Int(SweepFile.defaultMaxPoints) && !yes {
            throw CocomemError(.invalidScenario, "\(file): the check sweep has \(checks.count) searches, more than the limit of \(SweepFile.defaultMaxPoints); pass --yes to run them all")
        }
        let shard = try shard.map(Shard.parse)
        if let jobs, jobs < 1 { throw ValidationError("--jobs must be at least 1") }
        let existing = try ResultsDatabase.read(path: db)
        var byKey: [String: Row] = [:]
        for r in existing.rows { byKey[r.key] = r }
        let known = byKey
        let line: SweepProgress? = progress.reporter().map { SweepProgress($0) }
        let n = shard.map { s in checks.count / s.count + (s.index - 1 < checks.count % s.count ? 1 : 0) } ?? checks.count
        line?.begin(ProgressTask("check sweep \(URL(fileURLWithPath: file).lastPathComponent)", total: UInt64(n), unit: .items("searches")))
        let result: (rows: [Row], isNew: [Bool])
        var done: (@Sendable (Int) -> Void)? = nil
        if let line { done = { _ in line.pointDone() } }
        let threads = jobs ?? ProcessInfo.processInfo.activeProcessorCount
        do {
            result = try checks.run(shard: shard, jobs: threads, existing: { known[$0] }, onPointCompleted: done)
            line?.end()
        } catch { line?.end(); throw error }
        let fresh = zip(result.rows, result.isNew).filter(\.1).map(\.0)
        let record = ResultsDatabase.RunRecord(cocomemVersion: CocomemVersion.current, calibrationHash: "", sweepFile: text,
                                               shard: shard?.description ?? "", points: result.rows.count, newPoints: fresh.count)
        let added = try ResultsDatabase.append(path: db, runs: [record], rows: fresh)
        if output.json {
            let rows = ResultsExport.json(ResultsDatabase.Contents(runs: [], rows: result.rows, columns: []))
            print("{\"db\": \(JSON.string(db).serialized()), \"points\": \(result.rows.count), \"new_points\": \(added), \"rows\": \(rows.trimmingCharacters(in: CharacterSet.newlines))}")
            return
        }
        print(CompactTable.render(result.rows), terminator: "")
        if let s = CheckSweep.summary(result.rows) { print(s, terminator: "") }
        print("\(result.rows.count) points (\(added) new) in \(db)\(shard.map { ", shard \($0)" } ?? "")")
    }
}

/// The sweep's progress line: points done of the points this shard runs.
/// `SweepRunner` reports a point from the worker thread that completed it,
/// in completion order; a reporter takes calls from one thread at a time,
/// so they pass through a lock. Counting is order-free, so the line does
/// not depend on which thread finished first.
final class SweepProgress: @unchecked Sendable {
    let reporter: any ProgressReporter
    let lock = NSLock()
    init(_ reporter: any ProgressReporter) { self.reporter = reporter }

    /// The grid's points of this shard; with `find:` the bisection visits
    /// fewer than its axis has, so the total is an upper bound (no ETA).
    static func task(_ sweep: SweepFile, shard: Shard?) -> ProgressTask {
        // Point indices i with i mod N == I - 1.
        let n = shard.map { s in sweep.count / s.count + (s.index - 1 < sweep.count % s.count ? 1 : 0) } ?? sweep.count
        return ProgressTask("sweep \(URL(fileURLWithPath: sweep.name).lastPathComponent)", total: UInt64(n), unit: .items("points"), totalIsExact: sweep.find == nil)
    }
    func begin(_ task: ProgressTask) { lock.withLock { reporter.begin(task) } }
    func pointDone() { lock.withLock { reporter.advance(by: 1) } }
    func end() { lock.withLock { reporter.end() } }
}
