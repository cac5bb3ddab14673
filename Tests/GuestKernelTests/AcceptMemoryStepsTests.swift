import CoCoGuest
import CostModel
import Firmware
@testable import GuestKernel
import MemoryModel
import Testing

/// A platform that remembers what it accepted and, as Linux's
/// `tdx_accept_memory()` does on TDX_PAGE_ALREADY_ACCEPTED, fails a second
/// accept of any byte; it records every call.
final class RecordingAcceptor: ArchAcceptor {
    var stepByStep = false
    /// Accepted 2 MiB units (`accept_memory()` hands whole units to the platform).
    var accepted = Set<UInt64>()
    var calls: [(AddressRange, Int)] = []
    var doubleAccepts = 0

    static func units(_ a: UInt64, _ b: UInt64) -> [UInt64] { Array((a >> 21)..<((b + (2 << 20) - 1) >> 21)) }

    func accept(_ r: AddressRange, vcpu: Int, clock: inout PhaseClock) -> AcceptOutcome {
        calls.append((r, vcpu))
        let us = Self.units(r.start, r.end)
        if us.contains(where: accepted.contains) {
            doubleAccepts += 1
            return .terminated("TDX: Failed to accept memory")
        }
        accepted.formUnion(us)
        return .ok
    }

    func allAccepted(_ a: UInt64, _ b: UInt64) -> Bool { Self.units(a, b).allSatisfy(accepted.contains) }
}

/// `accept_memory()` split at its lock steps (UnacceptedMemory+Steps): one
/// caller gives exactly what the loop it replaced gave; several callers
/// interleaved at random give the single-caller result when their windows do
/// not overlap, and with the accepting list (or the lock held, before
/// 50e782a86c98) never accept a unit twice; the planted faults are caught.
@Suite struct AcceptMemoryStepsTests {
    static let unit: UInt64 = 2 << 20
    static let units: UInt64 = 48

    func memory(_ seed: UInt64, costs: CostTable) -> (UnacceptedMemory, RecordingAcceptor) {
        var rng = SplitMix64(seed: seed)
        var t = UnacceptedTable(physBase: GuestPhysicalAddress(Self.unit), size: Self.units / 8, address: GuestPhysicalAddress(0))
        for u in 0..<Self.units where rng.next() % 4 != 0 { t.bitmap.set(Range(start: UnacceptedUnit(u), count: 1)) }
        let a = RecordingAcceptor()
        return (UnacceptedMemory(table: t, acceptor: a, costs: costs), a)
    }

    /// A random `accept_memory(start, size)`: page-aligned, sometimes
    /// unit-aligned (so the guard unit joins), sometimes below phys_base or
    /// past the bitmap.
    func randomCall(_ rng: inout SplitMix64) -> (UInt64, UInt64) {
        let start = rng.next() % 3 == 0 ? (rng.next() % (Self.units + 2)) * Self.unit : (rng.next() % ((Self.units + 2) * 512)) * 4096
        let size = rng.next() % 2 == 0 ? (1 + rng.next() % 4) * Self.unit : (1 + rng.next() % 2048) * 4096
        return (start, size)
    }

    /// The loop `acceptMemory` was before the split: every acceptable run
    /// of the window, accepted then cleared.
    func reference(_ m: UnacceptedMemory, _ a: RecordingAcceptor, start: UInt64, size: UInt64, clock: inout PhaseClock) {
        guard let w = m.unitWindow(start: start, size: size) else { return }
        for run in m.table.acceptableRuns(in: w) {
            _ = a.accept(AddressRange(start: m.table.address(of: run.lowerBound), end: m.table.address(of: run.upperBound)), vcpu: 0, clock: &clock)
            m.table.bitmap.clear(run)
        }
    }

    @Test(arguments: UInt64(0)..<40)
    func oneCallerIsTheLoopItReplaced(_ seed: UInt64) throws {
        let costs = CostTable(try Calibration.builtIn())
        let (m, a) = memory(seed, costs: costs)
        let (r, b) = memory(seed, costs: costs)
        var rng = SplitMix64(seed: seed ^ 0xA11)
        var c1 = PhaseClock(vcpus: 1), c2 = PhaseClock(vcpus: 1)
        for _ in 0..<12 {
            let (s, n) = randomCall(&rng)
            #expect(m.acceptMemory(start: s, size: n, vcpu: 0, clock: &c1) == .ok)
            reference(r, b, start: s, size: n, clock: &c2)
        }
        #expect(m.table.bitmap == r.table.bitmap)
        #expect(a.calls.map(\.0) == b.calls.map(\.0))
        #expect(m.archCalls == UInt64(b.calls.count))
        #expect(m.acceptingList.isEmpty && m.lockHolder == nil)
    }

