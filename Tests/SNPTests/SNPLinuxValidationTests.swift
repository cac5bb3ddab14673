import CoCoGuest
import CostModel
import MemoryModel
import SNP
import Testing

/// What Linux adds around its PSC and PVALIDATEs (issue 16): the cache
/// eviction of 7b306dfa326f (`sev_evict_cache()` in `pvalidate_pages()` and
/// `pvalidate_4k_page()`) and, at VMPL>0, the SVSM calls of
/// `svsm_pval_pages()` / `svsm_pval_4k_page()`. Every expectation is counted
/// by hand from those functions.
@Suite struct SNPLinuxValidationTests {
    /// 4 GiB: 2M-aligned guest memory the firmware left unvalidated.
    static let base: UInt64 = 4 << 30

    static func acceptor(_ policy: SNPBackingPolicy, _ driver: SNPAcceptDriver, evict: Bool = false, vmpl: Int = 0,
                         step: Bool = false) throws -> SNPAcceptor {
        let a = SNPAcceptor(platform: SNPPlatform(policy: policy), driver: driver, costs: CostTable(try Calibration.builtIn()))
        a.evictsCache = evict
        a.vmpl = vmpl
        a.stepByStep = step
        return a
    }

    static func counts(_ a: SNPAcceptor, bytes: UInt64) -> OpCounts {
        var clock = PhaseClock(vcpus: 1)
        #expect(a.accept(AddressRange(start: base, size: bytes), vcpu: 0, clock: &clock) == .ok)
        return clock.counts
    }

    /// `sev_evict_cache()` reads two bytes of every 4K page of every entry
    /// validated to private: 512 a 2M entry, whether PVALIDATE took it at 2M
    /// (a 2M host backing) or fell back to 512 4K PVALIDATEs (a 4K backing);
    /// one a page on the MSR path; none without the mitigation or for edk2.
    @Test func evictionCoversEveryPageLinuxValidated() throws {
        let eight: UInt64 = 8 << 20
        #expect(Self.counts(try Self.acceptor(.back2M, .linuxGHCB, evict: true), bytes: eight)[.snpEvictCache4K] == 2048)
        let fallback = Self.counts(try Self.acceptor(.back4K, .linuxGHCB, evict: true), bytes: eight)
        #expect(fallback[.snpPvalidate2MSizeMismatch] == 4 && fallback[.snpEvictCache4K] == 2048)
        #expect(Self.counts(try Self.acceptor(.back4K, .linuxMSR, evict: true), bytes: 1 << 20)[.snpEvictCache4K] == 256)
        #expect(Self.counts(try Self.acceptor(.back2M, .linuxGHCB), bytes: eight)[.snpEvictCache4K] == 0)
        #expect(Self.counts(try Self.acceptor(.back2M, .edk2, evict: true), bytes: eight)[.snpEvictCache4K] == 0)
    }

    /// `svsm_pval_pages()`: one call for a descriptor's 64 entries (the
    /// calling area takes 510); a 2M entry the SVSM fails with
    /// FAIL_SIZEMISMATCH ends the call, which is made again from the next
    /// entry, and is validated afterwards as 512 4K entries in calls of 510
    /// and 2. 128 MiB on a 4K backing: 64 entries all mismatching, so
    /// 1 + 63 + 64 × 2 = 192 calls; on a 2M backing 1. 130 MiB is two
    /// descriptors (64 entries and 1): 2 calls. The MSR path at VMPL>0 is one
    /// call a page (`svsm_pval_4k_page()`). At VMPL0 there are none.
    @Test func svsmCallsFollowSvsmPvalPages() throws {
        #expect(Self.counts(try Self.acceptor(.back2M, .linuxGHCB, vmpl: 1), bytes: 128 << 20)[.snpSVSMCall] == 1)
        let split = Self.counts(try Self.acceptor(.back4K, .linuxGHCB, vmpl: 2), bytes: 128 << 20)
        #expect(split[.snpPvalidate2MSizeMismatch] == 64 && split[.snpSVSMCall] == 192)
        #expect(Self.counts(try Self.acceptor(.back2M, .linuxGHCB, vmpl: 1), bytes: 130 << 20)[.snpSVSMCall] == 2)
        #expect(Self.counts(try Self.acceptor(.back4K, .linuxMSR, vmpl: 1), bytes: 1 << 20)[.snpSVSMCall] == 256)
        #expect(Self.counts(try Self.acceptor(.back4K, .linuxGHCB), bytes: 128 << 20)[.snpSVSMCall] == 0)
        #expect(Self.counts(try Self.acceptor(.back2M, .edk2, vmpl: 1), bytes: 128 << 20)[.snpSVSMCall] == 0)
    }

    /// With both on, the bulk paths (whole descriptors replayed from the
    /// memo, runs of 2M entries) count what stepping every request counts.
    @Test(arguments: [SNPBackingPolicy.back4K, .back2M], [SNPAcceptDriver.linuxGHCB, .linuxMSR])
    func bulkEqualsSteppingWithEvictionAndSVSM(_ policy: SNPBackingPolicy, _ driver: SNPAcceptDriver) throws {
        let bytes: UInt64 = driver == .linuxMSR ? 6 << 20 : 300 << 20
        let bulk = Self.counts(try Self.acceptor(policy, driver, evict: true, vmpl: 1), bytes: bytes)
        let step = Self.counts(try Self.acceptor(policy, driver, evict: true, vmpl: 1, step: true), bytes: bytes)
        #expect(bulk == step)
        #expect(bulk[.snpEvictCache4K] == bytes / 4096)
    }

    /// Changing either setting drops the replay memo: a descriptor replayed
    /// after the change counts what the new setting asks.
    @Test func changingASettingForgetsTheMemo() throws {
        let a = try Self.acceptor(.back2M, .linuxGHCB)
        var clock = PhaseClock(vcpus: 1)
        _ = a.accept(AddressRange(start: Self.base, size: 256 << 20), vcpu: 0, clock: &clock)
        a.evictsCache = true
        var after = PhaseClock(vcpus: 1)
        _ = a.accept(AddressRange(start: Self.base + (256 << 20), size: 256 << 20), vcpu: 0, clock: &after)
        #expect(after.counts[.snpEvictCache4K] == (256 << 20) / 4096)
    }
}
