import CoCoGuest
import CostModel
import Firmware
import GuestKernel
import KVM
import MemoryModel
@testable import Simulation
import SNP
import TestSupport
import Testing

/// The SWIOTLB made shared at boot (issue 16): `mem_encrypt_init()` →
/// `swiotlb_update_mem_attributes()` → `set_memory_decrypted()` of the pool,
/// through TDX's MapGPA (KVM's 2 MiB KVM_HC_MAP_GPA_RANGE exits, QEMU's
/// KVM_SET_MEMORY_ATTRIBUTES and guest_memfd hole) and SNP's page-state
/// changes (rescind, then PSC to shared). Every expectation is derived
/// from the pool's size and the source's rules, not read off a run.
@Suite struct SharedSWIOTLBTests {
    static func boot(_ platform: PlatformKind, shared: Bool, _ f: (inout Scenario) -> Void = { _ in }) throws -> BootResult {
        try bootResult { s in
            s.platform = platform
            if platform == .snp { s.firmware = .ovmfSNP }
            s.kernel.swiotlbShared = shared
            f(&s)
        }
    }

    static func meminfo(_ r: BootResult) -> [String] { (r.kernel?.meminfo ?? []).map { "\($0.0) \($0.1)" } }

    /// TDX, 4 GiB: the 256 MiB pool is one MapGPA, 128 exits of 2 MiB, each
    /// of its 4K private leaves (the upstream host maps private memory at
    /// 4K) BLOCKed, TRACKed and REMOVEd, and its guest_memfd pages freed;
    /// no VMM page backs it until something touches it. /proc/meminfo does
    /// not move: the pool is the kernel's memory either way.
    @Test func tdxPoolGoesSharedThroughMapGPA() throws {
        let off = try Self.boot(.tdx, shared: false), on = try Self.boot(.tdx, shared: true)
        let k = try #require(on.kernel)
        let pool = try #require(k.swiotlbRange)
        #expect(pool.size == 256 << 20 && on.outcome == .ok)
        let pages = pool.size / 4096
        let m = on.sharedMemory
        #expect(m.calls == 1 && m.vmmExits == divRoundUp(pool.size, 2 << 20) && m.pagesToShared == pages && m.pagesToPrivate == 0)
        #expect(on.sharedBytes == pool.size && off.sharedMemory == SharedMemoryStats() && off.sharedBytes == 0)
        #expect(on.counts[.tdxMapGPAExit] == m.vmmExits && off.counts[.tdxMapGPAExit] == 0)
        // Each 4K leaf: BLOCK, TRACK, REMOVE.
        let removed = on.counts[.tdxRemove] - off.counts[.tdxRemove]
        #expect(m.hostZaps == removed && removed == pages)
        #expect(on.counts[.tdxBlock] - off.counts[.tdxBlock] == pages)
        #expect(on.counts[.tdxTrack] - off.counts[.tdxTrack] == pages)
        // The host freed the private pages and backs nothing shared yet.
        #expect(off.committedBytes >= on.committedBytes + pool.size)
        #expect(try #require(on.host).hostMemory.vmmSharedPages == 0)
        #expect(try #require(on.host).isAccessible(pool.framesCovering) == false)
        #expect(Self.meminfo(on) == Self.meminfo(off) && k.swiotlbBytes == off.kernel?.swiotlbBytes)
        #expect(on.times.kernelBoot > off.times.kernelBoot)
        #expect(on.events.contains { $0.contains("swiotlb_update_mem_attributes()") } && !off.events.contains { $0.contains("swiotlb_update_mem_attributes()") })
    }

    /// The time the conversion adds is what its operations cost on the
    /// boot CPU: the exits at tdx.map_gpa_exit plus BLOCK, TRACK, REMOVE.
    @Test func tdxConversionTimeIsItsOperations() throws {
        let off = try Self.boot(.tdx, shared: false), on = try Self.boot(.tdx, shared: true)
        let costs = CostTable(try Calibration.builtIn())
        var added = PhaseClock(vcpus: 1)
        let diff = on.counts - off.counts
        added.charge(diff, vcpu: 0, costs: costs)
        let delta = on.times.kernelBoot - off.times.kernelBoot
        #expect(abs(delta - added.seconds(costs)) < 1e-9)
    }

