import Foundation
import MemoryModel
import Simulation
import Sweep
import Testing

@Suite struct SweepRunnerTests {
    static let grid = """
        guest:
          memory: 1G..4G *2
          vcpus: [1, 4]
        kernel:
          accept: [lazy, eager]
        """

    @Test func sameRowsWhateverTheJobs() throws {
        let f = try SweepFile.parse(Self.grid)
        let one = try SweepRunner(file: f, jobs: 1).run()
        let two = try SweepRunner(file: f, jobs: 2).run()
        #expect(one.rows.count == 12)
        #expect(one.rows == two.rows)
        #expect(one.rows.map { $0["point"] } == (0..<12).map { .int(Int64($0)) })
        #expect(Set(one.rows.map(\.key)).count == 12)
    }

    /// The probe runs the first point of each platform only, and a run
    /// that takes its rows gives the same rows, the same new flags, and
    /// runs each point once; plot names resolve against the probe before
    /// the rest runs, a typo with its nearest columns.
    @Test func probeRunsOnePointPerPlatformAndTheRunKeepsItsRows() throws {
        let f = try SweepFile.parse("guest:\n  platform: [tdx, snp]\n  memory: [1G, 2G]\nkernel:\n  accept: [lazy, eager]\n")
        let plain = try SweepRunner(file: f, jobs: 2).run()
        let count = Counter()
        var runner = SweepRunner(file: f, jobs: 2, onPointCompleted: { i, _ in count.add(i) })
        let probe = try runner.probe()
        #expect(probe.rows.keys.sorted() == [0, 4])
        #expect(probe.new == [0, 4])
        #expect(count.indices == [0, 4])
        let plots = try SweepReport.resolve([try PlotSpec.parse("memory,psc_vmgexit,kernel_accept")], columnsOf: Array(probe.rows.values))
        #expect(plots == [PlotSpec(x: "guest_memory", y: "platform_ops_psc_vmgexit", by: ["kernel_accept"])])
        let e = #expect(throws: CocomemError.self) { try SweepReport.resolve([try PlotSpec.parse("memory,totl_boot_s")], columnsOf: Array(probe.rows.values)) }
        // The nearest column first (a boot on a TDX host also has the PAMT totals, issue 18, further down the list).
        #expect(e?.message.hasPrefix("--plot memory,totl_boot_s: no column 'totl_boot_s' in the sweep's points (nearest: virtual_time_total_boot_s") == true)
        runner.done = probe.rows
        runner.doneNew = probe.new
        let after = try runner.run()
        #expect(after.rows == plain.rows)
        #expect(after.isNew == plain.isNew)
        #expect(count.indices == Array(0..<8))
        // The report of every row draws the SNP-only figure (the first row is TDX's).
        #expect(try SweepReport.html(rows: after.rows, plots: plots, title: "t").contains("platform_ops_psc_vmgexit"))
    }

    @Test func shardsTogetherAreTheWholeSweep() throws {
        let f = try SweepFile.parse(Self.grid)
        let whole = try SweepRunner(file: f, jobs: 2).run().rows
        var parts: [Row] = []
        for i in 1...5 { parts += try SweepRunner(file: f, jobs: 1, shard: Shard(index: i, count: 5)).run().rows }
        #expect(parts.sorted { $0.key < $1.key } == whole.sorted { $0.key < $1.key })
    }

    /// With `find:`, a shard takes whole groups, so the shards' rows (coarse
    /// and bisected) and answers together are the single run's.
    @Test func shardsOfASearchAreTheWholeSearch() throws {
        let f = try SweepFile.parse("""
            guest:
              memory: 2G..14G +4G
              vcpus: [1, 2, 4]
            sweep:
              find:
                largest: memory
                where: "total_boot_s < 4"
                resolution: 1G
            """)
        let whole = try SweepRunner(file: f, jobs: 2).run()
        var rows: [Row] = []
        var answers: [FindAnswer] = []
        for i in 1...2 {
            let r = try SweepRunner(file: f, jobs: 1, shard: Shard(index: i, count: 2)).run()
            rows += r.rows
            answers += r.answers
        }
        #expect(rows.count > 12, "no bisection ran: choose another threshold")
        #expect(rows.sorted { $0.key < $1.key } == whole.rows.sorted { $0.key < $1.key })
        #expect(Set(answers.map { "\($0.group)=\($0.value ?? "none")" }) == Set(whole.answers.map { "\($0.group)=\($0.value ?? "none")" }))
    }

    @Test func rowsCarryTheReportsFigures() throws {
        let f = try SweepFile.parse("guest:\n  memory: 2G\nsteps:\n  - dump:\n      estimate: true\n      level: 31\n")
        let row = try SweepRunner(file: f, jobs: 1).run().rows[0]
        for c in ["virtual_time_total_boot_s", "accepted_bytes_firmware", "meminfo_MemTotal", "platform_ops_accept_4k_success", "boot_outcome", "step1_dump_pages_by_class_free_zero",
                  "step1_dump_dump_bytes", "outcome", "outcome_kind", "guest_memory", "step1_dump_level"] {
            #expect(row[c] != nil, "no column \(c)")
        }
        #expect(row["guest_memory"] == .int(2 << 30))
        #expect(Set(row.columns).count == row.columns.count, "duplicate column names")
    }

