import Foundation
import GRDB
import MemoryModel
public import Sweep

/// The results database (docs/RESULTS.md): SQLite written with GRDB.
///
/// - `cocomem_meta(name, value)`: `schema` = `cocomem-results 1`, what
///   marks a database as ours.
/// - `runs`: one row per sweep invocation (or merged input): the tool
///   version, the calibration hash, the sweep file's text, the shard.
/// - `points`: one row per point, keyed by `key` (a hash of the point's
///   canonical scenario file, the tool version and the calibration hash),
///   every scenario field and every figure as a typed column, in the
///   canonical order `RowSchema.order` (new columns rebuild the table in that
///   order, so a database's `SELECT *` does not depend on its history).
/// - `columns(name, role, type)`: each points column and whether it is a
///   scenario field or a figure.
///
/// Nothing in it depends on the wall clock or the machine: the same sweep
/// gives the same rows. A write is one transaction: a new database is
/// written to a temporary file renamed over the target at commit, an
/// existing one is changed in one IMMEDIATE transaction; a failure leaves the
/// target as it was.
public enum ResultsDatabase {
    public static let schema = "cocomem-results 1"

    /// One `runs` row.
    public struct RunRecord: Sendable, Equatable {
        public var cocomemVersion: String
        public var calibrationHash: String
        public var sweepFile: String
        /// `I/N`, or empty for a whole sweep.
        public var shard: String
        /// Points the invocation selected, and how many of them were new.
        public var points: Int
        public var newPoints: Int

        public init(cocomemVersion: String, calibrationHash: String, sweepFile: String, shard: String, points: Int, newPoints: Int) {
            self.cocomemVersion = cocomemVersion
            self.calibrationHash = calibrationHash
            self.sweepFile = sweepFile
            self.shard = shard
            self.points = points
            self.newPoints = newPoints
        }
    }

    /// Everything a database holds.
    public struct Contents: Sendable {
        public var runs: [RunRecord] = []
        /// The points, ordered by point index, then key.
        public var rows: [Sweep.Row] = []
        /// The points' columns in table order.
        public var columns: [String] = []

        public init(runs: [RunRecord] = [], rows: [Sweep.Row] = [], columns: [String] = []) {
            self.runs = runs
            self.rows = rows
            self.columns = columns
        }
    }

    // MARK: reading

    /// The database at `path`, or an empty one if there is no file.
    /// - Throws: `.io` for a file that is not a cocomem results database,
    ///   a locked one, or one that cannot be read.
    public static func read(path: String) throws -> Contents {
        guard FileManager.default.fileExists(atPath: path) else { return Contents() }
        guard isRegularFile(path) else { throw CocomemError(.io, "'\(path)' is not a regular file, not a results database") }
        let queue = try open(path, readonly: true)
        return try guarded(path) { try queue.read { db in try contents(db, path: path) } }
    }

    /// Reads a database that must exist.
    public static func readExisting(path: String) throws -> Contents {
        guard FileManager.default.fileExists(atPath: path) else { throw CocomemError(.io, "no results database '\(path)'") }
        return try read(path: path)
    }

    // MARK: writing

