import CostModel
public import Foundation
import MemoryModel
public import Simulation

/// Runs a sweep's points (each as `cocomem run` runs its file: the boot,
/// then the steps) on `jobs` threads and collects one `Row` per point by
/// point index, so the rows are the same in the same order whatever `jobs`.
public struct SweepRunner: Sendable {
    public var file: SweepFile
    public var jobs: Int
    public var shard: Shard?
    /// A row the results database already has for a key: that point is not run again.
    public var existing: @Sendable (String) -> Row?
    /// Runs a host step with `check-invariants: true` (the CLI passes the
    /// Checking module's `runChecked()`); nil: KVM's own checks only.
    public var checkedHostRun: (@Sendable (HostRun) throws -> [String])?
    /// Called once per point that completes (run now or found in the
    /// database), from the worker thread that completed it: the hook for
    /// progress lines. Arguments: the point index and its row.
    public var onPointCompleted: (@Sendable (Int, Row) -> Void)?
    /// Points already run, by point index: the rows `probe()` returned. `run()` takes them instead of running the
    /// point again (the same rows, so the sweep's result does not change).
    public var done: [Int: Row] = [:]
    /// Of `done`, the points the probe ran now (not found in the database).
    public var doneNew: Set<Int> = []
    let modelClock = ModelClock()

    public init(file: SweepFile, jobs: Int = ProcessInfo.processInfo.activeProcessorCount, shard: Shard? = nil,
                existing: @escaping @Sendable (String) -> Row? = { _ in nil },
                checkedHostRun: (@Sendable (HostRun) throws -> [String])? = nil,
                onPointCompleted: (@Sendable (Int, Row) -> Void)? = nil) {
        self.file = file
        self.jobs = max(1, jobs)
        self.shard = shard
        self.existing = existing
        self.checkedHostRun = checkedHostRun
        self.onPointCompleted = onPointCompleted
    }

    /// What a sweep produced.
    public struct Result: Sendable {
        /// Every point of this run (this shard's), in point index order, then
        /// the threshold search's points in order of group and step.
        public var rows: [Row]
        /// Whether each row was run now (false: the database had its key).
        public var isNew: [Bool]
        /// One answer per combination of the other axes (this shard's), with `find:`.
        public var answers: [FindAnswer]
        /// Wall-clock seconds spent inside the model's runs, summed over the
        /// threads: for `cocomem sweep --timings` (benchmarks) only; never
        /// stored, never part of a row.
        public var modelSeconds: Double = 0
    }

    /// One point to run: its index, its digits, and the axis values a search overrides.
    struct Point: Sendable {
        var index: Int
        var digits: [Int]
        var overriding: [Int: String] = [:]
    }

    /// Runs the points and, with `find:`, the threshold search.
    /// - Throws: the first point's error (in point order) if a point's
    ///   scenario is invalid; a run that fails records its error as the
    ///   point's outcome instead.
    public func run() throws -> Result {
        let selected = selectedPoints()
        var (rows, isNew) = try runPoints(selected)
        var answers: [FindAnswer] = []
        if let find = file.find {
            var byIndex: [Int: Row] = [:]
            for (p, r) in zip(selected, rows) { byIndex[p.index] = r }
            let groups = groupIndices()
            let coarse = byIndex
            let searched = try parallelMap(groups.count, jobs: jobs) { g -> Swift.Result<(FindAnswer, [Row], [Bool]), CocomemError> in
                do { return .success(try search(find, group: groups[g], coarse: coarse)) } catch let e as CocomemError { return .failure(e) } catch {
                    return .failure(CocomemError(.invalidScenario, "\(error)"))
                }
            }.map { try $0.get() }
            for (a, r, n) in searched { answers.append(a); rows += r; isNew += n }
        }
        return Result(rows: rows, isNew: isNew, answers: answers, modelSeconds: modelClock.seconds)
    }

    /// The points of this run: all, or this shard's (by point, or by find group).
    func selectedPoints() -> [Point] {
        if file.find != nil {
            return groupIndices().flatMap { g in pointsOfGroup(g).map { Point(index: $0, digits: file.digits(of: $0)) } }.sorted { $0.index < $1.index }
        }
        return (0..<file.count).filter { shard?.contains($0) ?? true }.map { Point(index: $0, digits: file.digits(of: $0)) }
    }

    /// The number of combinations of the axes other than the find axis.
    var groupCount: Int {
        guard let f = file.find else { return 0 }
        return file.count / file.axes[f.axis].values.count
    }

    func groupIndices() -> [Int] { (0..<groupCount).filter { shard?.contains($0) ?? true } }

    /// The points of group `g`, in order of the find axis's values.
    func pointsOfGroup(_ g: Int) -> [Int] {
        guard let f = file.find else { return [] }
        // The other axes' digits from g (last fastest), the find axis's from 0 up.
        var rest = g
        var digits = [Int](repeating: 0, count: file.axes.count)
        for a in file.axes.indices.reversed() where a != f.axis {
            digits[a] = rest % file.axes[a].values.count
            rest /= file.axes[a].values.count
        }
        return file.axes[f.axis].values.indices.map { k in
            digits[f.axis] = k
            return digits.enumerated().reduce(0) { acc, e in acc * file.axes[e.offset].values.count + e.element }
        }
    }

