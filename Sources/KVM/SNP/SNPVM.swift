public import CostModel
public import MemoryModel
public import SNP

/// A private page's nested page table leaf, as KVM's TDP MMU keeps it for
/// an SNP guest (arch/x86/kvm/mmu/tdp_mmu.c; private and shared GPAs share
/// one NPT, the C-bit is not part of the GPA).
public enum NPTLeaf: UInt8, Sendable, Equatable {
    case none
    case private4K
    case private2M
    /// A shared page mapped from the VMM's memory.
    case shared4K
}

/// What the SNP host counts, by the names of the code paths.
public enum SNPHostStat: Int, CaseIterable, Sendable {
    case rmpupdatePrivate4K, rmpupdatePrivate2M, rmpupdateShared4K, rmpupdateShared2M
    case rmpupdateFailed
    case psmashRMPFault, psmashInvalidate, psmashFailed
    case npfPrivate4K, npfPrivate2M, npfShared, npfRMP, npfRMPSpurious, memoryFaultExits
    case zaps
    case pscExits, pscEntries4K, pscEntries2M, mapGPARangeExits
    case folioSplits, folioMerges
    case pvalidate4KSuccess, pvalidate2MSuccess, pvalidateNoUpdate, pvalidateSizeMismatch, pvalidateFailed
    case rmpadjustSuccess, rmpadjustFailed
    case punchHoles
    case launchUpdateVMSA, pscMSRExits, pscLies
    case inPlaceSIGBUS, inPlacePinsRefused, inPlaceRefusedForReferences
    case hostAssigned4K, hostAssigned2M, hostMadeShared4K, hostMadeShared2M, hostPsmash
    case prefaultPages4K, prefaultPages2M, prefaultRefused

    /// The name in the report (as debugfs or the function would name it).
    public var name: String {
        switch self {
        case .rmpupdatePrivate4K: "rmpupdate.private.4k"
        case .rmpupdatePrivate2M: "rmpupdate.private.2m"
        case .rmpupdateShared4K: "rmpupdate.shared.4k"
        case .rmpupdateShared2M: "rmpupdate.shared.2m"
        case .rmpupdateFailed: "rmpupdate.failed"
        case .psmashRMPFault: "psmash.rmp_fault"
        case .psmashInvalidate: "psmash.invalidate"
        case .psmashFailed: "psmash.failed"
        case .npfPrivate4K: "npf.private.4k"
        case .npfPrivate2M: "npf.private.2m"
        case .npfShared: "npf.shared"
        case .npfRMP: "npf.rmp"
        case .npfRMPSpurious: "npf.rmp.spurious"
        case .memoryFaultExits: "exit.memory_fault"
        case .zaps: "zap_gfn_range"
        case .pscExits: "psc.vmgexit"
        case .pscEntries4K: "psc.entry.4k"
        case .pscEntries2M: "psc.entry.2m"
        case .mapGPARangeExits: "exit.hypercall.map_gpa_range"
        case .folioSplits: "gmem.folio_splits"
        case .folioMerges: "gmem.folio_merges"
        case .pvalidate4KSuccess: "pvalidate.4k.success"
        case .pvalidate2MSuccess: "pvalidate.2m.success"
        case .pvalidateNoUpdate: "pvalidate.noupdate"
        case .pvalidateSizeMismatch: "pvalidate.size_mismatch"
        case .pvalidateFailed: "pvalidate.failed"
        case .rmpadjustSuccess: "rmpadjust.success"
        case .rmpadjustFailed: "rmpadjust.failed"
        case .punchHoles: "gmem.punch_hole"
        case .launchUpdateVMSA: "rmpupdate.vmsa"
        case .pscMSRExits: "psc.msr"
        case .pscLies: "psc.answered_wrongly"
        case .inPlaceSIGBUS: "gmem.in_place.sigbus"
        case .inPlacePinsRefused: "gmem.in_place.pins_refused"
        case .inPlaceRefusedForReferences: "gmem.in_place.conversions_refused_host_references"
        case .hostAssigned4K: "adversary.rmpupdate.private.4k"
        case .hostAssigned2M: "adversary.rmpupdate.private.2m"
        case .hostMadeShared4K: "adversary.rmpupdate.shared.4k"
        case .hostMadeShared2M: "adversary.rmpupdate.shared.2m"
        case .hostPsmash: "adversary.psmash"
        case .prefaultPages4K: "pre_fault_memory.mapped.4k"
        case .prefaultPages2M: "pre_fault_memory.mapped.2m"
        case .prefaultRefused: "pre_fault_memory.refused"
        }
    }
}