    /// SNP, 4 GiB: 64-entry descriptors of 2M entries; each entry rescinded
    /// (PVALIDATE 0) before its VMGEXIT, each adjacent run one
    /// KVM_HC_MAP_GPA_RANGE exit, the RMP entries returned to the
    /// hypervisor, the backing freed: committed memory falls by the pool.
    @Test func snpPoolGoesSharedThroughPageStateChanges() throws {
        let off = try Self.boot(.snp, shared: false), on = try Self.boot(.snp, shared: true)
        let k = try #require(on.kernel)
        let pool = try #require(k.swiotlbRange)
        #expect(on.outcome == .ok && pool.size == 256 << 20)
        let m = on.sharedMemory
        let frames = pool.framesCovering
        // Linux's entries: 2M from the first 2M-aligned frame while 2M is left, 4K around them.
        var entries: UInt64 = 0, g = frames.lowerBound
        while g < frames.upperBound {
            let two = g.isAligned(to: .size2M) && frames.upperBound - g >= 512
            entries += 1; g = g + (two ? 512 : 1)
        }
        #expect(m.calls == divRoundUp(entries, 64) && m.pagesToShared == pool.size / 4096)
        #expect(off.committedBytes - on.committedBytes == pool.size)
        #expect(on.sharedBytes == pool.size)
        #expect(m.hostZaps > 0 && m.rescinds >= entries)
        #expect(Self.meminfo(on) == Self.meminfo(off))
        #expect(on.times.kernelBoot > off.times.kernelBoot)
    }

    /// The scenario key and its printing: off by default (printed only when
    /// on; the default waits for the zap's costs to be measured, docs/CLI.md).
    @Test func scenarioKeyRoundTrips() throws {
        #expect(!Scenario().kernel.swiotlbShared)
        let f = try ScenarioFile.parse("guest:\n  memory: 4G\nkernel:\n  swiotlb-shared: true\n", name: "t.yaml")
        #expect(f.scenario.kernel.swiotlbShared)
        #expect(ScenarioFile(scenario: f.scenario).yaml.contains("swiotlb-shared: true"))
        #expect(!ScenarioFile(scenario: Scenario()).yaml.contains("swiotlb-shared"))
        let off = try ScenarioFile.parse("guest:\n  memory: 4G\nkernel:\n  swiotlb-shared: false\n", name: "t.yaml")
        #expect(!off.scenario.kernel.swiotlbShared)
    }

    /// Every kernel the version table knows converts its pool at boot
    /// (`mem_encrypt_init()` runs for CC_ATTR_MEM_ENCRYPT, which TDX and SNP
    /// guests have since 5.19): with the option on, a boot on each platform
    /// and host makes the whole pool shared.
    @Test(arguments: ["6.5", "7.0"])
    func everyReleaseConvertsThePool(_ release: String) throws {
        for (platform, snpHost) in [(PlatformKind.tdx, false), (.snp, false), (.snp, true)] {
            let r = try bootResult { s in
                s.platform = platform
                if platform == .snp { s.firmware = .ovmfSNP }
                s.snpHost = snpHost
                s.kernel.swiotlbShared = true
                s.kernel.version = try! KernelVersion(parsing: release)
            }
            let pool = try #require(r.kernel?.swiotlbRange)
            #expect(r.outcome == .ok && r.sharedBytes == pool.size && r.sharedMemory.pagesToShared == pool.size / 4096, "\(platform) host snp \(snpHost)")
        }
    }

    /// The SNP host model (`--host snp`): the guest's rescinds and PSC to
    /// shared meet KVM's `snp_begin_psc()`, QEMU's conversion and
    /// `sev_gmem_invalidate()`. The guest makes the same requests as on the
    /// guest-facing SNP platform (the same descriptors, exits and
    /// rescinds), the RMP entries of the pool go back to the hypervisor, the
    /// host's committed memory falls by the pool, /proc/meminfo does not
    /// move, and the boot's added time is exactly the host's operations.
    @Test func snpHostPoolGoesSharedThroughPageStateChanges() throws {
        func boot(_ shared: Bool, host: Bool) throws -> BootResult {
            try Self.boot(.snp, shared: shared) { $0.snpHost = host }
        }
        let off = try boot(false, host: true), on = try boot(true, host: true), facing = try boot(true, host: false)
        let pool = try #require(on.kernel?.swiotlbRange)
        let m = on.sharedMemory, f = facing.sharedMemory
        #expect(on.outcome == .ok && m.pagesToShared == pool.size / 4096 && on.sharedBytes == pool.size)
        #expect(m.calls == f.calls && m.vmmExits == f.vmmExits && m.rescinds == f.rescinds)
        let vm = try #require(on.snpHost), vmOff = try #require(off.snpHost)
        #expect(m.hostZaps == vm.stats[.rmpupdateShared4K] + vm.stats[.rmpupdateShared2M] - vmOff.stats[.rmpupdateShared4K] - vmOff.stats[.rmpupdateShared2M])
        #expect(m.hostZaps == pool.size / 4096)  // 4K folios: every page's entry returned at 4K
        #expect(off.committedBytes - on.committedBytes == pool.size)
        #expect(!vm.isValidated(pool.framesCovering) && !vm.attributes.privateAttr.allSatisfy(in: pool.framesCovering, { $0 }))
        #expect(Self.meminfo(on) == Self.meminfo(off))
        let costs = CostTable(try Calibration.builtIn())
        var added = PhaseClock(vcpus: 1)
        added.charge(on.counts - off.counts, vcpu: 0, costs: costs)
        #expect(abs((on.times.kernelBoot - off.times.kernelBoot) - added.seconds(costs)) < 1e-9)
        #expect(on.events.contains { $0.contains("swiotlb_update_mem_attributes()") })
    }

