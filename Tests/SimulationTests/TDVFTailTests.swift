import CoCoGuest
import Firmware
import GuestKernel
import MemoryModel
import Simulation
import TestSupport
import Testing

/// TDVF before b15f98e68f (edk2 PR 11525, edk2-stable202511): with more
/// than one vCPU `BspApAcceptMemoryResourceRange()` accepts whole 2 MiB
/// pages only, so a low-RAM end that is not 2 MiB aligned (q35 below
/// 2816 MiB, an odd number of MiB) leaves the last MiB PENDING, and the PEI
/// core's first page allocation at the top of low RAM kills the TD.
@Suite struct TDVFTailTests {
    func boot(_ memory: UInt64, vcpus: Int = 4, tag: String) throws -> BootResult {
        let release = try EDK2Release.parse(tag)
        return try bootResult { s in
            s.platform = .tdx; s.memory = memory; s.vcpus = vcpus; s.lazy = true
            s.edk2Release = release; s.firmware = release.generation(tdx: true)
            s.workload = .none
        }
    }

    /// 2815M: low RAM ends at 0xAFF00000; the last chunk's 1 MiB past its
    /// last whole 2 MiB page is dropped before the fix and accepted after it.
    @Test func oddSizeBelow2816MFailsBeforeTheFixAndBootsAfter() throws {
        let before = try boot(2815 << 20, tag: "edk2-stable202508")
        let tail = AddressRange(start: 0xAFE0_0000, end: 0xAFF0_0000)
        #expect(before.firmware.droppedByFirmware == [tail])
        guard case .terminated(let why) = before.outcome else {
            Issue.record("booted: \(before.outcomeString)"); return
        }
        // The access is the PEI core's first allocation, the top page of low RAM, killed by KVM.
        #expect(why.contains("Guest access before accepting \(GuestPhysicalAddress(0xAFEF_F000))"), "\(why)")
        #expect(before.events.contains { $0.contains("b15f98e68f") })

        let after = try boot(2815 << 20, tag: "edk2-stable202511")
        #expect(after.outcome == .ok)
        #expect(after.firmware.droppedByFirmware.isEmpty)
        #expect(after.firmware.firmwareAccepted.contains { $0.end == 0xAFF0_0000 })
    }

    /// The conditions, each from the code: one vCPU takes the BSP-only path
    /// (`BspAcceptMemoryResourceRange()` accepts the tail at 4 KiB); a size
    /// that is a multiple of 2 MiB has no tail; from 2816M q35 puts 2 GiB
    /// below 4 GiB, which is aligned.
    @Test(arguments: [(UInt64(2815) << 20, 1), (2814 << 20, 4), (2817 << 20, 4), (3001 << 20, 2)])
    func otherSizesBootOnOldTags(memory: UInt64, vcpus: Int) throws {
        let r = try boot(memory, vcpus: vcpus, tag: "edk2-stable202302")
        #expect(r.outcome == .ok, "\(r.outcomeString)")
        #expect(r.firmware.droppedByFirmware.isEmpty)
    }

    /// Any odd MiB size below 2816M with 2 vCPUs fails on an old tag, and
    /// what is dropped is exactly `[alignDown(end, 2M), end)` of low RAM.
    @Test(arguments: [UInt64(257), 1023, 2047, 2813])
    func droppedTailIsTheLastPartialPage(mib: UInt64) throws {
        let r = try boot(mib << 20, vcpus: 2, tag: "edk2-stable202408")
        let end = mib << 20
        #expect(r.firmware.droppedByFirmware == [AddressRange(start: alignDown(end, 2 << 20), end: end)])
        #expect(r.outcome != .ok, "\(r.outcomeString)")
    }
}
