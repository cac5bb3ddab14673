public import CostModel
public import MemoryModel
public import TDXModule

/// The outcome of a host operation or of the run, as a user sees it.
public enum HostOutcome: Equatable, Sendable {
    case ok
    /// An ioctl failed and returned this errno to userspace.
    case ioctlError(String)
    /// KVM_BUG_ON / TDX_BUG_ON: the VM is bugged and dead.
    case vmBugged(String)
    /// kvm_vm_dead() for a guest error.
    case vmDead(String)
}

/// A KVM VM running a TD on the TDX module (`struct kvm` with its
/// `kvm_tdx`), following the TDX huge page series v3 (seed 004). It holds
/// the parts Linux has, each its own type:
///
/// - `mmu`: the mirror and shared TDP roots (`arch/x86/kvm/mmu/tdp_mmu.c`),
/// - `lpageInfo`: `lpage_info` with GUEST_INHIBIT (`arch/x86/kvm/mmu/mmu.c`),
/// - `attributes`: KVM_SET_MEMORY_ATTRIBUTES (`virt/kvm/kvm_main.c`),
/// - `gmem`: memslots bound to guest_memfd and their folios (`virt/kvm/guest_memfd.c`),
/// - `tdx`: the TDX glue, its TD, DPAMT refcounts, S-EPT pool and split cache (`arch/x86/kvm/vmx/tdx.c`),
///
/// and coordinates them in the ioctl-level flows (fault, conversion,
/// attributes, punch hole, build), keeping counters, outcome and log.
/// Nothing outside KVM changes its state except through those flows.
///
/// State is per range: every map is an `IntervalMap`; per-4K state exists
/// only inside 2M ranges that really are split.
public final class TDXVM {
    public let options: KVMOptions
    public let costs: CostTable?
    /// The mirror and shared TDP roots.
    public internal(set) var mmu = TDPMirrorMMU()
    /// Large-page bookkeeping.
    public internal(set) var lpageInfo = LpageInfoTable()
    /// Private/shared attributes.
    public internal(set) var attributes = MemoryAttributes()
    /// Memslots, guest_memfd folios, and the GFN → HFN lookup.
    public internal(set) var gmem = GuestMemfd()
    /// The TDX glue and its TD.
    public internal(set) var tdx: KVMTDX
    public internal(set) var counters = KVMCounters()
    /// In-place conversion's host-side tallies (`TDXVM+InPlace.swift`).
    public internal(set) var inPlace = InPlaceStats()
    /// 1G private mappings' tallies (a module with
    /// `TDXModuleFeatures.privateMappings1G`), kept apart from `counters` so
    /// that reports without the feature are unchanged.
    public internal(set) var private1G = Private1GStats()
    /// S-EPT pages freed, by PROMOTE to 1G and at teardown (issue 18 §1, §3).
    public internal(set) var septFree = SEPTFreeStats()
    /// Faults to inject (a test and scenario harness, not KVM state).
    package var faults = FaultPlan()
    /// While `hostContend` runs a fault: the vCPU whose TDG.MEM.PAGE.ACCEPT
    /// holds the entry the fault's AUG needs (fault injection for the race
    /// behind host priority, `TDXVM+HostPriority.swift`).
    var acceptInFlight: Int?
    /// Pages of the VMM's own shared memory (QEMU's RAM block: memfd or
    /// anonymous memory) populated for guest frames, with VM-wide
    /// attributes: a shared GPA's contents live there, not in guest_memfd
    /// (`HostMemory`, issue 18 §5).
    public internal(set) var vmmShared = IntervalMap<GuestFrameNumber, Bool>(initial: false)
    /// The host-visible trace of the guest's memory use (`--host-trace`,
    /// issue 18 §5); nil (the default) records nothing.
    public var hostTrace: HostTrace?
    /// Whether the module offered Dynamic PAMT (the kernel may still not
    /// enable it: v6 on a host wider than 48 bits).
    public let dynamicPAMTOffered: Bool
    public internal(set) var outcome: HostOutcome = .ok
    /// Flags for results the seed 004 reviewers call broken.
    public internal(set) var brokenOutcomes: [String] = []
    /// Operation log, when enabled.
    public var logEnabled = false
    /// The log's lines, streamed to its sink or kept within its bounds.
    public var operationLog = OperationLog()
    /// The kept log lines (`OperationLog.lines`).
    public var log: [String] { operationLog.lines }
    /// Guest-visible operations (exits, AUGs, ...) for the cost model.
    public internal(set) var ops = OpCounts()
    /// Operations whose count depends on state outside a 2M chunk (S-EPT
    /// pool pages and their PAMT, split-cache top-ups); bulk replay
    /// recomputes these.
    public internal(set) var contextOps = OpCounts()
    var contextCalls = SEAMCALLCounts()
    var contextCounters = KVMCounters()
    /// The part of the context tallies a chunk step does because its 1G or
    /// 512G region lacked a table or GUEST_INHIBIT (`noteUpperWork`); a memo
    /// keeps it apart so that replay adds it once per such region.
    var upperOps = OpCounts()
    var upperCalls = SEAMCALLCounts()
    var upperCounters = KVMCounters()
    /// The final states memoised for each signature (`replayMemo`'s keys).
    var memoFinals: [ReplayKey: [ReplayKey]] = [:]
    var replayMemo: [MemoKey: ChunkMemo] = [:]
    var pieceMemo: [PieceKey: ReplayKey] = [:]
    var stepSignature: (gfn: GuestFrameNumber, key: ReplayKey, snapshot: StepSnapshot)?
    /// Zap private leaves one at a time (`zapLeaf`), never in bulk
    /// (`zapLeaves`): for the tests that hold both equal, and `--step-by-step`.
    package var stepsZaps = false
    /// Leaves the bulk zap removed without stepping (for tests).
    package internal(set) var bulkZappedLeaves: UInt64 = 0
    var poolEvents: [PoolEvent] = []
    /// 2M chunks put into their state by bulk replay rather than stepped
    /// (not KVM state: how much the replay did, for tests).
    package internal(set) var replayedChunks: UInt64 = 0
    /// `kick()` calls so far, whatever number of vCPUs each reached.
    var kickCalls: UInt64 = 0
    var recordingPoolEvents = false