    @Test func existingKeysAreNotRunAgain() throws {
        let f = try SweepFile.parse(Self.grid)
        let first = try SweepRunner(file: f, jobs: 2).run()
        var byKey: [String: Row] = [:]
        for r in first.rows { byKey[r.key] = r }
        let known = byKey
        let again = try SweepRunner(file: f, jobs: 2, existing: { known[$0] }).run()
        #expect(again.isNew.allSatisfy { !$0 })
        #expect(again.rows == first.rows)
    }

    /// The search against a reference: every value of the axis at the
    /// resolution, run one by one; the threshold (the median boot time of
    /// that brute-force sweep, so not a tuned constant) gives the largest
    /// size under it, which bisection must find from the coarse grid.
    @Test(arguments: [false, true])
    func findAgreesWithBruteForce(largest: Bool) throws {
        let brute = try SweepRunner(file: SweepFile.parse("guest:\n  memory: 2G..18G +1G\n  vcpus: 2\n"), jobs: 2).run().rows
        let times = brute.map { $0["virtual_time_total_boot_s"]!.number! }
        let threshold = times.sorted()[times.count / 2]
        let op = largest ? "<" : ">="
        let condition = try Expression.parse("total_boot_s \(op) \(threshold)")
        let holds = try brute.map { try condition.holds(for: $0) }
        let expected = largest ? holds.lastIndex(of: true).map { brute[$0]["guest_memory"]! } : holds.firstIndex(of: true).map { brute[$0]["guest_memory"]! }
        let f = try SweepFile.parse("""
            guest:
              memory: 2G..18G +8G
              vcpus: 2
            sweep:
              find:
                \(largest ? "largest" : "smallest"): memory
                where: "total_boot_s \(op) \(threshold)"
                resolution: 1G
            """)
        let r = try SweepRunner(file: f, jobs: 2).run()
        #expect(r.answers.count == 1)
        let found = try r.answers[0].value.map { Cell.int(Int64(try ByteCount.parse($0).value)) }
        #expect(found == expected)
        #expect(r.answers[0].violations.isEmpty)
    }

    static let examplesDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("examples/sweeps")

    static let examples: [String] = {
        ((try? FileManager.default.contentsOfDirectory(atPath: examplesDir.path)) ?? []).filter { $0.hasSuffix(".yaml") }.sorted()
    }()

    @Test func thereAreSweepExamples() { #expect(Self.examples.count >= 3) }

    /// Every sweep example runs and gives what its `# expect:` lines claim:
    /// `points N`, `find GROUP: VALUE`, `not monotone GROUP`, and
    /// `row I: EXPRESSION` (the `where:` language, held by point I's row),
    /// which keeps the answers docs/QUESTIONS.md quotes true.
    @Test(arguments: examples)
    func examplesAnswerWhatTheyClaim(_ name: String) throws {
        let path = Self.examplesDir.appendingPathComponent(name).path
        let f = try SweepFile.load(path: path)
        let r = try SweepRunner(file: f, jobs: 2).run()
        let claims = f.text.split(separator: "\n").filter { $0.hasPrefix("# expect: ") }.map { String($0.dropFirst("# expect: ".count)) }
        #expect(!claims.isEmpty)
        for c in claims {
            if c.hasPrefix("points ") { #expect(r.rows.count == Int(c.dropFirst(7))); continue }
            if c.hasPrefix("row "), let colon = c.firstIndex(of: ":"), let i = Int(c[c.index(c.startIndex, offsetBy: 4)..<colon]) {
                let condition = try Expression.parse(String(c[c.index(after: colon)...]).trimmingCharacters(in: .whitespaces))
                #expect(i < r.rows.count, "\(name): no row \(i)")
                if i < r.rows.count { #expect(try condition.holds(for: r.rows[i]), "\(name): row \(i) does not hold \(c)") }
                continue
            }
            let isMonotone = c.hasPrefix("not monotone ")
            let body = String(c.dropFirst(isMonotone ? "not monotone ".count : "find ".count))
            let (group, value) = isMonotone ? (body, "") : (String(body.split(separator: ":")[0]), String(body.split(separator: ":")[1].dropFirst()))
            let answer = r.answers.first { a in a.group.map { "\($0)=\($1)" }.joined(separator: " ") == group }
            #expect(answer != nil, "\(name): no group \(group)")
            if isMonotone { #expect(!(answer?.violations.isEmpty ?? true), "\(name): \(group) reported monotone") }
            else { #expect((answer?.value ?? "none") == value, "\(name): \(group) found \(answer?.value ?? "none")") }
        }
    }
}

/// Point indices reported by `onPointCompleted`, from any thread.
final class Counter: @unchecked Sendable {
    let lock = NSLock()
    var seen: [Int] = []
    func add(_ i: Int) { lock.withLock { seen.append(i) } }
    var indices: [Int] { lock.withLock { seen.sorted() } }
}
