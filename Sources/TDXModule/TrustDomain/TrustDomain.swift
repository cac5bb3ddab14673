package import MemoryModel

/// The TDX module's state for one TD: its S-EPT, TLB epoch, the vCPUs'
/// epochs, and the PAMT it manages for the TD's pages. Every host change
/// goes through a SEAMCALL method (`TrustDomain+SEAMCALL.swift`) and every
/// guest acceptance through `accept` (`TrustDomain+Accept.swift`), each
/// following the module's legality table and returning its real status.
///
/// State is per range: 2M-level entries by 2M region, 4K entries by guest
/// frame (meaningful only under a 2M non-leaf), 1G and 512G non-leaves by
/// region. A 4K table that was never created costs nothing.
///
/// Nothing outside this module writes the state: the lifecycle changes by
/// TDH.MR.FINALIZE (`mrFinalize()`), entries by SEAMCALLs and TDCALLs, and
/// the `package` doors are bulk replay (`TrustDomain+Replay.swift`),
/// read-only inspection for invariants (`TrustDomain+Inspection.swift`) and
/// fault injection (`hold`, `lag`, `raiseHostInterrupt`).
public final class TrustDomain {
    public let features: TDXModuleFeatures
    /// Changed only by TDH.MR.FINALIZE (`mrFinalize()`).
    public internal(set) var lifecycle: TDLifecycle = .building
    /// Entries at the 2M level, by 2M region.
    package internal(set) var pde = IntervalMap<GuestRegion2M, SEPTEntry>(initial: .free)
    /// Entries at the 4K level, by guest frame; FREE where no table exists.
    package internal(set) var pte = IntervalMap<GuestFrameNumber, SEPTEntry>(initial: .free)
    /// Entries at the 1G level, by 1G region: NL_MAPPED over a PD page, or
    /// (with `features.privateMappings1G`) a 1G leaf with its host frame.
    package internal(set) var pdpte = IntervalMap<GuestRegion1G, SEPTEntry>(initial: .free)
    /// Whether the 512G-level entry is NL_MAPPED, by 512G region.
    package internal(set) var pml4e = IntervalMap<GuestRegion512G, Bool>(initial: false)
    /// TD_EPOCH, incremented by TDH.MEM.TRACK.
    public internal(set) var tdEpoch: UInt64 = 1
    /// Per vCPU: the epoch it entered the TD in, or nil when outside.
    public internal(set) var vcpuEpoch: [UInt64?]
    /// Locks vCPUs inside the TD hold right now.
    package internal(set) var holds: [(vcpu: Int, hold: VCPUHold)] = []
    /// A host-side interrupt is pending on the CPU issuing the next DEMOTE or PROMOTE
    /// (set by fault injection, `raiseHostInterrupt()`).
    package internal(set) var interruptPending = false
    /// The host-priority (TDHP) bit of S-EPT entries, by level: set by a host
    /// SEAMCALL whose try-lock of the entry failed (`sept_lock_acquire_host()`
    /// in `tdx_locks.h`), cleared when a host SEAMCALL next locks the entry;
    /// while set, the guest's TDG.MEM.PAGE.ACCEPT of the entry fails
    /// (`sept_lock_acquire_guest()`: TDX_OPERAND_BUSY_HOST_PRIORITY). Sparse:
    /// only entries a host operation lost a race on.
    package internal(set) var hostPriority4K = IntervalMap<GuestFrameNumber, Bool>(initial: false)
    package internal(set) var hostPriority2M = IntervalMap<GuestRegion2M, Bool>(initial: false)
    package internal(set) var hostPriority1G = IntervalMap<GuestRegion1G, Bool>(initial: false)
    /// The ACCEPT_COUNTER of PENDING 2M leaves (S-EPT entry bits 20:12 in
    /// `x86_defs.h`, not a TDVPS field): how many 4K chunks an interrupted
    /// TDG.MEM.PAGE.ACCEPT at 2M has initialised. Reset by BLOCK, DEMOTE,
    /// PROMOTE and REMOVE of the pending entry (`sept_cleanup_if_pending()`)
    /// and when the accept completes. 0 almost everywhere.
    package internal(set) var acceptCounter = IntervalMap<GuestRegion2M, UInt16>(initial: 0)
    /// Guest ACCEPTs the module refused for host priority (returned to the
    /// guest as TDX_OPERAND_BUSY by the TD dispatcher).
    public internal(set) var hostPriorityRefusals: UInt64 = 0
    /// TDG.MEM.PAGE.ACCEPT calls at 2M that stopped on a pending interrupt
    /// with the page still PENDING (`interrupt_occurred`).
    public internal(set) var acceptInterruptions: UInt64 = 0
    /// The TDCS's HP_LOCK_TIMEOUT in seconds (`hp_lock_timeout`, TSC ticks in
    /// the module): TDH.MNG.INIT sets `DEFAULT_HP_LOCK_TIMEOUT_USEC` (1 s);
    /// the module bounds it to 10 ms ... 100 s (`MIN_/MAX_HP_LOCK_TIMEOUT_USEC`).
    public internal(set) var hpLockTimeout: Double = TrustDomain.defaultHPLockTimeout
    /// Per vCPU, the TDVPS's `hp_lock_busy` and `hp_lock_busy_start`: when
    /// the vCPU's first TDCALL in a row was refused for host priority (in
    /// virtual seconds), nil while `hp_lock_busy` is false.
    var hpLockBusySince: [Double?]
    /// TD exits with TDX_HOST_PRIORITY_BUSY_TIMEOUT.
    public internal(set) var hostPriorityTimeouts: UInt64 = 0
    /// DPAMT: whether PAMT_4K entries are installed, by 2M host region.
    package internal(set) var pamt4K = IntervalMap<HostRegion2M, Bool>(initial: false)
    /// 4K pages of this TD (guest pages mapped at 4K and S-EPT pages) per
    /// 2M host region: what PAMT.REMOVE checks.
    package internal(set) var hpa4KInUse = IntervalMap<HostRegion2M, UInt32>(initial: 0)
    /// PAMT pages the module holds for DPAMT (2 per installed 2M range).
    public var pamtPages: UInt64 { Self.dpamtEntryPages * pamt4K.measure(in: .lowest ..< .highest) { $0 } }
    /// Every call by leaf and status.
    public internal(set) var calls = SEAMCALLCounts()

