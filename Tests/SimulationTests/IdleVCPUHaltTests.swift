import CoCoGuest
import CostModel
import Firmware
import GuestKernel
import KVM
import MemoryModel
import Reports
import Simulation
import TDXModule
import TestSupport
import Testing

/// The boot's idle vCPUs halted (issue 17 §1, goal 3): every AP spins in
/// the firmware's mailbox loop until `smp_init()`, halts in `do_idle()`
/// once up (TDVMCALL<HLT>, out of guest mode), is woken for
/// `page_alloc_init_late()`'s threads and for user space, and every vCPU
/// idles at the shell until a workload phase wakes the ones it runs on.
/// `tdx_track()` kicks only vCPUs in guest mode, so only kicks (and their
/// cost) depend on it; host memory and the S-EPT do not.
@Suite struct IdleVCPUHaltTests {
    /// A TD that hot-plugs a DIMM with the TDX RFC v2, touches memory and
    /// unplugs the DIMM: the memslot's deletion zaps its private pages
    /// (BLOCK, TRACK, REMOVE), after the boot, from a phase on the BSP.
    static func unplugBoot(vcpus: Int, idlePoll: Bool, step: Bool = false, host: TDXHostModel = .tdx,
                           swiotlbShared: Bool = false, memory: UInt64 = 4 << 30, touch: UInt64 = 3 << 30) throws -> BootResult {
        try bootResult {
            $0.memory = memory; $0.vcpus = vcpus; $0.tdxHost = host
            $0.kernel.hotplugAcceptance = .tdxRFCv2
            $0.kernel.idlePoll = idlePoll
            $0.kernel.swiotlbShared = swiotlbShared
            $0.stepByStep = step
            $0.workload = .phases([.hotplug(1 << 30, .dimm), .touch(touch), .unplug(1 << 30, .dimm)])
        }
    }

    /// Host stats with the kicks taken out: what must not depend on which
    /// vCPUs are halted.
    static func hostStatsWithoutKicks(_ vm: TDXVM) -> String {
        vm.statsJSON.serialized().split(separator: "\n").filter { !$0.contains("vcpu_kicks") }.joined(separator: "\n")
    }

    /// The unplug's TRACKs kick no vCPU: the phase runs on the BSP, which
    /// wrote the eject register and is in its I/O exit while QEMU deletes the
    /// memslot (`TrackKickTests.theEjectingVCPUGetsNoIPIWhenItsDIMMGoesAway`),
    /// and the other vCPUs idle, halted; with `idle=poll` the seven others
    /// are in guest mode and each TRACK kicks them. Host memory, S-EPT calls,
    /// AUGs and committed bytes are the same either way. Fails without the
    /// halts (seven kicks per TRACK in both).
    @Test func unplugKicksOnlyTheVCPUsInGuestMode() throws {
        let halted = try Self.unplugBoot(vcpus: 8, idlePoll: false)
        let polling = try Self.unplugBoot(vcpus: 8, idlePoll: true)
        #expect(halted.outcome == .ok && polling.outcome == .ok)
        let h = try #require(halted.host), p = try #require(polling.host)
        let tracks = h.module.calls[leaf: .memTrack, status: .success]
        #expect(tracks > 0 && tracks == p.module.calls[leaf: .memTrack, status: .success])
        #expect(h.counters[.vcpuKicks] == 0)
        #expect(p.counters[.vcpuKicks] == 7 * tracks)
        #expect(Self.hostStatsWithoutKicks(h) == Self.hostStatsWithoutKicks(p))
        #expect(halted.committedBytes == polling.committedBytes)
        #expect(h.module.calls[leaf: .memSeptAdd, status: .success] == p.module.calls[leaf: .memSeptAdd, status: .success])
        // The guest's operations differ at most in idle ticks (HLT exits, none with idle=poll): the
        // unplug's zaps are QEMU's, charged to no vCPU.
        var a = halted.counts, b = polling.counts
        #expect(a[.kernelIdleTickExit] == halted.kernel?.idleTickExits && b[.kernelIdleTickExit] == 0)
        a[.kernelIdleTickExit] = 0; b[.kernelIdleTickExit] = 0
        #expect(a == b)
        // Halting is invisible in the guest's memory.
        #expect(halted.kernel?.meminfo.map { $0.1 } == polling.kernel?.meminfo.map { $0.1 })
    }

