public import CostModel
public import MemoryModel
import SNP
import TDXModule

/// What converting guest memory between private and shared cost, since
/// boot: `set_memory_decrypted()` / `set_memory_encrypted()` through the
/// platform (the SWIOTLB at boot, `tdx_kexec_finish()` / `snp_kexec_finish()`
/// before kexec).
public struct SharedMemoryStats: Sendable, Equatable {
    /// Guest requests: TDG.VP.VMCALL<MapGPA> (TDX) or Page State Change
    /// VMGEXITs through the GHCB (SNP).
    public var calls: UInt64 = 0
    /// KVM_HC_MAP_GPA_RANGE exits to the VMM those requests caused.
    public var vmmExits: UInt64 = 0
    /// Pages made shared and made private again.
    public var pagesToShared: UInt64 = 0
    public var pagesToPrivate: UInt64 = 0
    /// Private mappings the host took down: S-EPT leaves removed (TDX) or
    /// RMP entries returned to the hypervisor (SNP).
    public var hostZaps: UInt64 = 0
    /// SNP: PVALIDATE rescinds (validate 0), 4K and 2M, the guest issued.
    public var rescinds: UInt64 = 0
    /// TDX: MapGPA TDVMCALLs the host ended with TDVMCALL_STATUS_RETRY
    /// (a pending interrupt between 2 MiB pieces), each issued again from R11
    /// (counted in `calls` too).
    public var retries: UInt64 = 0
    public init() {}
}

extension TDXGuestPlatform {
    /// `tdx_enc_status_changed()` (arch/x86/coco/tdx/tdx.c), from
    /// `__set_memory_enc_pgtable()`'s hooks: to shared in
    /// `tdx_enc_status_change_finish()`, after the page tables changed; to
    /// private in `tdx_enc_status_change_prepare()`, before. It is
    /// `tdx_map_gpa()`: a TDG.VP.VMCALL<MapGPA> for the range (the shared
    /// bit set in the GPA to make it shared) and, while the host answers
    /// TDVMCALL_STATUS_RETRY, the same call again from the GPA in R11 (which
    /// must lie in the range; each answer here moves on, so the kernel's
    /// three retries without progress never run out). The host answers
    /// RETRY when an interrupt is pending between 2 MiB pieces: the tick set
    /// by `setConversionTick(hz:)`, whose ticks fall at multiples of its
    /// period of the vCPU's phase time; one pending at a piece's end
    /// (raised since the call began, interrupts being on) cuts the call,
    /// and the guest takes it (`tdx.map_gpa_retry`) before issuing the rest.
    /// To private, `tdx_accept_memory()` of the range afterwards, since the
    /// host gives it back as fresh PENDING pages. A failed MapGPA makes the
    /// call return -EIO; the kernel leaks the pages and goes on, so that is
    /// not fatal here either: it is an event and the range keeps its state.
    /// - Complexity: O(2 MiB pieces × (log runs + operation kinds) + leaves zapped + the accept).
    public func setMemoryEncrypted(_ r: AddressRange, toPrivate: Bool, vcpu: Int, clock: inout PhaseClock, costs: CostTable) -> AcceptOutcome {
        let frames = r.framesCovering
        var start = frames.lowerBound
        let period = tickPicoseconds
        let exitPicoseconds = costs.vcpuPicoseconds[Op.tdxMapGPAExit.index]
        func now(_ clock: PhaseClock) -> UInt64 { clock.vcpuPicoseconds.indices.contains(vcpu) ? clock.vcpuPicoseconds[vcpu] : 0 }
        // Interrupts are on: a tick before the call was taken before it.
        var taken = now(clock)
        while true {
            let base = now(clock)
            let m = host.mapGPA(start..<frames.upperBound, toPrivate: toPrivate, hasEvents: { part in
                guard period > 0 else { return false }
                var ps = base &+ part.vmmExits &* exitPicoseconds
                let counts = part.counts.counts
                for i in counts.indices where counts[i] != 0 { ps &+= costs.vcpuPicoseconds[i] &* counts[i] }
                return ps / period > taken / period
            })
            sharedStats.calls += 1
            sharedStats.vmmExits += m.vmmExits
            sharedStats.hostZaps += m.zappedLeaves
            clock.charge(.tdxMapGPAExit, m.vmmExits, vcpu: vcpu, costs: costs)
            clock.charge(m.counts, vcpu: vcpu, costs: costs)
            if let why = m.failure {
                sharedEvents.append("tdx: MapGPA \(r) to \(toPrivate ? "private" : "shared") failed: \(why)")
                return .ok
            }
            guard let next = m.retryAt else { break }
            // tdx_map_gpa(): R11 comes from the untrusted VMM and is checked.
            guard next > start, next < frames.upperBound else {
                sharedEvents.append("tdx: MapGPA \(r): TDVMCALL_STATUS_RETRY with R11 \(next.address) outside the range: tdx_map_gpa() fails")
                return .ok
            }
            sharedStats.retries += 1
            clock.charge(.tdxMapGPARetry, vcpu: vcpu, costs: costs)
            taken = now(clock)
            start = next
        }
        if toPrivate {
            sharedStats.pagesToPrivate += frames.length
            sharedFrames.assign(frames, false)
            guard let replay = host as? any TDXHostReplay else { return .terminated("tdx: this host cannot run tdx_accept_memory()") }
            let a = TDXAcceptor(host: replay, driver: .linux, costs: costs)
            return a.accept(r, vcpu: vcpu, clock: &clock)
        }
        sharedStats.pagesToShared += frames.length
        sharedFrames.assign(frames, true)
        return .ok
    }
}

