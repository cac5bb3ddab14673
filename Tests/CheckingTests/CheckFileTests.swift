import Checking
import MemoryModel
import Testing

@Suite struct CheckFileTests {
    @Test func readsEveryKey() throws {
        let f = try CheckFile.parse("""
            model: acceptance-core
            parameters: {vcpus: 3, ranges: 1, pages-per-range: 4, host-mapping: 4k, accepting-list: off, already-accepted: trust}
            search: bfs
            symmetry: off
            por: on
            max-depth: 9
            max-states: 1000
            """)
        #expect(f.model == "acceptance-core")
        #expect(!f.symmetry && f.partialOrder && f.maxDepth == 9 && f.maxStates == 1000)
        var p = f.parameters
        let c = try AcceptanceCore.Configuration(&p)
        #expect(c.vcpus == 3 && c.ranges == 1 && c.pagesPerRange == 4 && c.hostMapping == .map4K && !c.acceptingList && c.alreadyAccepted == .trust)
        let s = try CheckFile.parse("model: acceptance-core\nsearch: swarm\nswarm: {seeds: [3, 5-7], max-depth: 10}\n")
        #expect(s.swarmSeeds == [3, 5, 6, 7] && s.swarmMaxDepth == 10)
    }

    /// The report's counts are the engine's, and the default text has no
    /// wall time in it (the same on every run).
    @Test func theReportIsTheCheckersAndDeterministic() throws {
        let f = try CheckFile.parse("model: acceptance-core\nparameters: {accepting-list: off, ranges: 1, splits: 0}\n")
        let a = try CheckModels.run(f), b = try CheckModels.run(f)
        #expect(a.text() == b.text())
        #expect(!a.text().contains("time:"))
        #expect(a.text(timing: true).contains("time:"))
        var c = AcceptanceCore.Configuration()
        c.acceptingList = false
        c.ranges = 1
        c.splits = 0
        let r = Checker(try AcceptanceCore(c)).run()
        #expect(a.states == r.states && a.transitions == r.transitions)
        #expect(a.violations.map(\.invariant) == ["guest.accept-succeeds"])
        #expect(a.violations.first?.steps.count == 7)
    }

    @Test(arguments: [
        ("", "empty"), ("model: nope\n", "unknown model"), ("model: acceptance-core\nfoo: 1\n", "unknown key 'foo'"),
        ("model: acceptance-core\nparameters: {vcpus: 9}\n", "parameters.vcpus"),
        ("model: acceptance-core\nparameters: {bogus: 1}\n", "unknown key 'parameters.bogus'"),
        ("model: acceptance-core\npor: on\nhash-compaction: on\n", "cannot be combined"),
    ])
    func refusesBadFiles(_ text: String, _ message: String) {
        do {
            _ = try CheckModels.run(try CheckFile.parse(text))
            Issue.record("accepted: \(text)")
        } catch let e as CocomemError {
            #expect(e.message.contains(message), "\(e.message)")
        } catch {
            Issue.record("\(error)")
        }
    }

    /// A bad parameter names the file once (the parameters' own error already has it).
    @Test func aBadParameterNamesTheFileOnce() throws {
        let f = try CheckFile.parse("model: acceptance-core\nparameters: {vcpus: 9}\n", name: "c.yaml")
        do { _ = try CheckModels.run(f); Issue.record("no error") } catch let e as CocomemError {
            #expect(!e.message.hasPrefix("c.yaml: c.yaml:") && e.message.hasPrefix("c.yaml: "), "\(e.message)")
        }
    }
}
