import CoCoGuest
import CostModel
@testable import GuestKernel
import Testing

/// The page allocator's accepts on the phase's `accepting_list` timeline
/// (`GuestKernel.acceptListedBlock`): one entry per `accept_memory()` call,
/// one call per 4 MiB block, as `try_to_accept_memory_one()` makes them.
@Suite struct AcceptingListEntryTests {
    typealias T = ConcurrentAcceptanceTests

    /// vCPU 0 accepts blocks 0-3 one call each; vCPU 1 accepts block 4,
    /// which shares its first unit with block 3's guard unit. Arriving while
    /// blocks 0-2 are on the list it does not wait (one entry for the whole
    /// run would have made it wait for all four); arriving while block 3 is
    /// on the list it waits until block 3's call leaves it.
    @Test func aNeighbourWaitsOnlyForTheBlockSharingItsGuardUnit() throws {
        for late in [false, true] {
            var s = try T.make(blocks: 6, listed: [], vcpus: 2)
            var waits = GuestKernel.ListWaits()
            var ends: [UInt64] = []
            for b: UInt64 in 0..<4 {
                #expect(GuestKernel.acceptListedBlock(b * T.block, memory: s.memory, vcpu: 0, clock: &s.clock, waits: &waits) == .ok)
                ends.append(s.clock.vcpuPicoseconds[0])
            }
            #expect(waits == GuestKernel.ListWaits(), "a vCPU never waits for its own calls")
            let arrival = late ? (ends[2] + ends[3]) / 2 : ends[0] / 2
            s.clock.spin(vcpu: 1, until: arrival)
            var w1 = GuestKernel.ListWaits()
            #expect(GuestKernel.acceptListedBlock(4 * T.block, memory: s.memory, vcpu: 1, clock: &s.clock, waits: &w1) == .ok)
            if late {
                #expect(w1.calls == 1 && w1.picoseconds == ends[3] - arrival)
            } else {
                #expect(w1 == GuestKernel.ListWaits())
            }
            // Block 5 is apart from vCPU 0's blocks: no wait either way.
            var w2 = GuestKernel.ListWaits()
            #expect(GuestKernel.acceptListedBlock(5 * T.block, memory: s.memory, vcpu: 1, clock: &s.clock, waits: &w2) == .ok)
            #expect(w2 == GuestKernel.ListWaits())
        }
    }
}