extension SNPGuestPlatform {
    /// `set_memory_decrypted()` on SNP: `amd_enc_status_change_prepare()` →
    /// `snp_set_memory_shared()` → `set_pages_state(SNP_PAGE_STATE_SHARED)`
    /// through the GHCB (the per-CPU GHCBs exist by `mem_encrypt_init()`):
    /// descriptors of VMGEXIT_PSC_MAX_ENTRY (64) entries, 2M where the
    /// address is 2M-aligned with 2M left, each first rescinded
    /// (`pvalidate_pages()` with validate 0, a 2M FAIL_SIZEMISMATCH redone
    /// as 512 4K rescinds) and then sent in one VMGEXIT; KVM's
    /// `snp_begin_psc()` makes one KVM_HC_MAP_GPA_RANGE exit per run of
    /// adjacent entries of the same operation and size. A failed rescind or
    /// PSC terminates the guest (`sev_es_terminate()`, GHCB_TERM_PVALIDATE /
    /// GHCB_TERM_PSC). To private (`snp_set_memory_private()`): the same
    /// descriptors to private, then PVALIDATE: Linux's `snp_accept_memory()`
    /// path, run by the kernel's GHCB driver, with `sev_evict_cache()` when
    /// the kernel has it (`evictsCache`). At VMPL>0 both directions would go
    /// through the SVSM (`svsm_pval_pages()`); not modelled here.
    /// - Complexity: O(entries × log runs).
    public func setMemoryEncrypted(_ r: AddressRange, toPrivate: Bool, vcpu: Int, clock: inout PhaseClock, costs: CostTable) -> AcceptOutcome {
        let frames = r.framesCovering
        if toPrivate {
            let a = SNPAcceptor(platform: platform, driver: .linuxGHCB, costs: costs)
            a.evictsCache = evictsCache
            let before = clock.counts[.snpPSCExit]
            let o = a.accept(r, vcpu: vcpu, clock: &clock)
            let calls = clock.counts[.snpPSCExit] - before
            sharedStats.calls += calls
            sharedStats.vmmExits += calls
            if o == .ok { platform.markPrivate(frames); sharedStats.pagesToPrivate += frames.length }
            return o
        }
        var g = frames.lowerBound
        while g < frames.upperBound {
            var desc: [(gfn: GuestFrameNumber, level: PageLevel)] = []
            while desc.count < 64, g < frames.upperBound {
                let two = g.isAligned(to: .size2M) && frames.upperBound - g >= PageLevel.size2M.pages
                desc.append((g, two ? .size2M : .size4K))
                g = g + (two ? PageLevel.size2M.pages : 1)
            }
            // Page validation must be rescinded before changing to shared.
            for e in desc {
                let (res, c) = platform.rescind(gfn: e.gfn, level: e.level)
                clock.charge(c, vcpu: vcpu, costs: costs)
                sharedStats.rescinds += 1
                if res == .failSizeMismatch, e.level == .size2M {
                    for p in Range(start: e.gfn, count: PageLevel.size2M.pages) {
                        let (r4, c4) = platform.rescind(gfn: p, level: .size4K)
                        clock.charge(c4, vcpu: vcpu, costs: costs)
                        sharedStats.rescinds += 1
                        if r4 != .success { return rescindFailed(p, r4) }
                    }
                } else if res != .success {
                    return rescindFailed(e.gfn, res)
                }
            }
            clock.charge(.snpPSCExit, vcpu: vcpu, costs: costs)
            sharedStats.calls += 1
            var i = 0
            while i < desc.count {
                var j = i + 1
                while j < desc.count, desc[j].level == desc[i].level, desc[j].gfn == desc[j - 1].gfn + desc[j - 1].level.pages { j += 1 }
                let run = desc[i].gfn..<(desc[j - 1].gfn + desc[j - 1].level.pages)
                clock.charge(desc[i].level == .size2M ? .snpPSCEntry2M : .snpPSCEntry4K, UInt64(j - i), vcpu: vcpu, costs: costs)
                sharedStats.vmmExits += 1
                let c = platform.makeShared(run)
                sharedStats.hostZaps += c[.snpRMPUpdate4K] + c[.snpRMPUpdate2M]
                clock.charge(c, vcpu: vcpu, costs: costs)
                i = j
            }
        }
        sharedStats.pagesToShared += frames.length
        return .ok
    }