    /// Before `smp_init()` the APs spin in TDVF's mailbox loop, in guest
    /// mode: the SWIOTLB's conversion at `mem_encrypt_init()` kicks every
    /// vCPU whether idle vCPUs halt or poll.
    @Test func conversionsBeforeSMPInitKickEveryVCPU() throws {
        func boot(_ poll: Bool) throws -> BootResult {
            try bootResult { $0.memory = 4 << 30; $0.vcpus = 6; $0.kernel.swiotlbShared = true; $0.kernel.idlePoll = poll }
        }
        let halted = try boot(false), polling = try boot(true)
        let h = try #require(halted.host), p = try #require(polling.host)
        let tracks = h.module.calls[leaf: .memTrack, status: .success]
        #expect(tracks > 0)
        #expect(h.counters[.vcpuKicks] == 6 * tracks && p.counters[.vcpuKicks] == 6 * tracks)
    }

    /// Where the vCPUs are after each step of the boot: all in guest mode
    /// at the start, the APs halted once `smp_init()` is done, every vCPU
    /// halted at the shell; `idle=poll` keeps them all in guest mode.
    @Test(arguments: [false, true])
    func vCPUsHaltWhereTheKernelIdles(_ poll: Bool) throws {
        let costs = CostTable(try Calibration.builtIn())
        var config = KernelConfig(); config.idlePoll = poll
        let four = try TDXVM(options: .upstream4K, features: TDXModuleFeatures(), vcpus: 4,
                             slots: [Memslot(id: 1, baseGFN: GFN(0), pages: (4 << 30) >> 12, backing: .buddy)])
        four.finalize()
        let platform = TDXGuestPlatform(host: four)
        let k = GuestKernel(config: config, vcpus: 4, costs: costs, platform: platform,
                            ram: [AddressRange(start: 1 << 20, end: 4 << 30)], unaccepted: nil)
        #expect(four.vcpusInGuestMode == 4 && (0..<4).allSatisfy { k.isRunning(vcpu: $0) })
        var clock = PhaseClock(vcpus: 4)
        #expect(k.freeAll(early: &clock) == .ok)
        #expect(k.earlyAllocations(clock: &clock) == .ok)
        #expect(four.vcpusInGuestMode == (poll ? 4 : 1))
        #expect(k.isRunning(vcpu: 0) && (1..<4).allSatisfy { k.isRunning(vcpu: $0) == poll })
        #expect(k.deferredInit(clock: &clock) == .ok)
        #expect(four.vcpusInGuestMode == (poll ? 4 : 1))
        // A kernel that kexec starts finds its APs back in the firmware's loop.
        let again = GuestKernel(config: config, vcpus: 4, costs: costs, platform: platform,
                                ram: [AddressRange(start: 1 << 20, end: 4 << 30)], unaccepted: nil)
        #expect(four.vcpusInGuestMode == 4 && again.isRunning(vcpu: 3))

        let r = try bootResult { $0.memory = 4 << 30; $0.vcpus = 4; $0.kernel.idlePoll = poll }
        #expect(try #require(r.host).vcpusInGuestMode == (poll ? 4 : 0))
    }

    /// Bulk equals stepping with the idle vCPUs halted and woken: the
    /// unplug's zaps and the 2M host's accepts, on 2 to 8 vCPUs. A 3 GiB
    /// guest touching 2 GiB: the smallest that still leaves memory
    /// unaccepted for the phase (a stepped boot's time grows with its size).
    @Test(arguments: [(2, TDXHostModel.tdx), (5, .tdxHuge), (8, .tdx)])
    func bulkEqualsSteppingWithHaltedVCPUs(_ vcpus: Int, _ host: TDXHostModel) throws {
        let bulk = try Self.unplugBoot(vcpus: vcpus, idlePoll: false, host: host, memory: 3 << 30, touch: 2 << 30)
        let step = try Self.unplugBoot(vcpus: vcpus, idlePoll: false, step: true, host: host, memory: 3 << 30, touch: 2 << 30)
        #expect(bulk.outcome == .ok)
        #expect(bulk.counts == step.counts && bulk.committedBytes == step.committedBytes)
        #expect(bulk.times.totalBoot == step.times.totalBoot && bulk.times.workload == step.times.workload)
        #expect(bulk.json.serialized() == step.json.serialized())
        let b = try #require(bulk.host), s = try #require(step.host)
        #expect(b.statsJSON.serialized() == s.statsJSON.serialized())
    }
}