    public init(features: TDXModuleFeatures, vcpus: Int) {
        self.features = features
        vcpuEpoch = [UInt64?](repeating: nil, count: max(1, vcpus))
        hpLockBusySince = [Double?](repeating: nil, count: max(1, vcpus))
    }

    /// `tdx_dpamt_entry_pages()`: PAMT pages per 2M range (pamt_4k_entry_size × 512 / 4096).
    public static let dpamtEntryPages: UInt64 = 2

    /// TDCS pages of a TD: `tdcs_base_size` / 4K, which TDX_1.5.01 reports as
    /// `_4KB * MIN_NUM_TDCS_PAGES` (6; `tdcs_page_index_t`, without L2 VMs).
    public static let tdcsPages: UInt64 = 6
    /// TDVPS pages of a vCPU, the TDVPR and its TDCX pages: `tdvps_base_size`
    /// / 4K, `_4KB * MIN_TDVPS_PAGES` (6; `tdvps_pages_e`) in TDX_1.5.01.
    public static let tdvpsPages: UInt64 = 6

    /// The control pages the host gives the module for a TD with `vcpus`
    /// vCPUs: the TDR, the TDCS pages, and per vCPU the TDVPR and TDCX pages
    /// (KVM's `__tdx_td_init()` and `tdx_td_vcpu_init()`).
    public static func controlPages(vcpus: Int) -> UInt64 { 1 + tdcsPages + UInt64(vcpus) * tdvpsPages }

    // MARK: vCPUs

    /// TDH.VP.ENTER: the vCPU runs in the current epoch.
    public func enter(vcpu: Int) { vcpuEpoch[vcpu] = tdEpoch }

    /// A TD exit: the vCPU leaves and drops what it held.
    public func exit(vcpu: Int) {
        vcpuEpoch[vcpu] = nil
        holds.removeAll { $0.vcpu == vcpu }
    }

    /// A vCPU in the guest takes `hold` (fault injection for BUSY paths).
    package func hold(_ hold: VCPUHold, vcpu: Int) {
        if vcpuEpoch[vcpu] == nil { vcpuEpoch[vcpu] = tdEpoch }
        holds.append((vcpu, hold))
    }

    /// The vCPUs inside TDG.MEM.PAGE.ACCEPT complete it and drop the entry
    /// locks they hold (fault injection: what happens while a host fault
    /// that met one returns RET_PF_RETRY and the vCPU re-enters).
    package func finishGuestAccepts() {
        holds.removeAll { if case .guestEntry = $0.hold { return true }; return false }
    }

    /// Makes a vCPU lag in the previous epoch (it has not exited since the
    /// last TRACK), the situation behind TDX_PREVIOUS_TLB_EPOCH_BUSY.
    package func lag(vcpu: Int) { vcpuEpoch[vcpu] = tdEpoch - 1 }

