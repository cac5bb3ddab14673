public import MemoryModel
import TDXModule

/// What the host sees of a guest's memory use (issue 18 §5, second
/// bullet): one kind per exit KVM gets for it.
public enum HostTraceKind: String, Sendable, CaseIterable {
    /// An EPT-violation TD exit from TDG.MEM.PAGE.ACCEPT on a GPA the S-EPT
    /// does not map: the TDX module exits with the GPA and, in the extended
    /// exit qualification, TDX_EXT_EXIT_QUAL_TYPE_ACCEPT with the level the
    /// guest asked for (`tdx_handle_ept_violation()` reads it for
    /// `tdx_honor_guest_accept_level()`). An ACCEPT of a page already
    /// mapped PENDING completes inside the module: no exit, nothing seen.
    case acceptExit = "accept"
    /// An EPT violation from a plain load or store to a private GPA (no
    /// accept level in the qualification).
    case accessExit = "access"
    /// An EPT violation on a shared GPA (the shared EPT).
    case sharedExit = "shared"
    /// The guest's MapGPA TDVMCALL (KVM_HC_MAP_GPA_RANGE, a
    /// KVM_EXIT_HYPERCALL the VMM answers with a conversion): the range and
    /// its direction.
    case mapGPAPrivate = "mapgpa-private"
    case mapGPAShared = "mapgpa-shared"
    /// SEV-SNP (`SNPVM`): a nested page fault on a private GPA (the C-bit
    /// set: PFERR_GUEST_ENC_MASK, which `npf_interception()` turns into
    /// PFERR_PRIVATE_ACCESS) that KVM maps from guest_memfd
    /// (`kvm_mmu_page_fault()` → `sev_gmem_prepare()`). No level: the exit
    /// carries the GPA and the fault flags only, the page size is KVM's choice.
    case npfPrivate = "npf-private"
    /// SNP: a nested page fault on a shared GPA (C-bit clear).
    case npfShared = "npf-shared"
    /// SNP: a nested page fault with PFERR_GUEST_RMP_MASK (`sev_handle_rmp_fault()`):
    /// an NPT mapping smaller than the page's 2M RMP entry, or a page not
    /// assigned to the guest at that GPA.
    case npfRMP = "npf-rmp"
    /// SNP: the same with PFERR_GUEST_SIZEM_MASK: a 4K PVALIDATE or
    /// RMPADJUST of a page in a 2M RMP entry.
    case npfRMPSizeMismatch = "npf-rmp-size"
    /// SNP: KVM_EXIT_MEMORY_FAULT to the VMM: the fault's C-bit disagrees
    /// with the memory attributes (`kvm_faultin_pfn()`), the VMM converts
    /// (`kvm_convert_memory()`) and the access faults again.
    case memoryFault = "memory-fault"
    /// SNP: a run of page-state-change entries of one operation and size in
    /// a GHCB PSC request (SVM_VMGEXIT_PSC), one KVM_HC_MAP_GPA_RANGE exit
    /// to the VMM (`snp_begin_psc()`): range, operation, entry size
    /// (`level`) and the answer written back (`snp_complete_psc()`).
    case pscPrivate = "psc-private"
    case pscShared = "psc-shared"
    /// SNP: a GHCB MSR protocol page-state request (GHCB_MSR_PSC_REQ, one 4K
    /// page), forwarded as a one-page KVM_HC_MAP_GPA_RANGE exit
    /// (`snp_begin_psc_msr()`), and its answer (`snp_complete_psc_msr()`).
    case pscMSRPrivate = "psc-msr-private"
    case pscMSRShared = "psc-msr-shared"

    /// First touches: the exits that map a private GPA for the first time
    /// or announce it (an SNP guest's page-state change to private comes
    /// before its PVALIDATE).
    public var isFirstTouch: Bool {
        switch self {
        case .acceptExit, .accessExit, .npfPrivate, .pscPrivate, .pscMSRPrivate: true
        default: false
        }
    }

    /// What the first-touch map keeps for a first touch of this kind at
    /// `level`: 1 + the level for an exit that names one (TDX accept exits,
    /// SNP page-state changes by entry size), 4 for one that does not
    /// (accesses, nested page faults).
    func firstTouchCode(level: PageLevel?) -> UInt8 {
        switch self {
        case .acceptExit, .pscPrivate: UInt8(1 + (level?.rawValue ?? 0))
        case .pscMSRPrivate: UInt8(1 + PageLevel.size4K.rawValue)
        default: 4
        }
    }
}

