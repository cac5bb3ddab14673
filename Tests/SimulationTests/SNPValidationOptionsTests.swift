import CoCoGuest
import CostModel
import Firmware
import GuestKernel
import MemoryModel
@testable import Simulation
import SNP
import TestSupport
import Testing

/// The SNP guest's validation by release and option in whole boots
/// (issue 16): `sev_evict_cache()` (7b306dfa326f), the SVSM at VMPL>0
/// (`--vmpl`), and the decompressor's protocol (d54d610243a4).
@Suite struct SNPValidationOptionsTests {
    static func snp(_ f: @escaping (inout Scenario) -> Void = { _ in }) throws -> BootResult {
        try bootResult { s in
            s.platform = .snp; s.firmware = .ovmfSNP; s.memory = 8 << 30
            f(&s)
        }
    }

    /// Every page Linux validated (the EFI stub's, the kernel's and the
    /// workload's accepts) is evicted on 7.0; none with COHERENCY_SFW_NO, and
    /// none on 6.16, which predates 7b306dfa326f; 6.12.42 has the backport.
    @Test func evictionFollowsTheReleaseAndTheCPUBit() throws {
        let r = try Self.snp { $0.workload = .touch(1 << 30) }
        let linux = r.acceptedStub + r.acceptedKernelBoot + r.acceptedWorkload
        #expect(linux > 0 && r.counts[.snpEvictCache4K] == linux / 4096)
        let sfwNo = try Self.snp { $0.workload = .touch(1 << 30); $0.snpCoherencySfwNo = true }
        #expect(sfwNo.counts[.snpEvictCache4K] == 0 && sfwNo.times.totalBoot + sfwNo.times.workload < r.times.totalBoot + r.times.workload)
        #expect(try Self.snp { $0.kernel.version = .v6_16 }.counts[.snpEvictCache4K] == 0)
        #expect(try Self.snp { $0.kernel.version = try! KernelVersion(parsing: "6.12.42") }.counts[.snpEvictCache4K] > 0)
    }

    /// At VMPL1 the kernel's PVALIDATEs go through SVSM calls and the boot
    /// is slower; the PVALIDATEs themselves (done by the SVSM) and the RMP
    /// are the same.
    @Test func vmplAboveZeroCallsTheSVSM() throws {
        let v0 = try Self.snp(), v1 = try Self.snp { $0.snpVMPL = 1 }
        #expect(v0.counts[.snpSVSMCall] == 0 && v1.counts[.snpSVSMCall] > 0)
        #expect(v1.counts[.snpPvalidate2MSuccess] == v0.counts[.snpPvalidate2MSuccess])
        #expect(v1.counts[.snpPvalidate4KSuccess] == v0.counts[.snpPvalidate4KSuccess])
        #expect(v1.times.totalBoot > v0.times.totalBoot)
    }

    /// Before 99ef9f59847c (6.11) the kernel insists on VMPL0: `enforce_vmpl0()`
    /// terminates the guest before the kernel proper runs; 6.11 boots.
    @Test func kernelsBeforeSVSMSupportTerminateBelowVMPL0() throws {
        let old = try Self.snp { $0.snpVMPL = 1; $0.kernel.version = try! KernelVersion(parsing: "6.10") }
        guard case .terminated(let why) = old.outcome else { Issue.record("6.10 booted at VMPL1"); return }
        #expect(why.contains("GHCB_TERM_NOT_VMPL0") && old.acceptedKernelBoot == 0)
        #expect(try Self.snp { $0.snpVMPL = 1; $0.kernel.version = .v6_11 }.outcome == .ok)
        #expect(try Self.snp { $0.kernel.version = try! KernelVersion(parsing: "6.10") }.outcome == .ok)
    }

    @Test func vmplAndTheCPUBitAreRefusedWhereTheyCannotApply() throws {
        #expect(throws: CocomemError.self) { try bootResult { $0.snpVMPL = 1 } }
        #expect(throws: CocomemError.self) { try bootResult { $0.snpCoherencySfwNo = true } }
        #expect(throws: CocomemError.self) { try Self.snp { $0.snpVMPL = 4 } }
    }

    /// The decompressor's `arch_accept_memory()` follows d54d610243a4 by
    /// release: the MSR protocol from 6.15 (and 6.6.88, 6.12.25, 6.14.4), the
    /// kernel's GHCB descriptors before; on TDX it is the kernel's own.
    @Test func decompressorProtocolByRelease() throws {
        var s = Scenario()
        s.platform = .snp
        let sim = try BootSimulation(scenario: s, calibration: Calibration.builtIn())
        let p = SNPGuestPlatform(platform: SNPPlatform(policy: .back4K))
        func driver(_ v: String) throws -> SNPAcceptDriver? {
            (sim.decompressorAcceptor(p, version: try KernelVersion(parsing: v)) as? SNPAcceptor)?.driver
        }
        #expect(try driver("6.12") == .linuxGHCB && driver("6.12.25") == .linuxMSR && driver("6.15") == .linuxMSR)
        #expect(try driver("6.14.3") == .linuxGHCB && driver("7.0") == .linuxMSR)
        #expect(sim.decompressorAcceptor(OpenGuest(), version: .v7_0) == nil)
    }
}

/// A non-SNP guest platform (for the TDX branch of the decompressor's acceptor).
final class OpenGuest: GuestPlatform {
    var name: String { "open" }
    var kind: PlatformKind { .tdx }
    var committedBytes: UInt64 { 0 }
    func isAccessible(_ r: AddressRange) -> Bool { true }
    func touch(gfn: GuestFrameNumber, vcpu: Int) -> (OpCounts, AcceptOutcome) { (OpCounts(), .ok) }
    /// Nothing is private here, so converting changes nothing.
    func setMemoryEncrypted(_ r: AddressRange, toPrivate: Bool, vcpu: Int, clock: inout PhaseClock, costs: CostTable) -> AcceptOutcome { .ok }
    var sharedStats: SharedMemoryStats { SharedMemoryStats() }
    var sharedPages: UInt64 { 0 }
}