    /// A host interrupt arrives on the CPU about to issue DEMOTE (fault
    /// injection for TDX_INTERRUPTED_RESTARTABLE).
    package func raiseHostInterrupt() { interruptPending = true }

    /// `kvm_make_all_cpus_request(KVM_REQ_OUTSIDE_GUEST_MODE)`: every vCPU
    /// in the guest exits, dropping its locks, and re-enters in the current
    /// epoch. Returns how many vCPUs were kicked.
    @discardableResult
    public func kickAll() -> Int {
        var n = 0
        for v in vcpuEpoch.indices where vcpuEpoch[v] != nil { vcpuEpoch[v] = tdEpoch; n += 1 }
        holds.removeAll()
        return n
    }

    /// `is_tlb_and_iotlb_tracked(BEPOCH)`: a TRACK happened after the block
    /// and no vCPU still runs in the blocking epoch or before.
    package func isTracked(_ bepoch: UInt64) -> Bool {
        tdEpoch > bepoch && vcpuEpoch.allSatisfy { $0 == nil || $0! > bepoch }
    }

    // MARK: Walk helpers

    /// The entry mapping `gfn` at `level`.
    package func entry(gfn: GuestFrameNumber, level: PageLevel) -> SEPTEntry {
        switch level {
        case .size1G: pdpte.value(at: gfn.region1G)
        case .size2M: pde.value(at: gfn.region2M)
        case .size4K: pte.value(at: gfn)
        }
    }

    /// True if the walk down to the 2M-level entry for `gfn` finds tables.
    func upperPresent(_ gfn: GuestFrameNumber) -> Bool {
        pml4e.value(at: gfn.region512G) && pdpte.value(at: gfn.region1G).state == .nlMapped
    }

    /// `secure_ept_walk()` to `level` reaches the entry at that level: every
    /// entry above is NL_MAPPED (the walk stops at a leaf or a non-present
    /// entry, FREE or NL_BLOCKED, above it: TDX_EPT_WALK_FAILED in
    /// `lock_sept_check_and_walk_internal()`).
    /// - Complexity: O(log runs).
    func walkReaches(_ gfn: GuestFrameNumber, _ level: PageLevel) -> Bool {
        guard pml4e.value(at: gfn.region512G) else { return false }
        switch level {
        case .size1G: return true
        case .size2M: return upperPresent(gfn)
        case .size4K: return walksTo4K(gfn)
        }
    }

    /// A vCPU holds the S-EPT tree lock (every memory SEAMCALL takes it,
    /// shared or exclusive), or the guest-side lock of the entry at
    /// (`gfn`, `level`), or with `childrenToo` of an entry below it.
    ///
    /// A host SEAMCALL finding an entry lock held sets that entry's
    /// host-priority bit (`sept_lock_acquire_host()`); the tree lock is a
    /// plain shared/exclusive lock and sets nothing.
    func busy(gfn: GuestFrameNumber, level: PageLevel, childrenToo: Bool = false) -> Bool {
        for (_, h) in holds {
            switch h {
            case .treeLock: return true
            case .guestEntry(let g, let l):
                if l == level && g.alignedDown(to: level) == gfn.alignedDown(to: level) {
                    setHostPriority(gfn: g, level: l, true)
                    return true
                }
                if childrenToo && l.rawValue < level.rawValue && g.alignedDown(to: level) == gfn.alignedDown(to: level) {
                    setHostPriority(gfn: g, level: l, true)
                    return true
                }
            }
        }
        return false
    }

    func setEntry(gfn: GuestFrameNumber, level: PageLevel, _ e: SEPTEntry) {
        switch level {
        case .size1G: pdpte.assign(gfn.region1G.only, e)
        case .size2M: pde.assign(gfn.region2M.only, e)
        case .size4K: pte.assign(gfn.only, e)
        }
    }

    func adjustInUse(hfn: HostFrameNumber, pages: UInt64, by delta: Int64) {
        // Pages of one 4K mapping or one demoted 2M leaf lie in one 2M host range.
        let r = hfn.region2M
        let v = Int64(hpa4KInUse.value(at: r)) + delta * Int64(pages)
        hpa4KInUse.assign(r.only, UInt32(max(0, v)))
    }

    @discardableResult
    func record(_ leaf: SEAMCALLLeaf, _ s: TDXStatus) -> TDXStatus {
        calls.record(leaf, s)
        return s
    }
}
