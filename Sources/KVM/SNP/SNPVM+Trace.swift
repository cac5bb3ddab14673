public import CostModel
public import MemoryModel
import SNP

/// One kind of host-trace exit a stepped SNP unit made (a frame, a PSC
/// descriptor, a whole `accept_memory()` call), and how many: what a
/// replay of that unit adds again, times the units replayed.
struct SNPTraceUnit: Equatable {
    var kind: HostTraceKind
    var level: PageLevel?
    var answer: String?
    var exits: UInt64

    /// `records` summed per kind, level and answer, in first-seen order.
    static func units(_ records: ArraySlice<SNPTraceUnit>) -> [SNPTraceUnit] {
        var out: [SNPTraceUnit] = []
        for r in records {
            if let i = out.firstIndex(where: { $0.kind == r.kind && $0.level == r.level && $0.answer == r.answer }) { out[i].exits += r.exits }
            else { out.append(r) }
        }
        return out
    }
}

/// The SNP host's trace clock and the captures its replays read.
struct SNPTraceState {
    /// Per-operation vCPU time (`CostTable.vcpuPicoseconds`): an exit's time
    /// is the current guest call's start plus the vCPU time of the host
    /// operations charged since it began.
    var vcpuPicoseconds: [UInt64] = []
    /// The current call's start on its vCPU (phase picoseconds) and the
    /// host operations at that moment.
    var callStart: UInt64 = 0
    var callOps = OpCounts()
    /// Exits added while a stepped unit is watched (`beginTraceCapture`),
    /// nil when none is.
    var capture: [SNPTraceUnit]?
    var captureDepth = 0
}

/// The host-visible trace on the SNP host (`boot --platform snp --host snp
/// --host-trace FILE`, issue 18 §5): the same records and file as the TDX
/// host's (`HostTrace`), of SNP's kinds: nested page faults by their flags
/// (`npf_interception()`: PFERR_GUEST_ENC, PFERR_GUEST_RMP,
/// PFERR_GUEST_SIZEM), KVM_EXIT_MEMORY_FAULT, and page-state changes as the
/// KVM_HC_MAP_GPA_RANGE exits `snp_begin_psc()` and `snp_begin_psc_msr()`
/// make of them (range, operation, entry size) with the answer written back.
/// Replayed frames, descriptors and calls add their stepped unit's exits
/// times the replayed units, one record per kind over the replayed range,
/// from the replay's start to its end (evenly spaced in between, as the
/// TDX host's replayed chunks).
extension SNPVM {
    /// Starts tracing with the vCPU times of `costs` (nil: stop).
    /// - Complexity: O(1).
    public func traceHost(costs: CostTable?) {
        hostTrace = costs == nil ? nil : HostTrace()
        traceState = SNPTraceState()
        if let costs { traceState.vcpuPicoseconds = costs.vcpuPicoseconds }
    }

    /// The phase time of the current vCPU: the call's start plus the vCPU
    /// time of the host operations since.
    /// - Complexity: O(operation kinds).
    var traceNow: Double { Double(tracePicoseconds) / 1e12 }

    /// `traceNow` in picoseconds (0 when not tracing).
    /// - Complexity: O(operation kinds).
    var tracePicoseconds: UInt64 {
        guard hostTrace != nil else { return 0 }
        let d = ops - traceState.callOps
        var ps = traceState.callStart
        for i in d.counts.indices where d.counts[i] != 0 && i < traceState.vcpuPicoseconds.count {
            ps &+= traceState.vcpuPicoseconds[i] &* d.counts[i]
        }
        return ps
    }

    /// A host scenario's command begins on `vcpu` at phase time
    /// `picoseconds` (`cocomem host --host-trace`, `SNPHostRun`): the guest
    /// accept call before it, if any, is settled, the command's exits start
    /// a new record and are placed from that time on, as a call's are.
    /// - Complexity: O(1).
    package func traceCommand(vcpu: Int, picoseconds: UInt64) {
        guard hostTrace != nil else { return }
        traceState.callStart = picoseconds
        traceState.callOps = ops
        traceState.capture = nil
        traceState.captureDepth = 0
        pendingWindow?.traceMark = nil
        chunkStep?.traceMark = nil
        hostTrace!.beginCommand(vcpu: vcpu, now: Double(picoseconds) / 1e12)
    }

    /// A guest accept call of a host scenario's command (`accept`, each
    /// `cycle`'s accept) begins on `vcpu` now: at the trace clock's time,
    /// which includes the command's operations so far.
    /// - Complexity: O(operation kinds).
    package func traceGuestCall(vcpu: Int) {
        guard hostTrace != nil else { return }
        traceCall(vcpu: vcpu, picoseconds: tracePicoseconds, calls: 1)
    }

    /// Settles the last guest accept call (seen if it exited). Idempotent.
    /// - Complexity: O(1).
    public func settleTrace() { hostTrace?.endCall() }

    /// One exit (or `exits` alike) of `kind` at `frames`, now.
    /// - Complexity: O(log runs) amortised.
    func trace(_ kind: HostTraceKind, level: PageLevel? = nil, frames: Range<GuestFrameNumber>, exits: UInt64 = 1,
               answer: String? = nil, at now: Double? = nil) {
        guard hostTrace != nil else { return }
        hostTrace!.now = now ?? traceNow
        hostTrace!.add(kind, level: level, frames: frames, exits: exits, answer: answer)
        if traceState.capture != nil { traceState.capture!.append(SNPTraceUnit(kind: kind, level: level, answer: answer, exits: exits)) }
    }