    /// Creates the VM, its TD and memslots. The TD starts in the build phase;
    /// call `finalize()` (TDH.MR.FINALIZE) to make it runnable.
    public init(options: KVMOptions, features: TDXModuleFeatures, vcpus: Int, slots: [Memslot], costs: CostTable? = nil) throws {
        self.options = options
        self.costs = costs
        var f = features
        // v6 enables Dynamic PAMT only within the PAMT tree's 48 bits.
        if f.dynamicPAMT && options.dpamtSeries == .v6 && options.hostPhysBits > 48 { f.dynamicPAMT = false }
        tdx = KVMTDX(module: TrustDomain(features: f, vcpus: vcpus), placement: options.septPlacement,
                     isolatedFreePages: options.hostIsolatedFreePages)
        dynamicPAMTOffered = features.dynamicPAMT
        for s in slots { try addSlot(s) }
        gmem.layOutHostFrames()
        allocateControlPages()
        if let t = options.hpLockTimeout, !module.setHPLockTimeout(t) {
            throw CocomemError(.invalidScenario, "HP_LOCK_TIMEOUT must be 0.01 to 100 seconds, got \(t)")
        }
    }

    /// The TD, as the TDX glue reaches it.
    public var module: TrustDomain { tdx.module }

    /// Huge pages are allowed only if `tdx_huge_page` is set and the module
    /// has ENHANCED_DEMOTE_INTERRUPTIBILITY (or the restartable-loop workaround is in).
    public var hugePagesEnabled: Bool {
        options.tdxHugePage && (module.features.enhancedDemoteInterruptibility || options.demoteRestartableLoop)
    }

    /// KVM_SET_USER_MEMORY_REGION2 with a guest_memfd: binds the file
    /// (`kvm_gmem_bind()`) and allocates the slot's `lpage_info`
    /// (`kvm_alloc_memslot_metadata()`), with `disallow_lpage` on partial
    /// huge ranges, and on all of them when the userspace address is
    /// misaligned (unless the gmem FIXUP lifts it).
    func addSlot(_ s: Memslot) throws {
        try gmem.bind(s)
        lpageInfo.addSlot(s, misaligned: !s.userspaceAddrAligned && !options.gmemIgnoresUaddrAlignment)
    }

    /// Memslots by base frame.
    public var slots: [Memslot] { gmem.slots }

    /// The memslot containing `gfn`.
    /// - Complexity: O(slots).
    public func slot(_ gfn: GuestFrameNumber) -> Memslot? { gmem.slot(gfn) }

    /// Host frame backing `gfn`, through its memslot's guest_memfd (not
    /// API: the host's own lookup, for its flows and invariants).
    /// - Complexity: O(slots).
    package func hfn(_ gfn: GuestFrameNumber) -> HostFrameNumber { gmem.hfn(gfn) }

    /// KVM_TDX_FINALIZE_VM: TDH.MR.FINALIZE makes the TD runnable, then its
    /// vCPUs enter it (TDH.VP.ENTER).
    /// - Complexity: O(vCPUs).
    public func finalize() {
        _ = tdx.finalize()
        for v in module.vcpuEpoch.indices { module.enter(vcpu: v) }
        note("TDH.MR.FINALIZE: TD runnable")
    }

