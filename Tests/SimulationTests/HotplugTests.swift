import CoCoGuest
import CostModel
import Firmware
import GuestKernel
import KVM
import MemoryModel
import Simulation
import TDXModule
import TestSupport
import Testing

/// Memory hot-plugged into a confidential guest (issue 16 §4): mainline's
/// fatal first touch, each proposed series making it ok, edk2's UHP window,
/// and what unplugging does to the guest and the host.
@Suite struct HotplugTests {
    /// A 4 GiB guest that hot-plugs `plug` and then touches `touch`.
    func run(_ platform: PlatformKind = .tdx, plug: Workload, then rest: [Workload] = [.touch(3 << 30)],
             fix: HotplugAcceptance = .mainline, lazy: Bool = true, uhp: Bool = false) throws -> BootResult {
        try bootResult {
            $0.platform = platform
            $0.firmware = platform == .tdx ? .tdvf : .ovmfSNP
            $0.memory = 4 << 30
            $0.lazy = lazy
            $0.kernel.hotplugAcceptance = fix
            $0.firmwareMarksUHP = uhp
            $0.workload = .phases([plug] + rest)
        }
    }

    static let dimm1G = Workload.hotplug(1 << 30, .dimm)
    /// Where the window starts for a 4 GiB q35 guest: RAM above 4 GiB ends at 6 GiB.
    static let windowBase: UInt64 = 6 << 30

    /// Mainline: the hot-added DIMM goes to the buddy allocator unaccepted
    /// (MemTotal grows, Unaccepted does not), and the first touch of it kills a TD.
    @Test func mainlineFirstTouchIsFatalOnTDX() throws {
        let quiet = try run(plug: Self.dimm1G, then: [])
        #expect(quiet.outcome == .ok)
        let k = try #require(quiet.kernel)
        let base = try run(plug: .none, then: [])
        let baseKernel = try #require(base.kernel)
        #expect(k.totalManagedPages == baseKernel.totalManagedPages + (1 << 30) / 4096)
        #expect(k.totalUnacceptedPages == baseKernel.totalUnacceptedPages)
        #expect(k.unacceptedInBuddyPages == (1 << 30) / 4096)

        let r = try run(plug: Self.dimm1G)
        #expect(r.outcomeString == "guest_terminated: KVM: VM dead: Guest access before accepting \(GuestPhysicalAddress(Self.windowBase)) on vCPU 0")
    }

    /// On SNP the same touch is a #VC for a page not validated.
    @Test func mainlineFirstTouchIsVCOnSNP() throws {
        let r = try run(.snp, plug: Self.dimm1G)
        #expect(r.outcomeString.hasPrefix("guest_terminated: SNP: #VC exception, error code 0x404"))
        #expect(r.outcomeString.contains(GuestPhysicalAddress(Self.windowBase).description))
    }

    /// Each series makes the same run ok, on both platforms, lazy and eager.
    @Test(arguments: [HotplugAcceptance.amdRFC, .tdxRFCv2], [PlatformKind.tdx, .snp])
    func fixesMakeTheTouchOK(fix: HotplugAcceptance, platform: PlatformKind) throws {
        for lazy in [true, false] {
            let r = try run(platform, plug: Self.dimm1G, fix: fix, lazy: lazy)
            #expect(r.outcomeString == "ok", "\(fix) \(platform) lazy=\(lazy)")
        }
    }

    /// The UHP-aware kernel, with a firmware that marks the window, too.
    @Test func uhpAwareKernelMakesTheTouchOK() throws {
        for p in PlatformKind.allCases {
            #expect(try run(p, plug: Self.dimm1G, fix: .uhp, uhp: true).outcomeString == "ok")
        }
    }