    func rescindFailed(_ g: GuestFrameNumber, _ r: PvalidateResult) -> AcceptOutcome {
        .terminated("SNP: PVALIDATE rescind of \(g.address) failed (\(r.rawValue)): the guest terminated itself (GHCB_TERM_PVALIDATE)")
    }
}

/// An SNP platform's `early_set_pages_state()` (arch/x86/coco/sev/core.c;
/// arch/x86/boot/startup/ from 6.16): the page-state changes Linux makes
/// through the GHCB MSR protocol, one 4K page per VMGEXIT, before the
/// per-CPU GHCBs exist or for them (`early_snp_set_memory_shared()` from
/// `sme_postprocess_startup()` for `__bss_decrypted`, and from
/// `__set_clr_pte_enc()` for `early_set_memory_decrypted()`;
/// `snp_kexec_finish()` turning the GHCBs private again). TDX has no such
/// path (its only conversion is MapGPA), so only the SNP platforms conform.
public protocol SNPEarlyPageStateChange: GuestPlatform {
    /// `early_set_pages_state()` of `frames` on `vcpu`: to shared, per 4K
    /// page PVALIDATE with validate 0 (`pvalidate_4k_page()`) and then a
    /// GHCB_MSR_PSC_REQ VMGEXIT; to private, the VMGEXIT and then a 4K
    /// PVALIDATE (with `sev_evict_cache()` when the kernel has it). A failed
    /// PVALIDATE terminates the guest (GHCB_TERM_PVALIDATE), a failed
    /// response too (GHCB_TERM_PSC). Counted in `sharedStats`.
    /// - Complexity: O(pages × log runs).
    func earlySetPagesState(_ frames: Range<GuestFrameNumber>, toPrivate: Bool, vcpu: Int, clock: inout PhaseClock, costs: CostTable) -> AcceptOutcome
}

extension SNPGuestPlatform: SNPEarlyPageStateChange {
    /// `early_set_pages_state()` against the guest-facing RMP model: to
    /// shared, each page's rescind (`SNPPlatform.rescind`, a page inside a 2M
    /// entry PSMASHed first) then the MSR VMGEXIT (`snp.psc.msr_vmgexit`),
    /// whose KVM_HC_MAP_GPA_RANGE exit of one page returns its RMP entry
    /// (`SNPPlatform.makeShared`); to private, the MSR protocol's validation
    /// (`SNPAcceptor` with the `linuxMSR` driver).
    /// - Complexity: O(pages × log runs).
    public func earlySetPagesState(_ frames: Range<GuestFrameNumber>, toPrivate: Bool, vcpu: Int, clock: inout PhaseClock, costs: CostTable) -> AcceptOutcome {
        guard !frames.isEmpty else { return .ok }
        if toPrivate {
            let a = SNPAcceptor(platform: platform, driver: .linuxMSR, costs: costs)
            a.evictsCache = evictsCache
            let before = clock.counts[.snpMSRPSCExit]
            let o = a.accept(AddressRange(frames: frames), vcpu: vcpu, clock: &clock)
            let calls = clock.counts[.snpMSRPSCExit] - before
            sharedStats.calls += calls
            sharedStats.vmmExits += calls
            if o == .ok { platform.markPrivate(frames); sharedStats.pagesToPrivate += frames.length }
            return o
        }
        for g in frames {
            let (res, c) = platform.rescind(gfn: g, level: .size4K)
            clock.charge(c, vcpu: vcpu, costs: costs)
            sharedStats.rescinds += 1
            if res != .success { return rescindFailed(g, res) }
            clock.charge(.snpMSRPSCExit, vcpu: vcpu, costs: costs)
            sharedStats.calls += 1
            sharedStats.vmmExits += 1
            let z = platform.makeShared(g.only)
            sharedStats.hostZaps += z[.snpRMPUpdate4K] + z[.snpRMPUpdate2M]
            clock.charge(z, vcpu: vcpu, costs: costs)
            sharedStats.pagesToShared += 1
        }
        return .ok
    }
}