/// One record of the host trace: a run of exits of one kind and level on
/// one vCPU at contiguous GPAs, within one guest accept call or one bulk
/// replay of identical calls. `frames` is the range the exits fall in;
/// `exits` how many there were; `start` and `end` the virtual times of the
/// first and the last (a replayed run's exits are evenly spaced between
/// them: each replayed step charges the same operations).
public struct HostTraceRecord: Equatable, Sendable {
    public var kind: HostTraceKind
    /// The accept level in the exit qualification (accept exits only).
    public var level: PageLevel?
    public var vcpu: Int
    public var frames: Range<GuestFrameNumber>
    public var exits: UInt64
    public var start: Double
    public var end: Double
    /// SNP page-state changes only: what the host wrote back (`ok`, or the
    /// error the guest reads: `generic`, `backward`); nil for every other kind.
    public var answer: String?

    public init(kind: HostTraceKind, level: PageLevel?, vcpu: Int, frames: Range<GuestFrameNumber>, exits: UInt64, start: Double, end: Double, answer: String? = nil) {
        self.kind = kind; self.level = level; self.vcpu = vcpu; self.frames = frames; self.exits = exits; self.start = start; self.end = end
        self.answer = answer
    }

    /// One JSON object on one line (the `--host-trace` file's lines).
    /// - Complexity: O(1).
    public var jsonLine: String {
        let lvl = level.map { "\"\($0)\"" } ?? "null"
        return "{\"t\":\(fmt(start)),\"t_end\":\(fmt(end)),\"kind\":\"\(kind.rawValue)\",\"level\":\(lvl),\"vcpu\":\(vcpu),"
            + "\"gpa\":\"\(frames.lowerBound.address)\",\"bytes\":\(frames.length << PageLevel.pageShift),\"exits\":\(exits)"
            + (answer.map { ",\"answer\":\"\($0)\"}" } ?? "}")
    }

    private func fmt(_ t: Double) -> String {
        // Nanoseconds of virtual time, printed as seconds with 9 decimals: the same bytes on every machine.
        let ns = UInt64((t * 1e9).rounded())
        let frac = String(ns % 1_000_000_000)
        return "\(ns / 1_000_000_000)." + String(repeating: "0", count: 9 - frac.count) + frac
    }
}

/// The host-visible trace of a guest's memory use, in virtual time
/// (`--host-trace`): bounded like the operation log (the first `headLimit`
/// and last `tailLimit` records; the totals and the first-touch map are
/// exact whatever is dropped), one record per run, so a TiB guest's
/// accepts are a few records, not a record per page.
public struct HostTrace: Sendable {
    public static let headLimit = 50_000
    public static let tailLimit = 50_000

    /// Virtual time at which the current phase's vCPU clocks start.
    public var timeBase = 0.0
    /// The current vCPU and its time in the phase (set by the guest's TDCALLs).
    var vcpu = 0
    var now = 0.0
    private var head: [HostTraceRecord] = []
    private var tail: [HostTraceRecord] = []
    private var tailStart = 0
    /// Records dropped between the head and the tail.
    public private(set) var dropped: UInt64 = 0
    /// The record still growing.
    private var open: HostTraceRecord?
    /// A new guest accept call began: the next exit starts a new record.
    private var broken = true
    /// While a 2M chunk is stepped for bulk replay: its records, to repeat.
    var capture: [HostTraceRecord]?

    /// Exits per kind and accept level (index: level raw value, 3 = none).
    public private(set) var exits: [HostTraceKind: [UInt64]] = [:]
    /// Frames whose first touch the host saw, with the level of the exit
    /// (0 = not seen, 1 + `PageLevel.rawValue` for accept exits, 4 for access exits).
    public private(set) var firstTouch = IntervalMap<GuestFrameNumber, UInt8>(initial: 0)
    /// Virtual times of the first and last first-touch exit.
    public private(set) var firstTouchSpan: ClosedRange<Double>?
    /// Guest accept calls (the model's join: the guest's side of the trace)
    /// and how many of them exited at least once.
    public private(set) var guestCalls: UInt64 = 0
    public private(set) var guestCallsSeen: UInt64 = 0
    private var callExits: UInt64 = 0

    public init() {}

    /// The absolute virtual time of the current vCPU's clock.
    var time: Double { timeBase + now }

