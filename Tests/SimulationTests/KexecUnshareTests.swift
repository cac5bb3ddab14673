import CoCoGuest
import CostModel
import Firmware
import GuestKernel
import MemoryModel
@testable import Simulation
import TestSupport
import Testing

/// `tdx_kexec_finish()` (859e63b789d6, 6.11) and `snp_kexec_finish()`
/// (3074152e56c9, 6.13) with the SWIOTLB shared at boot: with the commit
/// the pool goes back to private before `relocate_kernel` and the next
/// kernel boots; without it the pool stays shared and the next kernel's
/// memblock zeroing of its own pool, at the same place, is a private write
/// to shared memory: fatal on TDX (the VMM converts it implicitly, KVM AUGs
/// a PENDING page, the TD is killed) and on SNP (#VC 0x404).
@Suite struct KexecUnshareTests {
    static func kexec(_ platform: PlatformKind, _ version: String, shared: Bool = true) throws -> KexecResult {
        var s = Scenario()
        s.platform = platform
        if platform == .snp { s.firmware = .ovmfSNP }
        s.memory = 64 << 30
        s.kernel.version = try KernelVersion(parsing: version)
        s.kernel.swiotlbShared = shared
        s.kernel.lazyAccept = s.lazy
        return try BootSimulation(scenario: s, calibration: Calibration.builtIn()).runKexec(KexecPlan())
    }

    @Test(arguments: [(PlatformKind.tdx, "7.0"), (.tdx, "6.11"), (.snp, "7.0"), (.snp, "6.13")])
    func withTheCommitThePoolGoesBackToPrivate(_ p: PlatformKind, _ v: String) throws {
        let r = try Self.kexec(p, v)
        let k = try #require(r.first.kernel)
        let pool = try #require(k.swiotlbRange)
        #expect(r.unshare.convertedBytes == pool.size && r.unshare.leftSharedBytes == 0 && r.unshare.outcome == .ok)
        #expect(k.platform.sharedStats.pagesToPrivate == pool.size / 4096)
        // What is shared at the end is the next kernel's own pool, made shared at its boot.
        let next = try #require(r.second?.kernel)
        #expect(next.decryptedRanges.count == 1 && k.platform.sharedPages * 4096 == next.swiotlbBytes)
        #expect(r.unshareSeconds > 0 && r.reboot?.outcome == .ok)
        #expect(r.second?.outcome == .ok)
    }

    @Test(arguments: [(PlatformKind.tdx, "6.10", "Guest access before accepting"), (.snp, "6.12", "0x404")])
    func withoutItTheNextKernelDiesOnThePool(_ p: PlatformKind, _ v: String, _ fatal: String) throws {
        let r = try Self.kexec(p, v)
        let pool = try #require(r.first.kernel?.swiotlbRange)
        #expect(r.unshare.leftSharedBytes == pool.size && r.unshare.convertedBytes == 0 && r.unshareSeconds == 0)
        #expect(r.reboot?.outcome == .ok)
        let second = try #require(r.second)
        guard case .terminated(let why) = second.outcome else { Issue.record("the next kernel booted on shared memory"); return }
        #expect(why.contains(fatal))
        #expect(second.events.contains { $0.contains("a previous kernel left shared") })
        // The same kexec without the pool made shared boots.
        let control = try Self.kexec(p, v, shared: false)
        #expect(control.unshare == KexecUnshare() && control.second?.outcome == .ok)
    }
}