/// Counters of the SNP host, one per `SNPHostStat`.
public struct SNPHostStats: Sendable, Equatable {
    var counts = [UInt64](repeating: 0, count: SNPHostStat.allCases.count)
    public init() {}
    public subscript(_ s: SNPHostStat) -> UInt64 { counts[s.rawValue] }
    mutating func add(_ s: SNPHostStat, _ n: UInt64 = 1) { counts[s.rawValue] += n }
    /// The counters that are not zero, in declaration order.
    public var nonZero: [(SNPHostStat, UInt64)] { SNPHostStat.allCases.compactMap { counts[$0.rawValue] > 0 ? ($0, counts[$0.rawValue]) : nil } }
    static func - (a: Self, b: Self) -> Self {
        var r = Self(); for i in r.counts.indices { r.counts[i] = a.counts[i] - b.counts[i] }; return r
    }
    mutating func add(_ d: Self, times k: UInt64) { for i in counts.indices { counts[i] += d.counts[i] * k } }
}

/// KVM's SEV-SNP host for one guest (arch/x86/kvm/svm/sev.c with the TDP
/// MMU and guest_memfd), over the RMP of `SNP.RMPTable`. A thin
/// coordinator, as `TDXVM` is for TDX: guest_memfd and its memslots
/// (`GuestMemfd`, hugetlb folios split and merged on conversion), the
/// memory attributes (QEMU sets all guest memory private at start), the
/// nested page table for the guest's frames, and the RMP. Every map is per
/// range: a 1 TiB guest mapped at 2M is one run in each.
///
/// The guest reaches it only through `SNPGuestDoor` (PSC VMGEXITs,
/// PVALIDATE/RMPADJUST and the nested page faults they raise, accesses);
/// the VMM through `mapGPARange` (what QEMU's `kvm_convert_memory()` does
/// for a KVM_HC_MAP_GPA_RANGE exit) and `punchHole`.
public final class SNPVM {
    /// The guest's ASID (`sev->asid`); one guest, so a fixed non-zero value.
    public let asid: UInt32 = 1
    public let vcpus: Int
    public package(set) var gmem = GuestMemfd()
    public package(set) var attributes = MemoryAttributes()
    /// NPT leaves by guest frame.
    public package(set) var npt = IntervalMap<GuestFrameNumber, NPTLeaf>(initial: .none)
    public package(set) var rmp = RMPTable()
    public package(set) var stats = SNPHostStats()
    /// Operations charged to virtual time (the SNP ops of the cost table).
    public package(set) var ops = OpCounts()
    /// What went wrong that KVM would WARN or bug the VM for, in order.
    public package(set) var warnings: [String] = []
    /// Log of host operations when `logEnabled`.
    public var logEnabled = false
    /// Frames the bulk 4K paths replayed instead of stepping (for tests).
    package var replayedFrames: UInt64 = 0
    /// How the host answers page-state changes of each frame (the
    /// adversarial host's `psc-skip`, `psc-invert`, `psc-backward`; honest
    /// by default).
    public package(set) var pscAnswers = IntervalMap<GuestFrameNumber, SNPPSCAnswer>(initial: .honest)
    /// guest_memfd in-place conversion (Ackerley Tng's series, `policy=in-place`
    /// on a `platform=snp` td line): shared and private pages both live in
    /// guest_memfd and a conversion does not discard them (`SNPVM+InPlace`).
    /// Off: VM-wide attributes, QEMU's discard on conversion.
    public var inPlace = false
    /// The VMM's own memory behind shared GPAs under VM-wide attributes
    /// (QEMU's RAM block, the shared side of each GPA): populated by the
    /// guest's shared accesses and the VMM's own loads and stores
    /// (`hostMap`), freed by QEMU's `ram_block_discard_range()` when the
    /// range is converted to private. Always empty in place.
    public package(set) var vmmShared = IntervalMap<GuestFrameNumber, Bool>(initial: false)
    /// The guest's open replay window (`beginReplayWindow`).
    var pendingWindow: SNPReplayWindow?
    /// The kernel's span replay (`SNPGuestChunkReplay`): the host states
    /// seen at chunk keys (a key is an index + 1), the memo of each
    /// stepped call by its starting key and length, and the call being stepped.
    var chunkStates: [SNPChunkState] = []
    var chunkMemos: [SNPChunkMemoKey: SNPChunkMemo] = [:]
    var chunkStep: SNPChunkStep?
    /// Calls replayed by `replayChunkSteps` (for the tests).
    package var replayedCalls: UInt64 = 0
    /// The host-visible trace of the guest's memory use (`--host-trace`,
    /// `SNPVM+Trace`); nil when not traced.
    public package(set) var hostTrace: HostTrace?
    /// The trace's clock and the captures of stepped units.
    var traceState = SNPTraceState()
    /// KVM_SEV_SNP_LAUNCH_FINISH has run (`launchFinish()`): KVM's
    /// `kvm->arch.pre_fault_allowed`, and no more SNP_LAUNCH_UPDATE.
    public package(set) var launchFinished = false
    /// The VMM pre-faults each range it converts to private on a
    /// page-state change (QEMU's "i386/kvm: Prefault memory on page state
    /// change", KVM_PRE_FAULT_MEMORY; `SNPVM+Prefault`).
    public var prefaultOnPSC = false
    public package(set) var log: [String] = []

