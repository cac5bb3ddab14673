import Foundation
import Checking
import KVM
import MemoryModel
import Results
import Simulation
import Sweep
import Testing

/// `cocomem check --counterexamples`: every example check file's
/// violations, each written as a scenario file, replayed as `cocomem run`
/// replays it: the replay must break the same invariant, or the file must
/// say that it cannot reach it (an interleaving the host command language
/// cannot express) and then must not reach it.
@Suite struct CounterexampleFileTests {
    /// The examples with a violation; bench.yaml (10 million states) is the
    /// benchmark, not a test input.
    static let examples: [String] = {
        let dir = URLPath.packageRoot + "/examples/check"
        return ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [])
            .filter { $0.hasSuffix(".yaml") && $0 != "bench.yaml" }.sorted()
    }()

    @Test func thereAreExamples() { #expect(Self.examples.count >= 7) }

    @Test(arguments: examples)
    func writtenCounterexamplesReplay(_ name: String) throws {
        let text = try readTextFile(URLPath.packageRoot + "/examples/check/" + name, what: "example", maxBytes: 1 << 16)
        let report = try CheckModels.run(CheckFile.parse(text, name: name))
        for v in report.violations {
            let file = try #require(v.scenarioFile, "\(name): \(v.invariant) has no scenario file")
            let scenario = try ScenarioFile.parse(file, name: v.fileName(checkFile: name))
            let run = try scenario.run(checkedHostRun: { try $0.runChecked() })
            let reaches = !file.contains("does NOT reach the violation")
            switch try #require(scenario.steps.first) {
            case .host(let h):
                let seen = try CounterexampleReplay.invariants(hostCommands: try #require(h.commands))
                if reaches {
                    #expect(seen.contains(v.invariant), "\(name): \(v.invariant) replays to \(seen)")
                } else {
                    // Only the abstraction has steps without a real counterpart,
                    // and the kernel's own state (accepting_list, the bitmap)
                    // has no host command.
                    #expect(["acceptance-core", "accept-memory"].contains(report.model))
                    #expect(!seen.contains(v.invariant), "\(name): says it does not reach \(v.invariant) but does")
                    #expect(file.contains("no real counterpart"))
                }
            default:
                // The kexec model's files: a boot and a kexec step; the TD dies in relocate_kernel.
                #expect(run.outcome.contains("Guest access before accepting"), "\(name): \(run.outcome)")
            }
        }
    }

    /// The race the accepting list closes: its shortest trace interleaves
    /// inside one accept (not expressible), and the shortest trace at the
    /// host language's granularity replays on the real layers to the same
    /// failed accept, which `cocomem run` shows in the log.
    @Test func theListlessRaceReplaysAtTheHostGranularity() throws {
        let text = try readTextFile(URLPath.packageRoot + "/examples/check/no-accepting-list.yaml", what: "example", maxBytes: 1 << 16)
        let report = try CheckModels.run(CheckFile.parse(text, name: "no-accepting-list.yaml"))
        let v = try #require(report.violations.first { $0.invariant == "guest.accept-succeeds" })
        let file = try #require(v.scenarioFile)
        #expect(file.contains("steps 3, 4, 6, 7: vcpu0's accept_memory() of range 0 is one `accept` command"))
        #expect(file.contains("breaks guest.accept-succeeds too"))
        let run = try ScenarioFile.parse(file, name: "race.yaml").run()
        guard case .host(let h, _) = try #require(run.steps.first) else { Issue.record("not a host step"); return }
        #expect(h.vm.operationLog.lines.contains { $0.contains("guest: TDX: Failed to accept memory") }, "\(h.vm.operationLog.lines)")
    }

    /// A translated trace is regrouped only when the abstract model reaches
    /// the very same state: every accept of the coarse system expands to
    /// steps the fine system takes, ending where the coarse step ends.
    @Test func hostGranularityStepsAreFineTraces() throws {
        var c = AcceptanceCore.Configuration()
        c.acceptingList = false
        c.zaps = 1
        c.conversions = 1
        let core = try AcceptanceCore(c)
        let g = AcceptanceCore.HostGranularity(core)
        var frontier = g.initialStates, seen = Set(frontier), checked = 0
        while let s = frontier.popLast(), checked < 2000 {
            for a in g.actions(in: s) {
                let steps = try #require(g.expand(a, in: s))
                var t = s
                for b in steps {
                    #expect(core.actions(in: t).contains(b))
                    t = core.apply(b, to: t)
                }
                #expect(t == g.apply(a, to: s))
                checked += 1
                if seen.insert(t).inserted { frontier.append(t) }
            }
        }
        #expect(checked > 100)
    }
}

/// A swarm as a sweep (`cocomem sweep CHECKFILE`): one row per seed, and
/// the shards' databases merged hold exactly the single run's rows.
@Suite struct CheckSweepTests {
    static let text = """
    model: acceptance-core
    parameters: {vcpus: 2, ranges: 2, pages-per-range: 2, zaps: 1, accepting-list: off, already-accepted: trust}
    search: swarm
    swarm: {seeds: 3-9, max-depth: 40, max-states-per-search: 1500}
    """

    func database(_ rows: [Row], _ path: String) throws {
        _ = try ResultsDatabase.append(path: path, runs: [], rows: rows)
    }

    @Test func shardsMergedEqualTheSingleRun() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cocomem-checksweep-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let sweep = try CheckSweep(text: Self.text, name: "swarm.yaml")
        #expect(sweep.count == 7)
        let whole = try sweep.run(shard: nil, jobs: 2)
        try database(whole.rows, dir + "/all.db")
        var parts: [String] = []
        for i in 1...3 {
            let r = try sweep.run(shard: Shard(index: i, count: 3), jobs: 1)
            #expect(r.rows.count == (i == 1 ? 3 : 2))
            try database(r.rows, dir + "/s\(i).db")
            parts.append(dir + "/s\(i).db")
        }
        _ = try ResultsDatabase.merge(into: dir + "/merged.db", inputs: parts)
        let a = try ResultsDatabase.readExisting(path: dir + "/all.db"), b = try ResultsDatabase.readExisting(path: dir + "/merged.db")
        #expect(a.rows.count == 7)
        #expect(a.rows.map(\.cells) == b.rows.map(\.cells))
        #expect(a.rows.map(\.columns) == b.rows.map(\.columns))
        // The rows are the seeds' searches: the same figures as `cocomem check` merges.
        let report = try CheckModels.run(CheckFile.parse(Self.text, name: "swarm.yaml"))
        #expect(a.rows.compactMap { $0["check_states"]?.number }.reduce(0, +) == Double(report.states))
        let summary = try #require(CheckSweep.summary(a.rows))
        for v in report.violations {
            #expect(summary.contains("\(v.invariant): "), "\(summary)")
            #expect(summary.contains("shortest trace \(v.steps.count) steps"), "\(v.invariant): \(summary)")
        }
        // A run finds its rows' keys and runs nothing again.
        let keys = Dictionary(uniqueKeysWithValues: whole.rows.map { ($0.key, $0) })
        let again = try sweep.run(shard: nil, jobs: 2, existing: { keys[$0] })
        #expect(again.isNew.allSatisfy { !$0 } && again.rows == whole.rows)
    }

    @Test func aCheckFileIsToldFromASweepFile() {
        #expect(CheckSweep.isCheckFile(Self.text))
        #expect(!CheckSweep.isCheckFile("guest:\n  memory: [4G, 8G]\n"))
    }
}
