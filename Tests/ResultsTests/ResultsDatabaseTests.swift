import Foundation
import GRDB
import MemoryModel
import Results
import Sweep
import Testing

@Suite struct ResultsDatabaseTests {
    static let grid = "guest:\n  memory: 1G..4G *2\n  vcpus: [1, 2]\n"

    func tempPath(_ name: String) -> String {
        let dir = NSTemporaryDirectory() + "cocomem-results-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir + "/" + name
    }

    func record(_ n: Int, shard: String = "") -> ResultsDatabase.RunRecord {
        .init(cocomemVersion: CocomemVersion.current, calibrationHash: "x", sweepFile: Self.grid, shard: shard, points: n, newPoints: n)
    }

    func dump(_ path: String) throws -> [String] {
        let q = try DatabaseQueue(path: path)
        return try q.read { db in try GRDB.Row.fetchAll(db, sql: "SELECT * FROM points ORDER BY key").map { "\($0)" } }
    }

    @Test func rerunAppendsNothing() throws {
        let rows = try SweepRunner(file: SweepFile.parse(Self.grid), jobs: 2).run().rows
        let path = tempPath("r.db")
        #expect(try ResultsDatabase.append(path: path, runs: [record(rows.count)], rows: rows) == rows.count)
        #expect(try ResultsDatabase.append(path: path, runs: [record(rows.count)], rows: rows) == 0)
        let c = try ResultsDatabase.readExisting(path: path)
        #expect(c.rows.count == rows.count)
        #expect(c.runs.count == 2)
        #expect(c.rows.map(\.key) == rows.map(\.key))
        #expect(c.rows[0]["virtual_time_total_boot_s"] == rows[0]["virtual_time_total_boot_s"])
    }

    @Test func mergedShardsEqualTheSingleRun() throws {
        let f = try SweepFile.parse(Self.grid)
        let single = tempPath("single.db")
        try ResultsDatabase.append(path: single, runs: [record(4)], rows: try SweepRunner(file: f, jobs: 2).run().rows)
        var shards: [String] = []
        for i in 1...3 {
            let p = tempPath("s\(i).db")
            let rows = try SweepRunner(file: f, jobs: 1, shard: Shard(index: i, count: 3)).run().rows
            try ResultsDatabase.append(path: p, runs: [record(rows.count, shard: "\(i)/3")], rows: rows)
            shards.append(p)
        }
        let merged = tempPath("merged.db")
        try ResultsDatabase.merge(into: merged, inputs: shards.reversed())
        #expect(try dump(merged) == dump(single))
        #expect(try ResultsDatabase.readExisting(path: merged).runs.count == 3)
    }

    @Test func foreignFilesAreRefusedAndLeftAlone() throws {
        let text = tempPath("notes.db")
        try Data("not sqlite at all, just text\n".utf8).write(to: URL(fileURLWithPath: text))
        #expect { try ResultsDatabase.append(path: text, runs: [record(0)], rows: []) } throws: {
            ($0 as? CocomemError)?.message.contains("not a cocomem results database") ?? false
        }
        #expect(try String(contentsOfFile: text, encoding: .utf8) == "not sqlite at all, just text\n")
        let other = tempPath("other.db")
        let q = try DatabaseQueue(path: other)
        try q.write { try $0.execute(sql: "CREATE TABLE t (a)") }
        try q.close()
        #expect { try ResultsDatabase.read(path: other) } throws: { ($0 as? CocomemError)?.message.contains("no 'cocomem-results 1' schema") ?? false }
    }

    @Test func lockedDatabaseIsOneClearError() throws {
        let rows = try SweepRunner(file: SweepFile.parse("guest:\n  memory: 1G\n"), jobs: 1).run().rows
        let path = tempPath("locked.db")
        try ResultsDatabase.append(path: path, runs: [record(1)], rows: rows)
        let q = try DatabaseQueue(path: path)
        try q.writeWithoutTransaction { db in
            try db.execute(sql: "BEGIN EXCLUSIVE")
            #expect { try ResultsDatabase.append(path: path, runs: [record(1)], rows: []) } throws: {
                ($0 as? CocomemError)?.message.contains("is locked") ?? false
            }
            try db.execute(sql: "ROLLBACK")
        }
    }

    @Test func aFailedWriteLeavesNoDatabase() throws {
        let path = tempPath("sub/none/r.db")
        #expect(throws: (any Error).self) { try ResultsDatabase.append(path: path, runs: [record(0)], rows: []) }
        #expect(!FileManager.default.fileExists(atPath: path))
    }
}
