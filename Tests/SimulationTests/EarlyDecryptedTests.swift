import CoCoGuest
import CostModel
import Firmware
import GuestKernel
import MemoryModel
@testable import Simulation
import TestSupport
import Testing

/// The SNP guest's shared memory other than the SWIOTLB
/// (`KernelConfig.earlyDecrypted`, `--early-decrypted`): `__bss_decrypted`
/// (2 MiB, `sme_postprocess_startup()`, 512 MSR page-state changes), each
/// vCPU's GHCB page (`init_ghcb()`'s `early_set_memory_decrypted()`:
/// shared, private and shared again through `snp_memcpy()` and
/// `__set_clr_pte_enc()`), and the unused part of `__bss_decrypted` made
/// private again by `mem_encrypt_free_decrypted_mem()` through the GHCB. The
/// expected counts are derived from those functions.
@Suite struct EarlyDecryptedTests {
    static func boot(_ platform: PlatformKind, on: Bool, host: Bool = false, _ f: (inout Scenario) -> Void = { _ in }) throws -> BootResult {
        try bootResult { s in
            s.platform = platform
            if platform == .snp { s.firmware = .ovmfSNP }
            s.snpHost = host
            s.kernel.earlyDecrypted = on
            f(&s)
        }
    }

    static func meminfo(_ r: BootResult) -> [String] { (r.kernel?.meminfo ?? []).map { "\($0.0) \($0.1)" } }

    /// What the source's functions make of V vCPUs: MSR VMGEXITs 512 + 3V,
    /// rescinds 512 + 2V, pages to shared 512 + 2V, to private V + the
    /// unused 509 (in ceil(509 / 64) = 8 GHCB descriptors of 4K entries, one
    /// exit each: one run of adjacent 4K entries); at the end 3 + V pages
    /// shared.
    @Test(arguments: [false, true])
    func snpSharesTheBSSAndTheGHCBs(_ host: Bool) throws {
        let off = try Self.boot(.snp, on: false, host: host), on = try Self.boot(.snp, on: true, host: host)
        #expect(on.outcome == .ok && off.outcome == .ok)
        let v = UInt64(on.scenario.vcpus)
        let used = GuestKernel.bssDecryptedUsedPages, unused = 512 - used
        let m = on.sharedMemory
        #expect(m.calls == 512 + 3 * v + divRoundUp(unused, 64), "host \(host)")
        #expect(m.vmmExits == 512 + 3 * v + divRoundUp(unused, 64), "host \(host)")
        #expect(m.rescinds == 512 + 2 * v && m.pagesToShared == 512 + 2 * v && m.pagesToPrivate == v + unused, "host \(host)")
        #expect(on.sharedBytes == (used + v) * 4096 && off.sharedBytes == 0)
        #expect(on.counts[.snpMSRPSCExit] - off.counts[.snpMSRPSCExit] == 512 + 3 * v)
        let k = try #require(on.kernel)
        #expect(k.ghcbPages.count == Int(v) && Set(k.ghcbPages.map(\.start)).count == Int(v))
        #expect(k.ghcbPages.allSatisfy { $0.size == 4096 && $0.start % 4096 == 0 })
        let image = AddressRange(start: 16 << 20, size: on.scenario.kernel.kernelInitBytes)
        let pmd = try #require(GuestKernel.bssDecryptedPMD(image: image))
        #expect(k.decryptedRanges == [AddressRange(start: pmd.start, size: used * 4096)] && k.bssDecrypted == nil)
        // The GHCBs' runtime data are carved out of the early-allocation lump: MemTotal does not move.
        #expect(Self.meminfo(on) == Self.meminfo(off))
        #expect(off.committedBytes - on.committedBytes == (used + v) * 4096)
        #expect(on.times.kernelBoot > off.times.kernelBoot && on.times.userspace >= off.times.userspace)
        #expect(on.events.contains { $0.contains("sme_postprocess_startup()") } && on.events.contains { $0.contains("init_ghcb()") })
    }

    /// The guest-facing SNP platform and the SNP host model make the same
    /// requests.
    @Test func bothSNPPlatformsAgree() throws {
        let facing = try Self.boot(.snp, on: true), host = try Self.boot(.snp, on: true, host: true)
        #expect(facing.sharedMemory.calls == host.sharedMemory.calls && facing.sharedMemory.rescinds == host.sharedMemory.rescinds)
        #expect(facing.sharedMemory.pagesToShared == host.sharedMemory.pagesToShared && facing.sharedBytes == host.sharedBytes)
    }

    /// A TD makes none of these shared (`sme_me_mask` is 0, no GHCB): the
    /// option changes nothing.
    @Test func tdxMakesNoneShared() throws {
        let off = try Self.boot(.tdx, on: false), on = try Self.boot(.tdx, on: true)
        #expect(on.counts == off.counts && on.sharedMemory == SharedMemoryStats() && on.committedBytes == off.committedBytes)
        #expect(on.times.kernelBoot == off.times.kernelBoot && Self.meminfo(on) == Self.meminfo(off))
        #expect(on.kernel?.ghcbPages.isEmpty == true)
    }

    /// kexec: a kernel with `snp_kexec_finish()` (6.13) converts the used
    /// `__bss_decrypted` pages back through the GHCB and the GHCBs last
    /// through the MSR protocol; 6.12 leaves them shared.
    @Test func kexecConvertsThemBack() throws {
        func kexec(_ v: String) throws -> KexecResult {
            var s = Scenario()
            s.platform = .snp; s.firmware = .ovmfSNP
            s.kernel.version = try KernelVersion(parsing: v)
            s.kernel.earlyDecrypted = true
            s.kernel.lazyAccept = s.lazy
            return try BootSimulation(scenario: s, calibration: Calibration.builtIn()).runKexec(KexecPlan())
        }
        let vcpus = UInt64(Scenario().vcpus)
        let bytes = (GuestKernel.bssDecryptedUsedPages + vcpus) * 4096
        let with = try kexec("7.0")
        #expect(with.unshare.convertedBytes == bytes && with.unshare.leftSharedBytes == 0 && with.unshare.outcome == .ok)
        #expect(with.first.kernel?.ghcbPages.isEmpty == true)
        #expect(with.first.kernel?.events.contains { $0.contains("GHCB page") && $0.contains("MSR protocol") } == true)
        let without = try kexec("6.12")
        #expect(without.unshare.leftSharedBytes == bytes && without.unshare.convertedBytes == 0)
    }

    /// The scenario key: off by default, printed only when on.
    @Test func scenarioKeyRoundTrips() throws {
        #expect(!Scenario().kernel.earlyDecrypted)
        let f = try ScenarioFile.parse("guest:\n  memory: 4G\nkernel:\n  early-decrypted: true\n", name: "t.yaml")
        #expect(f.scenario.kernel.earlyDecrypted)
        #expect(ScenarioFile(scenario: f.scenario).yaml.contains("early-decrypted: true"))
        #expect(!ScenarioFile(scenario: Scenario()).yaml.contains("early-decrypted"))
    }
}