    /// Runs `calls` (vCPU i makes call i) interleaved in an order drawn from
    /// `seed`; checks after every step that no two working calls overlap
    /// (when `exclusive`), and returns the steps taken.
    @discardableResult
    func interleave(_ m: UnacceptedMemory, _ calls: [(UInt64, UInt64)], seed: UInt64, exclusive: Bool) -> Int {
        var rng = SplitMix64(seed: seed)
        var inFlight = calls.enumerated().map { m.beginAcceptMemory(start: $0.element.0, size: $0.element.1, vcpu: $0.offset) }
        var clock = PhaseClock(vcpus: calls.count)
        var steps = 0
        while inFlight.contains(where: { !$0.isDone }), steps < 10_000 {
            let live = inFlight.indices.filter { !inFlight[$0].isDone }
            let v = live[Int(rng.next() % UInt64(live.count))]
            m.step(&inFlight[v], clock: &clock)
            steps += 1
            if exclusive {
                let working = inFlight.filter(\.isWorking)
                for (i, x) in working.enumerated() {
                    for y in working[(i + 1)...] { #expect(!x.window.overlaps(y.window), "seed \(seed): \(x.window) and \(y.window)") }
                }
            }
        }
        #expect(steps < 10_000, "seed \(seed): a call never returned")
        return steps
    }

    @Test(arguments: UInt64(0)..<40)
    func disjointCallersInterleavedEqualOneCaller(_ seed: UInt64) throws {
        let costs = CostTable(try Calibration.builtIn())
        let (m, a) = memory(seed, costs: costs)
        let (r, b) = memory(seed, costs: costs)
        var rng = SplitMix64(seed: seed ^ 0xD15)
        // Up to 3 calls whose windows (with their guard units) do not overlap.
        var calls: [(UInt64, UInt64)] = []
        var windows: [Range<UnacceptedUnit>] = []
        for _ in 0..<20 where calls.count < 3 {
            let (s, n) = randomCall(&rng)
            guard let w = m.unitWindow(start: s, size: n), !windows.contains(where: { $0.overlaps(w) }) else { continue }
            calls.append((s, n))
            windows.append(w)
        }
        interleave(m, calls, seed: seed, exclusive: true)
        var clock = PhaseClock(vcpus: 1)
        for (s, n) in calls { _ = r.acceptMemory(start: s, size: n, vcpu: 0, clock: &clock) }
        #expect(m.table.bitmap == r.table.bitmap)
        #expect(m.archCalls == r.archCalls && m.acceptedBytes == r.acceptedBytes)
        #expect(Set(a.calls.map { "\($0.0)" }) == Set(b.calls.map { "\($0.0)" }))
        #expect(a.doubleAccepts == 0)
    }

    @Test(arguments: [AcceptMemoryLocking.acceptingList, .lockHeldAcrossAccept], UInt64(0)..<30)
    func overlappingCallersNeverAcceptTwice(_ locking: AcceptMemoryLocking, _ seed: UInt64) throws {
        let costs = CostTable(try Calibration.builtIn())
        let (m, a) = memory(seed, costs: costs)
        let (r, _) = memory(seed, costs: costs)
        m.locking = locking
        var rng = SplitMix64(seed: seed ^ 0x0E1)
        let calls = (0..<3).map { _ in randomCall(&rng) }
        interleave(m, calls, seed: seed, exclusive: true)
        var clock = PhaseClock(vcpus: 1)
        for (s, n) in calls { _ = r.acceptMemory(start: s, size: n, vcpu: 0, clock: &clock) }
        #expect(a.doubleAccepts == 0, "seed \(seed)")
        #expect(m.table.bitmap == r.table.bitmap)
        #expect(m.acceptingList.isEmpty && m.lockHolder == nil)
    }

    /// Two callers of the page allocator's neighbouring 4 MiB blocks meet in
    /// the guard unit: with the list the second spins until the first is
    /// done; before 50e782a86c98 it spins on the lock.
    @Test(arguments: [AcceptMemoryLocking.acceptingList, .lockHeldAcrossAccept])
    func neighbouringBlocksMeetInTheGuardUnit(_ locking: AcceptMemoryLocking) throws {
        let costs = CostTable(try Calibration.builtIn())
        var t = UnacceptedTable(physBase: GuestPhysicalAddress(0), size: 1, address: GuestPhysicalAddress(0))
        t.bitmap.set(Range(start: .lowest, count: 8))
        let a = RecordingAcceptor()
        let m = UnacceptedMemory(table: t, acceptor: a, costs: costs)
        m.locking = locking
        var clock = PhaseClock(vcpus: 2)
        var c0 = m.beginAcceptMemory(start: 0, size: 4 << 20, vcpu: 0)
        var c1 = m.beginAcceptMemory(start: 4 << 20, size: 4 << 20, vcpu: 1)
        #expect(c0.window == UnacceptedUnit(0)..<UnacceptedUnit(3))
        #expect(m.step(&c0, clock: &clock) == .listed(first: UnacceptedUnit(0)..<UnacceptedUnit(3)))
        #expect(m.step(&c1, clock: &clock) == .spun)
        #expect(m.step(&c0, clock: &clock) == .accepted(UnacceptedUnit(0)..<UnacceptedUnit(3), .ok))
        #expect(m.step(&c1, clock: &clock) == .spun)
        #expect(m.step(&c0, clock: &clock) == .cleared(UnacceptedUnit(0)..<UnacceptedUnit(3), next: nil))
        #expect(c0.isDone)
        // Unit 2 is accepted now: the second call's first run starts at 3.
        #expect(m.step(&c1, clock: &clock) == .listed(first: UnacceptedUnit(3)..<UnacceptedUnit(5)))
        #expect(c1.retries == 2)
        #expect(a.doubleAccepts == 0)
    }

    /// The planted faults are caught: over every interleaving of two
    /// neighbouring 4 MiB blocks' calls (each order of their steps, 20 in
    /// all), no list lets both accept the guard unit, and claiming by
    /// clearing lets a call return before the memory it covers is accepted.
    /// The real code does neither in any order.
    @Test func plantedFaultsAreCaughtAndTheRealCodeIsNot() throws {
        let costs = CostTable(try Calibration.builtIn())
        func outcomes(_ fault: PlantedAcceptFault?) -> (orders: Int, doubles: Int, early: Int) {
            var orders = 0, doubles = 0, early = 0
            func run(_ order: [Int]) -> (done: Bool, double: Bool, early: Bool) {
                var t = UnacceptedTable(physBase: GuestPhysicalAddress(0), size: 1, address: GuestPhysicalAddress(0))
                t.bitmap.set(Range(start: .lowest, count: 8))
                let a = RecordingAcceptor()
                let m = UnacceptedMemory(table: t, acceptor: a, costs: costs)
                m.plantedFault = fault
                var calls = [m.beginAcceptMemory(start: 0, size: 4 << 20, vcpu: 0), m.beginAcceptMemory(start: 4 << 20, size: 4 << 20, vcpu: 1)]
                var clock = PhaseClock(vcpus: 2)
                var returnedEarly = false
                for v in order where !calls[v].isDone {
                    m.step(&calls[v], clock: &clock)
                    // A call that returned must find its whole window accepted.
                    if case .done(.ok) = calls[v].phase,
                       !a.allAccepted(m.table.address(of: calls[v].window.lowerBound), m.table.address(of: calls[v].window.upperBound)) {
                        returnedEarly = true
                    }
                }
                return (calls.allSatisfy(\.isDone), a.doubleAccepts > 0, returnedEarly)
            }
            // Every sequence of vCPU choices up to 10 steps; those that end
            // with both calls returned are the interleavings.
            var frontier: [[Int]] = [[]]
            while let o = frontier.popLast() {
                let r = run(o)
                if r.done || r.double {
                    orders += 1
                    if r.double { doubles += 1 }
                    if r.early { early += 1 }
                } else if o.count < 10 {
                    frontier += [o + [0], o + [1]]
                }
            }
            return (orders, doubles, early)
        }
        let listed = outcomes(nil)
        #expect(listed.doubles == 0 && listed.early == 0 && listed.orders > 0)
        let noList = outcomes(.noAcceptingList)
        #expect(noList.doubles > 0)
        let claim = outcomes(.claimByClearing)
        #expect(claim.early > 0 && claim.doubles == 0)
    }
}