    /// The answer a page-state change's record carries.
    static func traceAnswer(_ s: PSCStatus) -> String {
        switch s {
        case .ok: "ok"
        case .invalidHeader: "invalid_header"
        case .invalidEntry: "invalid_entry"
        case .generic: "generic"
        case .processingWentBackward: "backward"
        }
    }

    /// Starts watching the exits of a stepped unit; returns the mark
    /// `endTraceCapture` reads from (nil when not tracing).
    func beginTraceCapture() -> Int? {
        guard hostTrace != nil else { return nil }
        if traceState.captureDepth == 0 { traceState.capture = [] }
        traceState.captureDepth += 1
        return traceState.capture!.count
    }

    /// The exits since `mark`, summed per kind; ends that capture.
    func endTraceCapture(_ mark: Int?) -> [SNPTraceUnit] {
        guard let mark, let c = traceState.capture, traceState.captureDepth > 0 else { return [] }
        let units = SNPTraceUnit.units(c[min(mark, c.count)...])
        traceState.captureDepth -= 1
        if traceState.captureDepth == 0 { traceState.capture = nil }
        return units
    }

    /// A replay of `times` units like the one `units` came from, over
    /// `frames`: each kind once over the range, its exits times the units,
    /// at `start` (the replay's end is set by the operations that follow or
    /// by the guest's `traceReplayEnded`).
    func traceReplay(_ units: [SNPTraceUnit], frames: Range<GuestFrameNumber>, times: UInt64, start: Double) {
        guard hostTrace != nil, times > 0 else { return }
        for u in units { trace(u.kind, level: u.level, frames: frames, exits: u.exits * times, answer: u.answer, at: start) }
        hostTrace!.replayEnded(now: traceNow)
    }
}

extension SNPVM: SNPHostTraceClock {
    /// `calls` guest accept calls begin on `vcpu` at phase time
    /// `picoseconds` (one stepped, or several replayed).
    /// - Complexity: O(1).
    package func traceCall(vcpu: Int, picoseconds: UInt64, calls: UInt64) {
        guard hostTrace != nil else { return }
        traceState.callStart = picoseconds
        traceState.callOps = ops
        // No capture outlives a call (a guest that died inside one left its marks).
        traceState.capture = nil
        traceState.captureDepth = 0
        pendingWindow?.traceMark = nil
        chunkStep?.traceMark = nil
        hostTrace!.beginCall(vcpu: vcpu, now: Double(picoseconds) / 1e12, calls: calls)
    }

    /// The guest's own work inside the call (its `sev_evict_cache()`),
    /// which the host does not charge: the trace clock moves on by it.
    /// - Complexity: O(operation kinds) with `endsReplay`, else O(1).
    package func traceGuestWork(picoseconds: UInt64, endsReplay: Bool) {
        guard hostTrace != nil, picoseconds > 0 else { return }
        traceState.callStart &+= picoseconds
        if endsReplay { hostTrace!.replayEnded(now: traceNow) }
    }

    /// The replayed calls ended at phase time `picoseconds`.
    /// - Complexity: O(1).
    package func traceReplayEnded(picoseconds: UInt64) {
        guard hostTrace != nil else { return }
        hostTrace!.replayEnded(now: Double(picoseconds) / 1e12)
        traceState.callStart = picoseconds
        traceState.callOps = ops
    }
}

extension SNPVM {
    /// Guest frames of `frames` whose RMP entry is assigned to this guest at
    /// that GPA and validated: the memory the guest has accepted.
    /// - Complexity: O(slots + log runs + k).
    public func validatedFrameCount(in frames: Range<GuestFrameNumber>) -> UInt64 {
        var n: UInt64 = 0
        for s in gmem.slots {
            let lo = max(s.baseGFN, frames.lowerBound), hi = min(s.frames.upperBound, frames.upperBound)
            guard lo < hi else { continue }
            let h0 = gmem.hfn(lo)
            for (r, e) in rmp.runs(in: Range(start: h0, count: hi - lo))
            where e.assigned && e.validated && e.asid == asid && e.gfn(at: r.lowerBound) == lo + (r.lowerBound - h0) {
                n += r.length
            }
        }
        return n
    }

    /// The host's inference from `hostTrace` (nil without one), as
    /// `TDXVM.hostInference(after:)`: accepted memory is what the guest has
    /// validated; its first touch is seen at the page-state change to
    /// private (by entry size) or, without one, at the nested page fault.
    /// - Complexity: O(runs of the first-touch map × log runs of the RMP + kept records).
    public func hostInference(after: Double) -> HostInference? {
        guard let t = hostTrace else { return nil }
        var by: [PageLevel: UInt64] = [:], access: UInt64 = 0
        t.firstTouch.forEachRun(in: .lowest ..< .highest) { r, v in
            guard v > 0 else { return }
            let b = validatedFrameCount(in: r) << PageLevel.pageShift
            if v == 4 { access += b } else if let l = PageLevel(rawValue: Int(v) - 1) { by[l, default: 0] += b }
        }
        var accepted: UInt64 = 0
        for s in gmem.slots { accepted += validatedFrameCount(in: s.frames) }
        // A range is announced by its page-state change and then faulted in: counted once.
        let after0 = t.bytesFirstTouched(after: after)
        return HostInference(acceptedBytes: accepted << PageLevel.pageShift, seenByLevel: by, seenByAccess: access,
                             guestCalls: t.guestCalls, guestCallsSeen: t.guestCallsSeen, span: t.firstTouchSpan,
                             seenAfter: after0, recordsDropped: t.dropped)
    }
}
