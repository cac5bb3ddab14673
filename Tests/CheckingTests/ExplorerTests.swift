import Checking
import Testing

/// Two vCPUs each incrementing a shared counter non-atomically (read, then
/// write back read + 1): the textbook lost update. Small enough to count
/// its states by hand.
private struct LostUpdate: TransitionSystem {
    struct State: Hashable {
        var counter = 0
        /// Per vCPU: 0 = before read, 1 = read done, 2 = written.
        var pc = [0, 0]
        var local = [0, 0]
    }
    struct Action: Hashable, CustomStringConvertible {
        let vcpu: Int
        var description: String { "vcpu\(vcpu) step" }
    }

    var initialStates: [State] { [State()] }

    func actions(in s: State) -> [Action] {
        (0..<2).filter { s.pc[$0] < 2 }.map { Action(vcpu: $0) }
    }

    func apply(_ a: Action, to s: State) -> State {
        var t = s
        if t.pc[a.vcpu] == 0 { t.local[a.vcpu] = t.counter } else { t.counter = t.local[a.vcpu] + 1 }
        t.pc[a.vcpu] += 1
        return t
    }

    func violations(in s: State) -> [Violation] {
        s.pc == [2, 2] && s.counter != 2 ? [Violation(invariant: "no-lost-update", detail: "counter \(s.counter)")] : []
    }

    func actor(of a: Action) -> ActorID { .vcpu(a.vcpu) }
}

@Suite struct ExplorerTests {
    @Test func findsTheLostUpdateWithAShortestTrace() {
        let r = Explorer(LostUpdate()).run()
        #expect(r.complete)
        #expect(r.counterexamples.count == 1)
        // Both read before either writes: four steps, no shorter path.
        #expect(r.counterexamples.first?.actions.count == 4)
        #expect(r.counterexamples.first?.violation.invariant == "no-lost-update")
    }

    @Test func countsEveryDistinctState() {
        // By program counters (pc0, pc1): one state each for (0,0), (1,0),
        // (0,1), (2,0), (1,1), (0,2); two for (2,1) and (1,2) (the other
        // vCPU read before or after the write); three for (2,2) (counter 2
        // with either local, or the lost update's counter 1): 13.
        let r = Explorer(LostUpdate()).run()
        #expect(r.states == 13)
        #expect(r.depthReached == 4)
    }

    @Test func aDepthBoundMarksTheSearchIncomplete() {
        let r = Explorer(LostUpdate(), bounds: .init(maxDepth: 2)).run()
        #expect(!r.complete)
        #expect(r.counterexamples.isEmpty)
    }
}