    /// Runs, before the others, the first point of each guest platform among
    /// the points this run selects (the first point when the platform is
    /// not an axis): rows with the figure columns each platform's points
    /// have, against which a report's plot names are resolved before the
    /// sweep runs (`SweepReport.resolve`). Every point is read first, as
    /// `run()` reads them (the first bad one in point order stops it).
    /// - Returns: the rows by point index, and which of them were run now;
    ///   pass them to `run()` as `done` and `doneNew`.
    public func probe() throws -> (rows: [Int: Row], new: Set<Int>) {
        let selected = selectedPoints()
        let (files, hashes) = try read(selected)
        let platform = file.axes.firstIndex { $0.column == "guest_platform" }
        var seen: Set<Int> = []
        var picked: [Int] = []
        for (i, p) in selected.enumerated() where seen.insert(platform.map { p.digits[$0] } ?? 0).inserted { picked.append(i) }
        let chosen = picked
        let out = parallelMap(chosen.count, jobs: jobs) { k in
            runOne(files[chosen[k]], index: selected[chosen[k]].index, calibrationHash: hashes[files[chosen[k]].calibration ?? ""] ?? "")
        }
        var rows: [Int: Row] = [:], new: Set<Int> = []
        for (k, (row, isNew)) in out.enumerated() {
            rows[selected[picked[k]].index] = row
            if isNew { new.insert(selected[picked[k]].index) }
        }
        return (rows, new)
    }

    /// Reads every point's scenario (the first error in point order stops
    /// the sweep before anything runs) and the hashes of their calibrations.
    func read(_ points: [Point]) throws -> ([ScenarioFile], [String: String]) {
        let parsed = parallelMap(points.count, jobs: jobs) { i -> Swift.Result<ScenarioFile, CocomemError> in
            do { return .success(try file.scenario(digits: points[i].digits, overriding: points[i].overriding)) } catch let e as CocomemError { return .failure(e) } catch {
                return .failure(CocomemError(.invalidScenario, "\(error)"))
            }
        }
        var files: [ScenarioFile] = []
        files.reserveCapacity(points.count)
        for r in parsed { files.append(try r.get()) }
        for f in files { try Self.checkSweepable(f, name: file.name) }
        return (files, try calibrationHashes(files))
    }

    /// Reads every point's scenario first (`read`), then runs them in
    /// parallel (a point in `done` is not run again).
    func runPoints(_ points: [Point]) throws -> ([Row], [Bool]) {
        let (scenarios, hashes) = try read(points)
        let out = parallelMap(points.count, jobs: jobs) { i in
            // Already reported to onPointCompleted when the probe ran it.
            if let row = done[points[i].index] { return (row, doneNew.contains(points[i].index)) }
            return runOne(scenarios[i], index: points[i].index, calibrationHash: hashes[scenarios[i].calibration ?? ""] ?? "")
        }
        return (out.map(\.0), out.map(\.1))
    }

    /// One point: the database's row for its key, or a run.
    func runOne(_ f: ScenarioFile, index: Int, calibrationHash: String) -> (Row, Bool) {
        let key = StableHash.key([f.yaml, CocomemVersion.current, calibrationHash])
        if let row = existing(key) {
            onPointCompleted?(index, row)
            return (row, false)
        }
        let row: Row
        do {
            let start = DispatchTime.now().uptimeNanoseconds
            defer { modelClock.add(DispatchTime.now().uptimeNanoseconds - start) }
            // A row holds the reports' figures, never the record over time
            // (pictures of a sweep are drawn from its rows): do not fill it.
            var unrecorded = f
            unrecorded.scenario.record = false
            let r = try unrecorded.run(outputDirectory: ".", threads: 1, checkedHostRun: checkedHostRun)
            row = Row.of(r, key: key, point: index, calibrationHash: calibrationHash)
        } catch let e as CocomemError {
            row = Row.failed(f, error: e.message, key: key, point: index, calibrationHash: calibrationHash)
        } catch {
            row = Row.failed(f, error: "\(error)", key: key, point: index, calibrationHash: calibrationHash)
        }
        onPointCompleted?(index, row)
        return (row, true)
    }

    /// The hash of each calibration the points name ("" is the built-in one).
    func calibrationHashes(_ files: [ScenarioFile]) throws -> [String: String] {
        var out: [String: String] = [:]
        for f in files where out[f.calibration ?? ""] == nil {
            out[f.calibration ?? ""] = try f.loadCalibration().stableHash
        }
        return out
    }

    /// A sweep writes no files: its points' dump steps estimate or report
    /// memory use (`estimate: true`, `mem-usage: true`).
    static func checkSweepable(_ f: ScenarioFile, name: String) throws {
        for (i, s) in f.steps.enumerated() {
            if case .dump(let d) = s, d.elf != nil || d.output != nil {
                throw CocomemError(.invalidScenario, "\(name): step \(i + 1) (dump) writes a file (elf/output); a sweep's points write none: use estimate: true")
            }
        }
    }
}

/// The wall-clock time spent in the model, summed across threads (benchmarks only).
final class ModelClock: @unchecked Sendable {
    private var nanoseconds: UInt64 = 0
    private let lock = NSLock()
    func add(_ ns: UInt64) { lock.lock(); nanoseconds += ns; lock.unlock() }
    var seconds: Double { lock.lock(); defer { lock.unlock() }; return Double(nanoseconds) / 1e9 }
}