    /// - Complexity: O(slots²).
    public init(vcpus: Int, slots: [Memslot]) throws {
        self.vcpus = vcpus
        for s in slots { try gmem.bind(s) }
        gmem.layOutHostFrames()
    }

    /// The memslot holding `gfn` (`gfn_to_memslot()`).
    public func slot(_ gfn: GuestFrameNumber) -> Memslot? { gmem.slot(gfn) }

    /// The most lines `log` keeps; later ones are only counted
    /// (`droppedLogLines`), so a long run's log cannot exhaust memory.
    public static let maxLogLines = 20_000
    public package(set) var droppedLogLines: UInt64 = 0

    func note(_ s: @autoclosure () -> String) {
        guard logEnabled else { return }
        if log.count < Self.maxLogLines { log.append(s()) } else { droppedLogLines += 1 }
    }
    func warn(_ s: String) { warnings.append(s); note("WARN: " + s) }

    /// The RMP entry of the page backing `gfn`.
    public func rmpEntry(_ gfn: GuestFrameNumber) -> RMPEntry { rmp.lookup(gmem.hfn(gfn)) }

    /// The huge-folio order of the slot holding `gfn` (its backing), or 0.
    func backingOrder(_ gfn: GuestFrameNumber) -> UInt8 { slot(gfn)?.backing.order ?? 0 }

    /// Pages mapped private at 4K and 2M in the NPT.
    /// - Complexity: O(runs).
    public var privatePages4K: UInt64 { npt.measure(in: .lowest ..< .highest) { $0 == .private4K } }
    public var privatePages2M: UInt64 { npt.measure(in: .lowest ..< .highest) { $0 == .private2M } / PageLevel.size2M.pages }

    /// Host memory guest_memfd holds for the guest (allocated folios).
    public var committedPages: UInt64 { gmem.allocatedPages }

    /// Runs of equal RMP entries (what the per-range RMP costs).
    public var rmpRuns: Int { rmp.entries.runCount }

    /// Host pages holding the vCPUs' VMSAs (`svm->sev_es.vmsa`), made
    /// guest-owned by `launchFinish()`.
    public package(set) var vmsaPages: UInt64 = 0

    /// Host memory the guest holds: guest_memfd's folios, the VMSA pages and
    /// the VMM's shared memory.
    /// - Complexity: O(runs).
    public var hostCommittedPages: UInt64 { committedPages + vmsaPages + vmmSharedPages }

    /// Pages of the VMM's shared memory (`vmmShared`).
    /// - Complexity: O(runs).
    public var vmmSharedPages: UInt64 { vmmShared.measure(in: .lowest ..< .highest) { $0 } }

    /// GPAs backed twice: a guest_memfd page and the VMM's shared page of the
    /// same GPA (the VMM touching the alias of private memory, AMDESE/AMDSEV
    /// issue 250's mechanism). Zero in place.
    /// - Complexity: O(runs).
    public var doubleBackedPages: UInt64 {
        var n: UInt64 = 0
        vmmShared.forEachRun(in: .lowest ..< .highest) { r, v in
            if v { n += gmem.folioAllocated.measure(in: r) { $0 } }
        }
        return n
    }

    /// Pages assigned to this guest in 2M RMP entries and in 4K entries.
    /// - Complexity: O(runs).
    public var assignedPagesBySize: (in2M: UInt64, in4K: UInt64) {
        (rmp.entries.measure(in: .lowest ..< .highest) { $0.assigned && $0.asid == asid && $0.pageSize2M },
         rmp.entries.measure(in: .lowest ..< .highest) { $0.assigned && $0.asid == asid && !$0.pageSize2M })
    }

    /// Validated guest pages (RMP Validated set).
    /// - Complexity: O(runs).
    public var validatedPages: UInt64 { rmp.entries.measure(in: .lowest ..< .highest) { $0.validated } }
}

extension SNPVM {
    /// Whether the guest can touch every frame of `frames` without a #VC:
    /// each lies in a memslot, is private and its RMP entry is assigned to
    /// this guest at that GPA and validated. The guest's own view (what it
    /// has validated), read from the host's RMP.
    /// - Complexity: O(slots + log runs + k) for k runs in `frames`.
    public func isValidated(_ frames: Range<GuestFrameNumber>) -> Bool {
        guard !frames.isEmpty else { return true }
        guard attributes.allPrivate(frames) else { return false }
        var covered: UInt64 = 0
        for s in gmem.slots {
            let lo = max(s.baseGFN, frames.lowerBound), hi = min(s.frames.upperBound, frames.upperBound)
            guard lo < hi else { continue }
            covered += hi - lo
            let h0 = gmem.hfn(lo)
            for (r, e) in rmp.runs(in: Range(start: h0, count: hi - lo)) {
                guard e.assigned, e.validated, e.asid == asid, e.gfn(at: r.lowerBound) == lo + (r.lowerBound - h0) else { return false }
            }
        }
        return covered == frames.length
    }
}