    /// A guest accept call begins on `vcpu` at phase time `now`: the next
    /// exit opens a new record.
    mutating func beginCall(vcpu: Int, now: Double, calls: UInt64 = 1) {
        endCall()
        self.vcpu = vcpu; self.now = now
        broken = true
        guestCalls += calls
        pendingCalls = calls
    }

    private var pendingCalls: UInt64 = 0

    /// A host scenario's command begins on `vcpu` at phase time `now`
    /// (`cocomem host --host-trace`): the call before it is settled and the
    /// next exit opens a new record, but no guest accept call begins (an
    /// `accept` command begins its own with `beginCall`).
    /// - Complexity: O(1).
    package mutating func beginCommand(vcpu: Int, now: Double) {
        endCall()
        self.vcpu = vcpu; self.now = now
        broken = true
    }

    /// Settles the call begun last: seen if it exited.
    /// - Complexity: O(1).
    public mutating func endCall() {
        if pendingCalls > 0 && callExits > 0 { guestCallsSeen += pendingCalls }
        pendingCalls = 0; callExits = 0
    }

    /// Adds `n` exits of `kind` at `frames`, at the current time.
    /// - Complexity: O(log runs) amortised; memory bounded by the limits.
    mutating func add(_ kind: HostTraceKind, level: PageLevel?, frames: Range<GuestFrameNumber>, exits n: UInt64 = 1, answer: String? = nil) {
        guard !frames.isEmpty, n > 0 else { return }
        let t = time
        exits[kind, default: [0, 0, 0, 0]][level?.rawValue ?? 3] += n
        callExits += n
        if kind.isFirstTouch {
            // The first exit covering a frame is its first touch: later
            // exits (a 2M ACCEPT's 4K fallback) do not overwrite it.
            let seen = kind.firstTouchCode(level: level)
            for (r, v) in firstTouch.runs(in: frames) where v == 0 { firstTouch.assign(r, seen) }
            firstTouchSpan = firstTouchSpan.map { min($0.lowerBound, t)...max($0.upperBound, t) } ?? t...t
        }
        let r = HostTraceRecord(kind: kind, level: level, vcpu: vcpu, frames: frames, exits: n, start: t, end: t, answer: answer)
        if capture != nil { capture!.append(r) }
        if !broken, var o = open, o.kind == kind, o.level == level, o.vcpu == vcpu, o.answer == answer, o.frames.upperBound == frames.lowerBound {
            o.frames = o.frames.lowerBound ..< frames.upperBound
            o.exits += n
            o.end = t
            open = o
            return
        }
        flush()
        open = r
        broken = false
    }

    /// Sets the end time of the record still open (a bulk replay's span ended at phase time `now`).
    mutating func replayEnded(now: Double) {
        self.now = now
        if var o = open { o.end = max(o.start, time); open = o }
        if let s = firstTouchSpan, open?.kind.isFirstTouch == true { firstTouchSpan = s.lowerBound...max(s.upperBound, time) }
    }

    private mutating func flush() {
        guard let o = open else { return }
        open = nil
        if head.count < Self.headLimit { head.append(o); return }
        if tail.count < Self.tailLimit { tail.append(o); return }
        tail[tailStart] = o
        tailStart = (tailStart + 1) % Self.tailLimit
        dropped += 1
    }

    /// The kept records in order (the open one last).
    /// - Complexity: O(kept records).
    public var records: [HostTraceRecord] {
        var out = head + tail[tailStart...] + tail[..<tailStart]
        if let o = open { out.append(o) }
        return out
    }

    /// All exits of `kind` (every level).
    /// - Complexity: O(1).
    public func exits(_ kind: HostTraceKind) -> UInt64 { exits[kind]?.reduce(0, +) ?? 0 }

    /// Exits of `kind` at accept level `level`.
    /// - Complexity: O(1).
    public func exits(_ kind: HostTraceKind, level: PageLevel) -> UInt64 { exits[kind]?[level.rawValue] ?? 0 }

    /// Bytes whose first touch the host saw, by what it saw: accept exits
    /// at each level and access exits.
    /// - Complexity: O(runs of the first-touch map).
    public var firstTouchBytes: (byLevel: [PageLevel: UInt64], access: UInt64) {
        var by: [PageLevel: UInt64] = [:], access: UInt64 = 0
        firstTouch.forEachRun(in: .lowest ..< .highest) { r, v in
            guard v > 0 else { return }
            let b = r.length << PageLevel.pageShift
            if v == 4 { access += b } else if let l = PageLevel(rawValue: Int(v) - 1) { by[l, default: 0] += b }
        }
        return (by, access)
    }

