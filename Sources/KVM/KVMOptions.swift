import MemoryModel
import TDXModule

/// How KVM learns and honours the guest's ACCEPT level.
public enum AcceptLevelPolicy: String, Sendable, CaseIterable {
    /// v3 (patches 12–13): `tdx_honor_guest_accept_level()` splits across
    /// the accepted range under the write `mmu_lock` and sets the one-way
    /// GUEST_INHIBIT bit in `lpage_info` above the accept level.
    case guestInhibit = "inhibit"
    /// RFC v1: the accept level caps only the mapping level of the fault
    /// that carries it; nothing is remembered.
    case perFault = "per-fault"
    /// Upstream KVM without the series: the accept level is not looked at
    /// (private memory is only ever mapped at 4K).
    case ignored = "none"
}

/// Where the S-EPT split sits in a guest_memfd private→shared conversion,
/// relative to the folio split (seed 004 discussion; Ackerley's steps 1–7).
public enum ConversionPolicy: String, Sendable, CaseIterable {
    /// The WIP hugetlb guest_memfd: folios split (step 2b) before
    /// invalidate begin, then the S-EPT split, then the zap.
    case wipHugetlb = "wip-hugetlb"
    /// The v3 stack with FIXUP [8] "Zap mappings before splitting backend
    /// folios": invalidate begin, S-EPT split, zap, then the folio split.
    case zapBeforeFolioSplit = "zap-first"
    /// Yan's proposal: split the S-EPT first, under the write lock, and
    /// skip the folio split (fail the conversion) if that fails.
    case septSplitFirst = "sept-first"
    /// Sean's option (c): one mapping may cover several contiguous,
    /// homogeneous folios; guest_memfd reports the range, no folio split is
    /// needed for KVM's sake.
    case multiFolio = "multi-folio"
    /// Ackerley Tng's guest_memfd in-place conversion (v8, with
    /// `kvm.vm_memory_attributes=N`), with Yan Zhao's TDX huge pages on
    /// top: shared/private state lives in guest_memfd, userspace maps the
    /// shared pages of the same file, so a page is backed once whichever
    /// side it is on. To shared (Ackerley's steps 1, 3–6): allocate the
    /// attribute entry, split only the private mapping crossing the range
    /// (`kvm_split_cross_boundary_leafs()`), zap, update; the 2 MiB folio
    /// stays whole in the file. To private (step 2a): unmap from host page
    /// tables and refuse (-EAGAIN) while a shared page has references
    /// beyond guest_memfd's own (a pin or GUP by the host).
    case inPlace = "in-place"
}

/// guest_memfd backing memory.
public enum GmemBacking: String, Sendable, CaseIterable {
    case hugetlb1G = "hugetlb-1g"
    case hugetlb2M = "hugetlb-2m"
    /// Buddy-allocated 4K folios.
    case buddy

    /// Folio order in 4K pages (log2).
    public var order: UInt8 {
        switch self {
        case .hugetlb1G: 18
        case .hugetlb2M: 9
        case .buddy: 0
        }
    }
}

/// Where the host's page allocator puts the pages KVM allocates for the TD
/// one at a time (`alloc_page()`; under Dynamic PAMT `tdx_alloc_page()` /
/// `tdx_alloc_control_page()`): the TDX control pages (TDR, TDCS, TDVPR,
/// TDCX) and every S-EPT page. It decides how often `tdx_pamt_get()` for one
/// of them opens a 2M host range and needs TDH.PHYMEM.PAMT.ADD and 2 more
/// PAMT pages. The real placement depends on the host's free memory; the
/// model has the two bounds and the buddy allocator's own order over a
/// stated free-memory state (`host-placement=`, `sept-placement=` its older
/// name).
public enum SEPTPlacement: String, Sendable, CaseIterable {
    /// One run of host memory: a PAMT.ADD per 512 pages (best case).
    case contiguous
    /// Every page in a 2M range no other page of the TD uses: a PAMT.ADD
    /// and 2 PAMT pages per page (worst case, ~512 times more).
    case scattered
    /// The buddy allocator (`mm/page_alloc.c`): an order-0 request takes
    /// the smallest free block first (`__rmqueue_smallest()` walks the free
    /// lists from order 0 up), so the host's isolated free 4K pages
    /// (`KVMOptions.hostIsolatedFreePages`, `host-free-4k=N`) go first, one
    /// 2M range each [assumption: an isolated free page shares its 2M range
    /// with no other page of this TD]; after them a larger block is split
    /// (`expand()` keeps the lower half and frees the upper halves, which the
    /// next order-0 requests take in address order), so the rest are
    /// contiguous. Not modelled: other users of the allocator between two
    /// of KVM's requests, and the per-CPU page lists of several host CPUs
    /// faulting at once (each refilled from its own block).
    case buddy
}

/// Which posting of the Dynamic PAMT series the host kernel runs.
public enum DPAMTSeries: String, Sendable, CaseIterable {
    /// v4 (Nov 2025): enabled whenever the module has the feature; the
    /// per-vCPU fault cache holds `PT64_ROOT_MAX_LEVEL × tdx_dpamt_entry_pages()`
    /// pages (a PAMT pair for every S-EPT page the fault may add and for the
    /// guest page).
    case v4
    /// v6 (May 2026, "[PATCH v6 10/11] x86/virt/tdx: Enable Dynamic PAMT"):
    /// enabled only when `x86_phys_bits` (already reduced by the KeyID bits)
    /// is at most 48, the address space the module's 3-level PAMT tree
    /// covers; S-EPT and other control pages get their PAMT when they are
    /// allocated (`tdx_alloc_control_page()`), so the per-vCPU
    /// `tdx_pamt_cache` of 08/11 serves the guest page only: one pair
    /// (09/11: "Don't have topup op take a min param").
    case v6