    /// Appends a run and the rows whose keys the database does not have;
    /// creates the database if there is none. Returns how many rows it added.
    /// - Throws: `.io` for a foreign, locked or unwritable database; the
    ///   target is left as it was.
    @discardableResult
    public static func append(path: String, runs: [RunRecord], rows: [Sweep.Row]) throws -> Int {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDir) {
            guard !isDir.boolValue, isRegularFile(path) else { throw CocomemError(.io, "'\(path)' is not a regular file; not replacing it with a results database") }
            let queue = try open(path, readonly: false)
            return try guarded(path) {
                var added = 0
                try queue.writeWithoutTransaction { db in
                    try db.inTransaction(.immediate) {
                        try checkOurs(db, path: path)
                        added = try insert(db, runs: runs, rows: rows)
                        return .commit
                    }
                }
                return added
            }
        }
        let dir = (path as NSString).deletingLastPathComponent
        let tmp = (dir.isEmpty ? "." : dir) + "/." + (path as NSString).lastPathComponent + ".tmp-\(ProcessInfo.processInfo.processIdentifier)"
        try? FileManager.default.removeItem(atPath: tmp)
        do {
            var added = 0
            do {
                let queue = try open(tmp, readonly: false)
                try guarded(path) {
                    try queue.writeWithoutTransaction { db in
                        try db.inTransaction(.immediate) {
                            try createSchema(db)
                            added = try insert(db, runs: runs, rows: rows)
                            return .commit
                        }
                    }
                    try queue.close()
                }
            }
            guard rename(tmp, path) == 0 else { throw CocomemError(.io, "cannot rename the new database to '\(path)': \(String(cString: strerror(errno)))") }
            return added
        } catch {
            try? FileManager.default.removeItem(atPath: tmp)
            try? FileManager.default.removeItem(atPath: tmp + "-journal")
            throw error
        }
    }

    /// `cocomem results merge`: every input's runs and points into `into`
    /// (created if missing), a point whose key `into` has already skipped.
    /// Shards of one sweep merge into the rows the unsharded run gives.
    @discardableResult
    public static func merge(into: String, inputs: [String]) throws -> Int {
        guard !inputs.isEmpty else { throw CocomemError(.invalidScenario, "results merge needs at least one input database") }
        let target = URL(fileURLWithPath: into).standardizedFileURL.path
        var runs: [RunRecord] = []
        var rows: [Sweep.Row] = []
        var seen = Set<String>()
        for input in inputs {
            guard URL(fileURLWithPath: input).standardizedFileURL.path != target else {
                throw CocomemError(.invalidScenario, "'\(input)' is both an input and the output of the merge")
            }
            let c = try readExisting(path: input)
            runs += c.runs
            for r in c.rows where seen.insert(r.key).inserted { rows.append(r) }
        }
        return try append(path: into, runs: runs, rows: rows)
    }

    // MARK: internals

    static func isRegularFile(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
    }

    static func open(_ path: String, readonly: Bool) throws -> DatabaseQueue {
        var config = Configuration()
        config.readonly = readonly
        config.busyMode = .immediateError
        config.label = "cocomem-results"
        return try guarded(path) { try DatabaseQueue(path: path, configuration: config) }
    }

    /// Turns SQLite's errors into one clear line.
    static func guarded<T>(_ path: String, _ body: () throws -> T) throws -> T {
        do { return try body() } catch let e as CocomemError { throw e } catch let e as DatabaseError {
            switch e.resultCode {
            case .SQLITE_NOTADB, .SQLITE_CORRUPT: throw CocomemError(.io, "'\(path)' is not a cocomem results database (not SQLite)")
            case .SQLITE_BUSY, .SQLITE_LOCKED: throw CocomemError(.io, "results database '\(path)' is locked by another process; try again when it is done")
            default: throw CocomemError(.io, "results database '\(path)': \(describe(e))")
            }
        } catch {
            throw CocomemError(.io, "results database '\(path)': \(describe(error))")
        }
    }

    static func describe(_ e: any Error) -> String {
        if let d = e as? DatabaseError { return d.message ?? "\(d.resultCode)" }
        return "\(e)"
    }

    static func createSchema(_ db: Database) throws {
        try db.execute(sql: "CREATE TABLE cocomem_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
        try db.execute(sql: "INSERT INTO cocomem_meta VALUES ('schema', ?)", arguments: [schema])
        try db.execute(sql: """
            CREATE TABLE runs (id INTEGER PRIMARY KEY, cocomem_version TEXT NOT NULL, calibration_hash TEXT NOT NULL,
                               sweep_file TEXT NOT NULL, shard TEXT NOT NULL, points INTEGER NOT NULL, new_points INTEGER NOT NULL)
            """)
        try db.execute(sql: "CREATE TABLE columns (name TEXT PRIMARY KEY, role TEXT NOT NULL, type TEXT NOT NULL)")
        try db.execute(sql: "CREATE TABLE points (key TEXT PRIMARY KEY)")
    }

    static func checkOurs(_ db: Database, path: String) throws {
        let tables = try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table'")
        guard tables.contains("cocomem_meta"), tables.contains("points"), tables.contains("runs"), tables.contains("columns"),
              try String.fetchOne(db, sql: "SELECT value FROM cocomem_meta WHERE name = 'schema'") == schema else {
            throw CocomemError(.io, "'\(path)' is not a cocomem results database (no '\(schema)' schema); give another --db path")
        }
    }

    static func quote(_ name: String) -> String { "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }

    /// Inserts the runs and the rows whose keys are new; widens `points` first if rows bring new columns.
    static func insert(_ db: Database, runs: [RunRecord], rows: [Sweep.Row]) throws -> Int {
        let have = Set(try String.fetchAll(db, sql: "SELECT key FROM points"))
        var seen = have
        let fresh = rows.filter { seen.insert($0.key).inserted }
        try widen(db, for: fresh)
        let runInsert = try db.makeStatement(sql: "INSERT INTO runs (cocomem_version, calibration_hash, sweep_file, shard, points, new_points) VALUES (?, ?, ?, ?, ?, ?)")
        for r in runs {
            try runInsert.execute(arguments: [r.cocomemVersion, r.calibrationHash, r.sweepFile, r.shard, r.points, r.newPoints])
        }
        var statements: [[String]: Statement] = [:]
        for row in fresh {
            let stmt: Statement
            if let s = statements[row.columns] { stmt = s } else {
                stmt = try db.makeStatement(sql: "INSERT INTO points (\(row.columns.map(quote).joined(separator: ", "))) VALUES (\(Array(repeating: "?", count: row.columns.count).joined(separator: ", ")))")
                statements[row.columns] = stmt
            }
            try stmt.execute(arguments: StatementArguments(row.cells.map{ $0.databaseValue }))
        }
        return fresh.count
    }

    /// Adds the columns the rows bring, rebuilding `points` in canonical order.
    static func widen(_ db: Database, for rows: [Sweep.Row]) throws {
        var known: [String: (role: String, type: String)] = [:]
        for r in try GRDB.Row.fetchAll(db, sql: "SELECT name, role, type FROM columns") {
            known[r["name"]] = (r["role"], r["type"])
        }
        var added = false
        for row in rows {
            for (c, cell) in zip(row.columns, row.cells) where c != "key" {
                if let k = known[c] {
                    // A column first seen NULL takes the type of its first value.
                    if k.type == "NULL", cell != .null { known[c] = (k.role, cell.sqlType); added = true }
                    continue
                }
                let role = RowSchema.leading.contains(c) ? "key" : (row.scenarioColumns.contains(c) ? "scenario" : "figure")
                known[c] = (role, cell == .null ? "NULL" : cell.sqlType)
                added = true
            }
        }
        guard added else { return }
        let order = RowSchema.order(known.keys.filter { $0 != "key" } + ["key"])
        let existing = try GRDB.Row.fetchAll(db, sql: "PRAGMA table_info(points)").map { $0["name"] as String }
        let defs = order.map { c in c == "key" ? "key TEXT PRIMARY KEY" : "\(quote(c)) \(known[c]!.type == "NULL" ? "" : known[c]!.type)" }
        try db.execute(sql: "CREATE TABLE points_new (\(defs.joined(separator: ", ")))")
        let copy = existing.map(quote).joined(separator: ", ")
        try db.execute(sql: "INSERT INTO points_new (\(copy)) SELECT \(copy) FROM points")
        try db.execute(sql: "DROP TABLE points")
        try db.execute(sql: "ALTER TABLE points_new RENAME TO points")
        try db.execute(sql: "DELETE FROM columns")
        for c in order where c != "key" {
            try db.execute(sql: "INSERT INTO columns VALUES (?, ?, ?)", arguments: [c, known[c]!.role, known[c]!.type])
        }
    }

    static func contents(_ db: Database, path: String) throws -> Contents {
        try checkOurs(db, path: path)
        var c = Contents()
        c.runs = try GRDB.Row.fetchAll(db, sql: "SELECT * FROM runs ORDER BY id").map {
            RunRecord(cocomemVersion: $0["cocomem_version"], calibrationHash: $0["calibration_hash"], sweepFile: $0["sweep_file"],
                      shard: $0["shard"], points: $0["points"], newPoints: $0["new_points"])
        }
        let scenario = Set(try String.fetchAll(db, sql: "SELECT name FROM columns WHERE role = 'scenario'"))
        let rows = try GRDB.Row.fetchAll(db, sql: "SELECT * FROM points ORDER BY point, key")
        c.columns = try GRDB.Row.fetchAll(db, sql: "PRAGMA table_info(points)").map { $0["name"] as String }
        c.rows = rows.map { r in
            var row = Sweep.Row()
            for (name, value) in r {
                row.append(name, Cell(value))
            }
            row.scenarioColumns = scenario.intersection(row.columns)
            return row
        }
        return c
    }
}

extension Cell {
    var databaseValue: DatabaseValue {
        switch self {
        case .int(let i): i.databaseValue
        case .double(let d): d.databaseValue
        case .text(let s): s.databaseValue
        case .null: DatabaseValue.null
        }
    }

    init(_ v: DatabaseValue) {
        switch v.storage {
        case .int64(let i): self = .int(i)
        case .double(let d): self = .double(d)
        case .string(let s): self = .text(s)
        case .blob: self = .text("<blob>")
        case .null: self = .null
        }
    }
}