    /// Bytes the kept first-touch records show touched at or after `after`,
    /// each frame once: several records cover the same frames where one
    /// first touch makes several exits (a 2M ACCEPT's exit and the 4K
    /// fallback after its SIZE_MISMATCH on a 4K mapping; an SNP page-state
    /// change to private and the nested page faults that follow it).
    /// - Complexity: O(kept records × log runs).
    public func bytesFirstTouched(after: Double) -> UInt64 {
        var late = IntervalMap<GuestFrameNumber, Bool>(initial: false)
        for r in records where r.kind.isFirstTouch && r.start >= after { late.assign(r.frames, true) }
        return late.measure(in: .lowest ..< .highest) { $0 } << PageLevel.pageShift
    }

    /// The file `--host-trace` writes: one JSON object per line, the records
    /// in order, a line where records were dropped, and a last summary line.
    /// - Complexity: O(kept records).
    public var jsonLines: String {
        var lines: [String] = []
        let rs = records
        for (i, r) in rs.enumerated() {
            if dropped > 0 && i == head.count { lines.append("{\"dropped\":\(dropped)}") }
            lines.append(r.jsonLine)
        }
        var kinds: [String] = []
        for k in HostTraceKind.allCases where exits(k) > 0 { kinds.append("\"\(k.rawValue)\":\(exits(k))") }
        lines.append("{\"summary\":{\"records\":\(UInt64(rs.count) + dropped),\"dropped\":\(dropped),\"exits\":{\(kinds.joined(separator: ","))}}}")
        return lines.joined(separator: "\n") + "\n"
    }
}

/// What a host can infer from its trace about the guest's memory use,
/// joined with what the model knows of the guest (its accepted memory and
/// accept calls; issue 18 §5): how much of the accepted memory's first
/// touch the host saw, at which granularity, and when.
public struct HostInference: Equatable, Sendable {
    /// Private memory the guest has accepted (MAPPED in the S-EPT), bytes.
    public var acceptedBytes: UInt64
    /// Of it, bytes whose first touch the host saw as an exit, by the
    /// exit's accept level, and by access exits (no level).
    public var seenByLevel: [PageLevel: UInt64]
    public var seenByAccess: UInt64
    /// Guest accept calls (`accept_memory()` and the firmware's), and how
    /// many made at least one exit.
    public var guestCalls: UInt64
    public var guestCallsSeen: UInt64
    /// Virtual times of the first and last first-touch exit.
    public var span: ClosedRange<Double>?
    /// Bytes first touched after `after` (the end of the boot), from the
    /// kept records (a lower bound when records were dropped).
    public var seenAfter: UInt64
    public var recordsDropped: UInt64

    public var seenBytes: UInt64 { seenByLevel.values.reduce(0, +) + seenByAccess }
    /// Accepted memory whose first touch the host did not see: added at
    /// build time (TDH.MEM.PAGE.ADD) or AUGed before the guest accepted it
    /// (`KVM_PRE_FAULT_MEMORY`, `readd`), so the ACCEPT found it PENDING.
    public var unseenBytes: UInt64 { acceptedBytes - min(acceptedBytes, seenBytes) }
}

extension TDXVM {
    /// The host's inference from `hostTrace` (nil without one).
    /// - Complexity: O(runs of the first-touch map × log runs of the S-EPT + kept records).
    public func hostInference(after: Double) -> HostInference? {
        guard let t = hostTrace else { return nil }
        var by: [PageLevel: UInt64] = [:], access: UInt64 = 0
        t.firstTouch.forEachRun(in: .lowest ..< .highest) { r, v in
            guard v > 0 else { return }
            let b = module.acceptedFrameCount(in: r) << PageLevel.pageShift
            if v == 4 { access += b } else if let l = PageLevel(rawValue: Int(v) - 1) { by[l, default: 0] += b }
        }
        var accepted: UInt64 = 0
        for s in slots { accepted += module.acceptedFrameCount(in: s.frames) }
        return HostInference(acceptedBytes: accepted << PageLevel.pageShift, seenByLevel: by, seenByAccess: access,
                             guestCalls: t.guestCalls, guestCallsSeen: t.guestCallsSeen, span: t.firstTouchSpan,
                             seenAfter: t.bytesFirstTouched(after: after), recordsDropped: t.dropped)
    }
}