    /// Pages the per-vCPU fault cache is topped up to before a fault.
    public var faultCachePages: UInt64 {
        switch self {
        case .v4: 5 * 2  // PT64_ROOT_MAX_LEVEL × tdx_dpamt_entry_pages()
        case .v6: 2  // tdx_dpamt_entry_pages()
        }
    }
}

/// KVM and kvm_intel options of the modelled host.
public struct KVMOptions: Sendable, Equatable {
    /// The Dynamic PAMT series the host kernel runs (`dpamt=v4|v6`).
    public var dpamtSeries: DPAMTSeries = .v4
    /// `boot_cpu_data.x86_phys_bits` after the KeyID bits are taken off
    /// (`host-phys-bits=N`): what v6 compares against 48. Default 46: a
    /// 52-bit MAXPHYADDR with 6 KeyID bits [assumption: the sources give
    /// no machine's value].
    public var hostPhysBits = 46
    /// Host memory the TDX module covers with TDMRs, in 4K pages
    /// (`host-memory=SIZE`), for the host-wide PAMT figures; nil: the TD's
    /// memslots alone.
    public var hostMemoryPages: UInt64? = nil
    /// `kvm_intel.tdx_huge_page` (patch 24); forced off when the module
    /// lacks ENHANCED_DEMOTE_INTERRUPTIBILITY.
    public var tdxHugePage = true
    /// Test GUEST_INHIBIT without `mmu_lock` before taking the write lock
    /// in `tdx_honor_guest_accept_level()` (v3); off: always take it.
    public var lpagePrecheck = true
    public var acceptLevelPolicy: AcceptLevelPolicy = .guestInhibit
    public var conversionPolicy: ConversionPolicy = .zapBeforeFolioSplit
    /// The out-of-tree workaround "Loop for TDX_INTERRUPTED_RESTARTABLE in
    /// tdh_mem_page_demote()" [11]: enables huge pages on old modules and
    /// retries DEMOTE while it is interrupted.
    public var demoteRestartableLoop = false
    /// FIXUP "Allow merging folios after to-private conversion".
    public var mergeFoliosOnToPrivate = true
    /// FIXUP "Allow gmem slot lpage even with non-aligned uaddr".
    public var gmemIgnoresUaddrAlignment = true
    /// The TD's ATTRIBUTES.SEPT_VE_DISABLE (Linux guests set it): touching a
    /// PENDING page exits to KVM, which kills the VM ("Guest access before
    /// accepting"); without it the guest gets a #VE and accepts at 4K.
    public var septVEDisable = true
    /// The placement assumption for S-EPT and TDX control pages (their PAMT
    /// under DPAMT).
    public var septPlacement: SEPTPlacement = .contiguous
    /// Under `.buddy`: the host's isolated free 4K pages, each alone free in
    /// its 2M range (`host-free-4k=N`), which order-0 allocations take
    /// first; 0 (a freshly booted host) makes `.buddy` contiguous.
    public var hostIsolatedFreePages: UInt64 = 0
    /// `kvm.vm_memory_attributes` (CONFIG_KVM_VM_MEMORY_ATTRIBUTES, the
    /// in-place series): on, memory attributes are VM-wide
    /// (KVM_SET_MEMORY_ATTRIBUTES on the VM); off, they live in each
    /// guest_memfd and change through its conversion ioctl (the in-place
    /// series' selftests run under `vm_memory_attributes=N`). Nil: the
    /// policy's own (off for `in-place`, on for the other four).
    public var vmMemoryAttributes: Bool? = nil
    /// The TD's HP_LOCK_TIMEOUT in seconds, written by the host at TD setup
    /// (`hp-lock-timeout=`, 0.01...100); nil: the module's default, 1 s.
    public var hpLockTimeout: Double? = nil
    /// Check every invariant after every host operation.
    public var checkInvariants = false

    public init() {}

    /// Whether attributes are VM-wide, after the policy's default.
    public var vmWideAttributes: Bool { vmMemoryAttributes ?? (conversionPolicy != .inPlace) }

    /// The attributes switch against the policy: in-place conversion keeps
    /// attributes in guest_memfd, so it needs `vm_memory_attributes=N`;
    /// the other four policies convert with VM-wide attributes.
    public func checkAttributesSwitch() throws {
        if conversionPolicy == .inPlace && vmWideAttributes {
            throw CocomemError(.invalidScenario, "policy in-place keeps memory attributes in guest_memfd: it needs vm-attributes=off (kvm.vm_memory_attributes=N)")
        }
        if conversionPolicy != .inPlace && !vmWideAttributes {
            throw CocomemError(.invalidScenario, "policy \(conversionPolicy.rawValue) converts with VM-wide attributes: vm-attributes=off needs policy=in-place")
        }
    }

    /// The upstream host today: no TDX huge pages, no Dynamic PAMT.
    public static var upstream4K: KVMOptions {
        var o = KVMOptions(); o.tdxHugePage = false; o.acceptLevelPolicy = .ignored
        return o
    }
}
