public import CoCoGuest
public import CostModel
public import KVM
public import MemoryModel

/// The SEV-SNP platform as a booted guest sees it when it runs on the KVM
/// SEV-SNP host model (`cocomem boot --platform snp --host snp`): every
/// access goes through `SNPVM.access(gfn:)` (a nested page fault
/// `sev_gmem_prepare()` resolves, #VC 0x404 on a page not validated), and
/// the host memory committed is guest_memfd's folios plus the VMSA pages.
public final class SNPHostPlatform: GuestPlatform {
    public let vm: SNPVM
    /// The guest's page-state changes (the kernel's drivers share it, so
    /// its view of what it made shared is one).
    public let guest: SNPHostGuest
    /// `sev_evict_cache()` after each validation (7b306dfa326f, in
    /// `pvalidate_pages()`, so on `set_memory_encrypted()` too): set as the
    /// kernel's acceptor has it.
    public var evictsCache = false
    /// Conversions so far.
    public private(set) var sharedStats = SharedMemoryStats()
    public init(vm: SNPVM, guest: SNPHostGuest) { self.vm = vm; self.guest = guest }
    /// Guest frames the guest made shared (its page tables' C-bit clear).
    /// - Complexity: O(runs).
    public var sharedPages: UInt64 { guest.madeShared.measure(in: .lowest ..< .highest) { $0 } }
    public var name: String { "snp" }
    public var kind: PlatformKind { .snp }
    /// - Complexity: `SNPVM.isValidated`.
    public func isAccessible(_ r: AddressRange) -> Bool { vm.isValidated(r.framesCovering) }
    public var committedBytes: UInt64 { ByteCount.frames(vm.hostCommittedPages).value }
    public func touch(gfn: GuestFrameNumber, vcpu: Int) -> (OpCounts, AcceptOutcome) {
        let before = vm.ops
        let fatal = vm.access(gfn: gfn)
        return (vm.ops - before, fatal.map { .terminated($0) } ?? .ok)
    }

    /// `set_memory_decrypted()` (`toPrivate` false) on the SNP host model:
    /// `amd_enc_status_change_prepare()` → `snp_set_memory_shared()` →
    /// `set_pages_state(SNP_PAGE_STATE_SHARED)` through the GHCB
    /// (`SNPHostGuest.makeShared`): 64-entry descriptors, 2M entries where
    /// aligned with 2M left, each entry rescinded first (PVALIDATE with
    /// validate 0; a 2M FAIL_SIZEMISMATCH redone as 512 4K rescinds), then
    /// the VMGEXIT. The host answers as the KVM model does (`SNPVM`):
    /// `snp_begin_psc()`, one KVM_HC_MAP_GPA_RANGE exit per run of adjacent
    /// entries, QEMU's `kvm_convert_memory()` (KVM_SET_MEMORY_ATTRIBUTES to
    /// shared: `kvm_vm_set_mem_attributes()` zaps the NPT; the guest_memfd
    /// range punched out, whose `sev_gmem_invalidate()` returns each RMP
    /// entry to the hypervisor with `rmp_make_shared()`).
    /// `set_memory_encrypted()`: `snp_set_memory_private()`, the PSC to
    /// private and then PVALIDATE of each entry, the path of
    /// `snp_accept_memory()` (with `sev_evict_cache()` when the kernel has
    /// it). A failed rescind, PSC or PVALIDATE terminates the guest, as
    /// Linux's `pvalidate_pages()` and `vmgexit_psc()` do. The host's
    /// operations are charged to `vcpu`.
    /// - Complexity: the host's work: O(descriptors × log runs), whole
    ///   descriptors of 2M entries over uniform state replayed.
    public func setMemoryEncrypted(_ r: AddressRange, toPrivate: Bool, vcpu: Int, clock: inout PhaseClock, costs: CostTable) -> AcceptOutcome {
        let frames = r.framesCovering
        guard !frames.isEmpty else { return .ok }
        let before = vm.stats
        func delta(_ s: SNPHostStat...) -> UInt64 { s.reduce(0) { $0 + vm.stats[$1] - before[$1] } }
        let outcome: AcceptOutcome
        if toPrivate {
            let a = SNPHostAcceptor(guest: guest, driver: .linuxGHCB, costs: costs)
            a.evictsCache = evictsCache
            // Callers convert page-aligned ranges (the pool), whose truncated frames are these.
            outcome = a.accept(r, vcpu: vcpu, clock: &clock)
        } else {
            let ops = vm.ops
            let why = guest.makeShared(frames)
            clock.charge(vm.ops - ops, vcpu: vcpu, costs: costs)
            outcome = why.map { .terminated($0) } ?? .ok
            sharedStats.rescinds += delta(.pvalidate4KSuccess, .pvalidate2MSuccess, .pvalidateNoUpdate, .pvalidateSizeMismatch, .pvalidateFailed)
            sharedStats.hostZaps += delta(.rmpupdateShared4K, .rmpupdateShared2M)
        }
        sharedStats.calls += delta(.pscExits)
        sharedStats.vmmExits += delta(.mapGPARangeExits)
        if outcome == .ok {
            if toPrivate { sharedStats.pagesToPrivate += frames.length } else { sharedStats.pagesToShared += frames.length }
        }
        return outcome
    }
}

extension SNPHostPlatform: SNPEarlyPageStateChange {
    /// `early_set_pages_state()` on the SNP host model: to shared,
    /// `SNPHostGuest.makeSharedMSR` (per page a rescind and an MSR VMGEXIT
    /// that KVM's `snp_begin_psc_msr()` turns into a one-page
    /// KVM_HC_MAP_GPA_RANGE exit, QEMU's conversion returning the RMP
    /// entry); to private, the MSR protocol's validation (`SNPHostAcceptor`
    /// with the `linuxMSR` driver, `sev_evict_cache()` when the kernel has
    /// it). The host's operations are charged to `vcpu`.
    /// - Complexity: O(pages) host requests.
    public func earlySetPagesState(_ frames: Range<GuestFrameNumber>, toPrivate: Bool, vcpu: Int, clock: inout PhaseClock, costs: CostTable) -> AcceptOutcome {
        guard !frames.isEmpty else { return .ok }
        let before = vm.stats
        func delta(_ s: SNPHostStat...) -> UInt64 { s.reduce(0) { $0 + vm.stats[$1] - before[$1] } }
        let outcome: AcceptOutcome
        if toPrivate {
            let a = SNPHostAcceptor(guest: guest, driver: .linuxMSR, costs: costs)
            a.evictsCache = evictsCache
            outcome = a.accept(AddressRange(frames: frames), vcpu: vcpu, clock: &clock)
        } else {
            let ops = vm.ops
            let why = guest.makeSharedMSR(frames)
            clock.charge(vm.ops - ops, vcpu: vcpu, costs: costs)
            outcome = why.map { .terminated($0) } ?? .ok
            sharedStats.rescinds += delta(.pvalidate4KSuccess, .pvalidateNoUpdate, .pvalidateSizeMismatch, .pvalidateFailed)
            sharedStats.hostZaps += delta(.rmpupdateShared4K, .rmpupdateShared2M)
        }
        sharedStats.calls += delta(.pscMSRExits)
        sharedStats.vmmExits += delta(.mapGPARangeExits)
        if outcome == .ok {
            if toPrivate { sharedStats.pagesToPrivate += frames.length } else { sharedStats.pagesToShared += frames.length }
        }
        return outcome
    }
}