    /// Lazy: the AMD RFC's extended bitmap puts the DIMM on the unaccepted
    /// list (Unaccepted grows by it); eager: it is accepted when added.
    @Test func amdRFCLazyQueuesEagerAccepts() throws {
        let base = try #require(try run(plug: .none, then: [], fix: .amdRFC).kernel)
        let lazy = try run(plug: Self.dimm1G, then: [], fix: .amdRFC)
        let k = try #require(lazy.kernel)
        #expect(k.totalUnacceptedPages == base.totalUnacceptedPages + (1 << 30) / 4096)
        #expect(try #require(k.unaccepted).table.coveredEnd >= Self.windowBase + (1 << 30))
        let eager = try run(plug: Self.dimm1G, then: [], fix: .amdRFC, lazy: false)
        let e = try #require(eager.kernel)
        #expect(e.totalUnacceptedPages == 0)
        #expect(eager.acceptedWorkload == 1 << 30)
    }

    /// The TDX RFC v2's table: version 2, covering the SRAT window from
    /// boot with its units unaccepted and not plugged; hot-add plugs them.
    @Test func tdxRFCv2TableHasThePluggedBitmap() throws {
        let r = try run(plug: Self.dimm1G, then: [], fix: .tdxRFCv2)
        let fwTable = try #require(r.firmware.table)
        #expect(fwTable.version == 2)
        #expect(fwTable.coveredEnd >= Self.windowBase + (1 << 30))
        let windowUnits = fwTable.unit(containing: Self.windowBase)..<fwTable.unit(containing: Self.windowBase + (1 << 30))
        #expect(fwTable.bitmap.countSet(in: windowUnits) == 512)
        #expect(try #require(fwTable.plugged).countSet(in: windowUnits) == 0)
        // Static memory: plugged by process_unaccepted_memory() ("set plugged bits for static memory and never unset").
        let highRAM = fwTable.unit(containing: 4 << 30)..<fwTable.unit(containing: Self.windowBase)
        #expect(try #require(fwTable.plugged).countSet(in: highRAM) == 1024)
        let table = try #require(r.kernel?.unaccepted?.table)
        #expect(try #require(table.plugged).countSet(in: windowUnits) == 512)
    }

    /// edk2 PR 12811's window in the map, and a UHP-unaware kernel: the
    /// window is RAM to it, memblock allocates from its top, and accepting
    /// memory with no backing is reported as broken.
    @Test func uhpWindowAcceptedEarlyIsBroken() throws {
        let r = try run(plug: Self.dimm1G, then: [], uhp: true)
        let d = try #require(r.firmware.mapAtLoader.descriptors.first { $0.attribute.contains(.uhp) })
        #expect(d.type == .unaccepted && d.physicalStart == Self.windowBase)
        #expect(EFIMemoryAttributes.uhp.rawValue == 0x200000)
        #expect(r.outcomeString.hasPrefix("guest_terminated: broken: "))
        #expect(r.outcomeString.contains("EFI_MEMORY_UHP"))
        let s = try run(.snp, plug: Self.dimm1G, then: [], uhp: true)
        #expect(s.outcomeString.hasPrefix("guest_terminated: broken: "))
    }

    /// Unplugging a DIMM with the TDX RFC v2: the guest's accepted units go
    /// back to unaccepted in the bitmap, the host deletes the memslot
    /// (TDH.MEM.PAGE.REMOVE) and frees the memory, and a DIMM plugged again
    /// at the same address is accepted afresh.
    @Test func dimmUnplugAndReplugWithTDXRFCv2() throws {
        let touched = try run(plug: Self.dimm1G, then: [.touch(3 << 30)], fix: .tdxRFCv2)
        let r = try run(plug: Self.dimm1G, then: [.touch(3 << 30), .unplug(1 << 30, .dimm)], fix: .tdxRFCv2)
        #expect(r.outcomeString == "ok")
        let vm = try #require(r.host)
        #expect(vm.slots.allSatisfy { $0.frames.upperBound.address.value <= Self.windowBase })
        #expect(r.committedBytes < touched.committedBytes)
        // The memslot's deletion removed the accepted private pages (TDH.MEM.PAGE.REMOVE).
        let removes = vm.module.calls[leaf: .memPageRemove, status: .success]
        #expect(removes > (try #require(touched.host)).module.calls[leaf: .memPageRemove, status: .success])
        let again = try run(plug: Self.dimm1G, then: [.touch(3 << 30), .unplug(1 << 30, .dimm), Self.dimm1G, .touch(1 << 30)], fix: .tdxRFCv2)
        #expect(again.outcomeString == "ok")
    }

