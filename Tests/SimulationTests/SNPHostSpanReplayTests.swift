import CoCoGuest
import CostModel
import Firmware
import GuestKernel
@testable import KVM
import MemoryModel
import SNP
import TestSupport
import Testing

/// The kernel's span replay on the SNP host model (`SNPHostAcceptor` as
/// `ArchAcceptorReplay`, `SNPVM`'s `SNPGuestChunkReplay`): consecutive
/// `accept_memory(block, 4 MiB)` calls (`UnacceptedMemory.acceptBlocks`,
/// as deferred init and `__accept_page()` make them) over memory left in
/// random states leave the same host and guest state, counters and clock
/// as stepping every call.
@Suite struct SNPHostSpanReplayTests {
    struct Run {
        let vm: SNPVM
        let guest: SNPHostGuest
        let memory: UnacceptedMemory
        var clock: PhaseClock
    }

    static func make(blocks: UInt64, backing: GmemBacking, seed: UInt64, step: Bool) throws -> Run {
        let costs = CostTable(try Calibration.builtIn())
        let units = 2 * blocks + 1
        let vm = try SNPVM(vcpus: 1, slots: [Memslot(id: 1, baseGFN: GuestFrameNumber(0), pages: (units + 1) * 512, backing: backing)])
        let guest = SNPHostGuest(host: vm)
        let acc = SNPHostAcceptor(guest: guest, driver: .linuxGHCB, costs: costs)
        var table = UnacceptedTable(physBase: GuestPhysicalAddress(0), size: (units + 7) / 8, address: GuestPhysicalAddress(1 << 40))
        table.bitmap.set(Range(start: UnacceptedUnit(0), count: units))
        var clock = PhaseClock(vcpus: 1)
        // Random earlier history: pages made shared or accepted, units
        // accepted beforehand (so calls are not all in the steady state).
        var rng = SplitMix64(seed: seed)
        for _ in 0..<(rng.next() % 6) {
            let start = GuestFrameNumber(rng.next() % (units * 512)), n = 1 + rng.next() % 3000
            let r = start..<min(start + n, GuestFrameNumber(units * 512))
            if rng.next() % 2 == 0 { _ = guest.makeShared(r) } else { _ = guest.accept(r) }
        }
        for _ in 0..<(rng.next() % 4) {
            let u = rng.next() % units
            table.bitmap.clear(Range(start: UnacceptedUnit(u), count: 1))
            _ = acc.accept(AddressRange(start: u << 21, size: 2 << 20), vcpu: 0, clock: &clock)
        }
        let memory = UnacceptedMemory(table: table, acceptor: acc, costs: costs)
        memory.stepByStep = step
        return Run(vm: vm, guest: guest, memory: memory, clock: clock)
    }

    @Test func replayedCallsEqualStepping() throws {
        var replayed: UInt64 = 0
        for seed in 0..<24 as Range<UInt64> {
            let backing: GmemBacking = seed % 2 == 0 ? .buddy : .hugetlb2M
            let blocks = 3 + seed % 13
            var a = try Self.make(blocks: blocks, backing: backing, seed: seed, step: false)
            var b = try Self.make(blocks: blocks, backing: backing, seed: seed, step: true)
            let ra = a.memory.acceptBlocks(firstBlockAddress: 0, count: blocks, vcpu: 0, clock: &a.clock)
            let rb = b.memory.acceptBlocks(firstBlockAddress: 0, count: blocks, vcpu: 0, clock: &b.clock)
            let what = "seed \(seed) \(backing) blocks \(blocks)"
            #expect(ra == rb, "\(what)")
            #expect(a.vm.stats == b.vm.stats && a.vm.ops == b.vm.ops, "\(what)")
            #expect(a.vm.rmp.entries.starts == b.vm.rmp.entries.starts && a.vm.rmp.entries.values == b.vm.rmp.entries.values, "\(what)")
            #expect(a.vm.npt.starts == b.vm.npt.starts && a.vm.npt.values == b.vm.npt.values, "\(what)")
            #expect(a.vm.gmem.folioOrder.starts == b.vm.gmem.folioOrder.starts
                    && a.vm.gmem.folioOrder.values == b.vm.gmem.folioOrder.values, "\(what)")
            #expect(a.vm.committedPages == b.vm.committedPages, "\(what)")
            #expect(a.guest.madeShared.starts == b.guest.madeShared.starts && a.guest.madeShared.values == b.guest.madeShared.values, "\(what)")
            #expect(a.clock.counts == b.clock.counts && a.clock.vcpuPicoseconds == b.clock.vcpuPicoseconds, "\(what)")
            #expect(a.memory.archCalls == b.memory.archCalls && a.memory.acceptedBytes == b.memory.acceptedBytes, "\(what)")
            #expect(a.vm.checkInvariants().isEmpty, "\(what): \(a.vm.checkInvariants())")
            #expect(b.vm.replayedCalls == 0, "\(what)")
            replayed += a.vm.replayedCalls
        }
        // The seeds reach replayed calls as well as stepped ones.
        #expect(replayed > 0)
    }
}