    /// --step-by-step steps the host's zaps too; the bulk zap of a default
    /// boot gives the same counts, host memory and times.
    @Test func bulkZapBootEqualsStepping() throws {
        let bulk = try Self.boot(.tdx, shared: true) { $0.memory = 2 << 30 }
        let step = try Self.boot(.tdx, shared: true) { $0.memory = 2 << 30; $0.stepByStep = true }
        #expect(bulk.counts == step.counts && bulk.committedBytes == step.committedBytes)
        #expect(bulk.times.kernelBoot == step.times.kernelBoot && bulk.sharedMemory == step.sharedMemory)
        #expect(try #require(bulk.host).bulkZappedLeaves > 0 && (try #require(step.host)).bulkZappedLeaves == 0)
    }
}

/// The platforms' conversion paths on their own, both directions.
@Suite struct SharedConversionTests {
    /// TDX: MapGPA to shared and back on a plain host: exits per 2 MiB
    /// (a partial last piece is one more), the accepted range gone, then
    /// `set_memory_encrypted()` accepts it again.
    @Test func tdxRoundTrip() throws {
        let costs = CostTable(try Calibration.builtIn())
        let vm = try BootSimulation.plainTDXHost(coveringBytes: 1 << 30, costs: costs)
        let p = TDXGuestPlatform(host: vm)
        let r = AddressRange(start: 64 << 20, size: (5 << 20) + 4096)
        let a = TDXAcceptor(host: vm, driver: .linux, costs: costs)
        var clock = PhaseClock(vcpus: 1)
        #expect(a.accept(r, vcpu: 0, clock: &clock) == .ok && p.isAccessible(r))
        #expect(p.setMemoryEncrypted(r, toPrivate: false, vcpu: 0, clock: &clock, costs: costs) == .ok)
        #expect(p.sharedStats.vmmExits == 3 && p.sharedPages == r.size / 4096 && !p.isAccessible(r))
        #expect(p.setMemoryEncrypted(r, toPrivate: true, vcpu: 0, clock: &clock, costs: costs) == .ok)
        #expect(p.isAccessible(r) && p.sharedPages == 0 && p.sharedStats.pagesToPrivate == r.size / 4096 && p.sharedStats.calls == 2)
    }

    /// SNP: a rescind of a page that is not validated is NOUPDATE, which
    /// Linux terminates on; a 2M entry cut by the range is split and its
    /// outside pages stay validated.
    @Test func snpRescindAndPartialTwoMegabyteEntry() throws {
        let costs = CostTable(try Calibration.builtIn())
        let plat = SNPPlatform(policy: .back2M)
        let p = SNPGuestPlatform(platform: plat)
        let a = SNPAcceptor(platform: plat, driver: .linuxGHCB, costs: costs)
        var clock = PhaseClock(vcpus: 1)
        let chunk = AddressRange(start: 2 << 20, size: 2 << 20)
        #expect(a.accept(chunk, vcpu: 0, clock: &clock) == .ok)
        let half = AddressRange(start: 2 << 20, size: 1 << 20)
        #expect(p.setMemoryEncrypted(half, toPrivate: false, vcpu: 0, clock: &clock, costs: costs) == .ok)
        #expect(!p.isAccessible(half) && p.isAccessible(AddressRange(start: 3 << 20, size: 1 << 20)))
        #expect(p.sharedPages == 256)
        // Back to private: validated again through the GHCB path.
        #expect(p.setMemoryEncrypted(half, toPrivate: true, vcpu: 0, clock: &clock, costs: costs) == .ok)
        #expect(p.isAccessible(chunk) && p.sharedPages == 0)
        // Never validated: the rescind is NOUPDATE and the guest terminates.
        let fresh = AddressRange(start: 64 << 20, size: 4096)
        guard case .terminated(let why) = p.setMemoryEncrypted(fresh, toPrivate: false, vcpu: 0, clock: &clock, costs: costs) else {
            Issue.record("rescinding an unvalidated page did not terminate"); return
        }
        #expect(why.contains("GHCB_TERM_PVALIDATE"))
    }
}
