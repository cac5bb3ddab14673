import Checking
import MemoryModel
import Testing

/// Livelock as a cycle (`CycleSearch`, `cycles: on`): the shortest lasso on
/// graphs whose answer is known, and the refuse-aug livelock of the
/// acceptance core (spin agrees: scripts/spin-check.sh).
@Suite struct CycleSearchTests {
    /// A graph given by its edges; an edge is progress when `progress` says.
    struct Graph: TransitionSystem {
        struct Edge: Hashable, CustomStringConvertible {
            let from: Int, to: Int, progress: Bool
            var description: String { "\(from)→\(to)" }
        }
        let edges: [Edge]
        var initialStates: [Int] { [0] }
        func actions(in s: Int) -> [Edge] { edges.filter { $0.from == s } }
        func apply(_ e: Edge, to s: Int) -> Int { e.to }
        func violations(in s: Int) -> [Violation] { [] }
        func isProgress(_ e: Edge, in s: Int) -> Bool { e.progress }
    }

    func e(_ a: Int, _ b: Int, progress: Bool = false) -> Graph.Edge { .init(from: a, to: b, progress: progress) }

    @Test func theShortestLassoMinimizesStemPlusCycle() throws {
        // 0→1→2→3→1 (a cycle of 3 after a stem of 1) and 0→4→5→6→7→4 (a cycle of 4 after 1);
        // 0→8→9→9 (a self loop after a stem of 2): the shortest lasso is 0→1, 1→2→3→1 (4) against 0→8→9, 9→9 (3).
        let g = Graph(edges: [e(0, 1), e(1, 2), e(2, 3), e(3, 1), e(0, 4), e(4, 5), e(5, 6), e(6, 7), e(7, 4), e(0, 8), e(8, 9), e(9, 9)])
        let l = try #require(CycleSearch(g).run().lasso)
        #expect(l.stem.map(\.description) == ["0→8", "8→9"])
        #expect(l.cycle.map(\.description) == ["9→9"])
    }

    @Test func aCycleThroughAProgressStepIsNoLivelock() {
        let g = Graph(edges: [e(0, 1), e(1, 2), e(2, 0, progress: true), e(2, 3)])
        #expect(CycleSearch(g).run().lasso == nil)
        // Without the progress mark it is one: 0→1→2→0.
        let h = Graph(edges: [e(0, 1), e(1, 2), e(2, 0), e(2, 3)])
        #expect(CycleSearch(h).run().lasso?.cycle.count == 3)
    }

    func core(refuse: Bool) throws -> AcceptanceCore {
        var c = AcceptanceCore.Configuration()
        c.ranges = 1
        c.splits = 0
        c.progressBound = 4
        c.refuseAUG = refuse
        return try AcceptanceCore(c)
    }

    @Test func aHostThatRefusesAUGIsALivelock() throws {
        let m = try core(refuse: true)
        let l = try #require(CycleSearch(m).run().lasso)
        // The lasso replays: the stem from the initial state, then the cycle
        // back to the same state (the ACCEPT counter aside), with no progress on it.
        var s = l.initial
        for a in l.stem { #expect(m.actions(in: s).contains(a)); s = m.apply(a, to: s) }
        let entry = m.withoutMonitors(s)
        for a in l.cycle {
            #expect(m.actions(in: s).contains(a))
            #expect(!m.isProgress(a, in: s))
            s = m.apply(a, to: s)
        }
        #expect(m.withoutMonitors(s) == entry)
        #expect(l.stem.count + l.cycle.count == 3, "\(l.stem) \(l.cycle)")
        #expect(l.cycle.contains { $0.kind == .refuseAUG })
    }

    @Test func aHostThatMapsEveryFaultHasNoLivelock() throws {
        let r = CycleSearch(try core(refuse: false)).run()
        #expect(r.lasso == nil && r.complete && r.states > 10)
    }

    @Test func theExampleReportsTheLasso() throws {
        let text = try readTextFile(URLPath.packageRoot + "/examples/check/refuse-aug-livelock.yaml", what: "example", maxBytes: 1 << 16)
        let report = try CheckModels.run(CheckFile.parse(text, name: "refuse-aug-livelock.yaml"))
        #expect(report.lasso != nil)
        #expect(report.text().contains("cycle, 2 steps"))
        #expect(throws: CocomemError.self) { try CheckFile.parse(text + "search: swarm\n", name: "x") }
    }

    /// The packed store (`PackedStateTable`, action ordinals, compressed
    /// edge rows) finds what the value store finds: the same states,
    /// transitions and lasso; and a state bound still cuts both alike.
    @Test(arguments: [true, false])
    func packedAndValueStoresAgree(_ refuse: Bool) throws {
        var c = AcceptanceCore.Configuration()
        c.ranges = 2
        c.splits = 1
        c.progressBound = 4
        c.refuseAUG = refuse
        let m = try AcceptanceCore(c)
        #expect(m.packedWords > 0)
        let p = CycleSearch(m).run(), v = CycleSearch(m, packed: false).run()
        #expect(p.states == v.states && p.transitions == v.transitions && p.complete && v.complete)
        #expect(p.lasso?.stem == v.lasso?.stem && p.lasso?.cycle == v.lasso?.cycle)
        #expect((p.lasso != nil) == refuse)
        #expect(p.bytesPerState > 0 && v.bytesPerState > 0)
        let pb = CycleSearch(m, maxStates: 50).run(), vb = CycleSearch(m, maxStates: 50, packed: false).run()
        #expect(pb.states == 50 && vb.states == 50 && !pb.complete && !vb.complete && pb.transitions == vb.transitions)
    }
}