    /// A TDVMCALL(HLT) exit that KVM handles by blocking the vCPU
    /// (`kvm_vcpu_halt()` → `kvm_vcpu_block()`): TDH.VP.ENTER has returned,
    /// so the TDX module counts the vCPU out of the TD (TDH.MEM.TRACK does
    /// not wait for it), and `vcpu->mode` is OUTSIDE_GUEST_MODE, so
    /// `tdx_track()`'s `kvm_make_all_cpus_request(KVM_REQ_OUTSIDE_GUEST_MODE)`
    /// sends it no IPI: `kvm_request_needs_ipi()` kicks, for a request with
    /// KVM_REQUEST_WAIT, only vCPUs whose mode is not OUTSIDE_GUEST_MODE,
    /// and KVM_REQUEST_NO_WAKEUP leaves a blocked vCPU asleep
    /// (virt/kvm/kvm_main.c, `kvm_make_vcpu_request()`).
    /// Memoised host steps stay valid: they keep how many times they kicked,
    /// and a replay counts each kick's IPIs with the vCPUs in guest mode
    /// then (`ChunkMemo.kickCalls`).
    /// - Complexity: O(1).
    public func halt(vcpu: Int) {
        precondition(module.vcpuEpoch.indices.contains(vcpu), "vCPU \(vcpu) of \(module.vcpuEpoch.count)")
        module.exit(vcpu: vcpu)
        note("vCPU \(vcpu): TDVMCALL(HLT), blocked outside guest mode")
    }

    /// The halted vCPU is woken (an interrupt for it) and re-enters the TD
    /// with TDH.VP.ENTER, in the current TLB epoch. A vCPU already in guest
    /// mode is left as it is (an interrupt for a running vCPU does not
    /// re-enter it; re-entering would move it to the current epoch).
    /// - Complexity: O(1).
    public func wake(vcpu: Int) {
        precondition(module.vcpuEpoch.indices.contains(vcpu), "vCPU \(vcpu) of \(module.vcpuEpoch.count)")
        guard !isInGuestMode(vcpu: vcpu) else { return }
        module.enter(vcpu: vcpu)
        note("vCPU \(vcpu): woken, TDH.VP.ENTER")
    }

    /// Whether `vcpu` is in guest mode (entered and not halted).
    /// - Complexity: O(1).
    public func isInGuestMode(vcpu: Int) -> Bool {
        module.vcpuEpoch.indices.contains(vcpu) && module.vcpuEpoch[vcpu] != nil
    }

    /// KVM_TDX_FINALIZE_VM succeeded: the TD is runnable.
    public var isFinalized: Bool { tdx.isRunnable }

    /// vCPUs in guest mode: the ones `tdx_track()` kicks and waits for.
    /// - Complexity: O(vCPUs).
    public var vcpusInGuestMode: Int { module.vcpuEpoch.count(where: { $0 != nil }) }

    /// Drops every memoised host step (`replayMemo`, `memoFinals`) and any
    /// step being recorded. Not a KVM operation: it shows that replay does
    /// not depend on what is memoised. What maps a signature to a final
    /// state outlives it (piecewise conversion's `pieceMemo`, the guest
    /// acceptor's memo, the kernel's steady-call memo); their replays then
    /// find no memo of the step (`replay` returns nil) and the chunks are
    /// stepped, so results equal stepping whatever the memo state
    /// (`ReplayMemoStateTests`).
    /// - Complexity: O(memoised steps).
    package func forgetReplaySteps() {
        replayMemo.removeAll()
        memoFinals.removeAll()
        stepSignature = nil
        recordingPoolEvents = false
    }

    public func note(_ s: @autoclosure () -> String) { if logEnabled { operationLog.append(s()) } }

    /// Marks the VM dead (KVM_BUG_ON/TDX_BUG_ON or kvm_vm_dead).
    func kill(_ o: HostOutcome) {
        if outcome == .ok || { if case .ioctlError = outcome { return true }; return false }() { outcome = o }
        note("VM dead: \(o)")
    }

    public var isDead: Bool {
        switch outcome {
        case .vmBugged, .vmDead: true
        default: false
        }
    }

    // MARK: Stats as debugfs shows them

    /// `pages_4k`: 4K leaves in the VM's TDP roots (private mirror and shared).
    public var pages4K: UInt64 { mmu.pages4K }

    /// `pages_2m`: 2M leaves.
    public var pages2M: UInt64 { mmu.pages2M }

    /// `pages_1g`: 1G leaves.
    public var pages1G: UInt64 { mmu.pages1G }

    /// S-EPT pages in use: one per 4K table, PD and PDPT (the root is part of the TD).
    public var septPages: UInt64 { mmu.tablePages }

    /// S-EPT pool pages taken, and the split cache's pages.
    public var septPool: UInt64 { tdx.septPool }
    public var splitCache: UInt64 { tdx.splitCache }

    /// Host pages allocated for DPAMT: those installed in the module and
    /// those waiting in the split cache.
    public var pamtPagesAllocated: UInt64 { tdx.pamtPagesAllocated }

    /// Host memory pinned for the guest: allocated folios, S-EPT pages and DPAMT pages, in 4K pages.
    public var committedPages: UInt64 { gmem.allocatedPages + tdx.septPool + tdx.controlPages + pamtPagesAllocated }
}

/// What 1G private mappings did (forward-looking, issue 18 §3).
public struct Private1GStats: Equatable, Sendable {
    /// 1G leaves split into 512 2M leaves (TDH.MEM.PAGE.DEMOTE at 1G).
    public var splits: UInt64 = 0
    /// 1G leaves zapped (BLOCK, TRACK, REMOVE and WBINVD at 1G).
    public var zaps: UInt64 = 0
    public init() {}
}