    /// The AMD RFC's hot-remove calls arch_unaccept_memory() on accepted
    /// units, which only SNP implements: a TD panics.
    @Test func amdRFCUnplugPanicsOnTDX() throws {
        let plan: [Workload] = [.touch(3 << 30), .unplug(1 << 30, .dimm)]
        let r = try run(plug: Self.dimm1G, then: plan, fix: .amdRFC)
        #expect(r.outcomeString.hasPrefix("guest_terminated: kernel panic: Cannot accept memory: unknown platform"))
        #expect(try run(.snp, plug: Self.dimm1G, then: plan, fix: .amdRFC).outcomeString == "ok")
    }

    /// virtio-mem: QEMU discards only the shared memory of unplugged blocks,
    /// so the private pages stay accepted in the S-EPT, and accepting them
    /// again after a re-plug fails (the March 2026 thread's log).
    @Test func virtioMemReplugFailsAcceptOnTDX() throws {
        let plan: [Workload] = [.touch(2 << 30), .unplug(1 << 30, .virtioMem), .hotplug(1 << 30, .virtioMem), .touch(2 << 30)]
        let r = try run(plug: .hotplug(2 << 30, .virtioMem), then: plan, fix: .tdxRFCv2)
        #expect(r.outcomeString.hasPrefix("guest_terminated: TDX: Failed to accept memory at"))
    }

    /// On SNP the AMD RFC's unplug makes the accepted units shared, so a
    /// re-plugged block validates afresh; the TDX RFC v2's unplug has no SNP
    /// `arch_unaccept_memory()` and panics.
    @Test func virtioMemUnplugOnSNP() throws {
        let plan: [Workload] = [.touch(2 << 30), .unplug(1 << 30, .virtioMem), .hotplug(1 << 30, .virtioMem), .touch(2 << 30)]
        #expect(try run(.snp, plug: .hotplug(2 << 30, .virtioMem), then: plan, fix: .amdRFC).outcomeString == "ok")
        let v2 = try run(.snp, plug: .hotplug(2 << 30, .virtioMem), then: plan, fix: .tdxRFCv2)
        #expect(v2.outcomeString.hasPrefix("guest_terminated: kernel panic: Cannot unaccept memory: unknown platform"))
    }

    /// State is per range: a 1 TiB DIMM costs no more model state than 1 GiB.
    @Test func largeHotplugIsPerRange() throws {
        let r = try bootResult {
            $0.memory = 4 << 30
            $0.kernel.hotplugAcceptance = .tdxRFCv2
            $0.workload = .phases([.hotplug(1 << 40, .dimm), .touch(8 << 30)])
        }
        #expect(r.outcomeString == "ok")
        #expect((r.kernel?.zones[2].pendingUnacceptedBlocks.count ?? 99) <= 2)
    }

    /// Sizes a device cannot take are refused when the phase is read.
    @Test func badHotplugSizesAreErrors() throws {
        for bad in ["hotplug=100M", "hotplug=1G:nvdimm", "unplug=6M:virtio-mem", "hotplug=0", "hotplug=1G:dimm:x"] {
            #expect(throws: CocomemError.self) { try Workload.parse(bad, memory: 4 << 30) }
        }
        #expect(try Workload.parse("hotplug=1G", memory: 4 << 30) == .hotplug(1 << 30, .dimm))
        #expect(try Workload.parse("unplug=4M:virtio-mem", memory: 4 << 30) == .unplug(4 << 20, .virtioMem))
    }
}
