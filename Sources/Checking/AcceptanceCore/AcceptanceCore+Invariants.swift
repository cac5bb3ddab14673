extension AcceptanceCore {
    public func violations(in s: State) -> [Violation] {
        var out: [Violation] = []
        switch s.fatal {
        case .none: break
        case .touchedUnaccepted:
            out.append(Violation(invariant: "guest.never-touch-unaccepted", detail: "a vCPU touched a private range not MAPPED at every page"))
        case .acceptFailed:
            out.append(Violation(invariant: "guest.accept-succeeds", detail: "a 4K ACCEPT returned non-zero: tdx_accept_memory() failed, the kernel panics"))
        case .doubleAccept:
            out.append(Violation(invariant: "guest.no-double-accept", detail: "an ACCEPT succeeded in a range the guest had written: its data is zeroed"))
        }
        if config.acceptingList {
            for v in 0..<config.vcpus where inArchAccept(v, s) {
                for w in (v + 1)..<max(v + 1, config.vcpus) where inArchAccept(w, s) && s.pc(w) == s.pc(v) {
                    out.append(Violation(invariant: "guest.accepting-list-exclusive", detail: "vcpu\(v) and vcpu\(w) both accepting range \(s.pc(v) >> 1)"))
                }
            }
        }
        for r in 0..<config.ranges {
            let e = s.entry(r)
            let table = e == .nlMapped || e == .nlBlocked
            if !table && !s.pagesAllFree(r) {
                out.append(Violation(invariant: "host.no-double-level-mapping", detail: "range \(r): 4K leaves beside a \(e) 2M entry"))
            }
            if !mirrorAgrees(s.mirror(r), e) {
                out.append(Violation(invariant: "host.mirror-agrees-with-sept", detail: "range \(r): mirror \(s.mirror(r)), S-EPT \(e)"))
            }
        }
        for v in 0..<config.vcpus where s.attempts(v) > config.progressBound {
            out.append(Violation(invariant: "guest.accept-progress", detail: "vcpu\(v): more than \(config.progressBound) ACCEPT calls in one accept_memory() of range \(s.pc(v) >> 1)"))
        }
        return out
    }

    /// A step that moves a vCPU's program on (an `accept_memory()` that
    /// returns, a range skipped because its bit is clear, a touch): what a
    /// livelock never takes. ACCEPT calls, the host's and the VMM's steps
    /// are not progress.
    public func isProgress(_ a: Action, in s: State) -> Bool {
        guard a.kind == .vcpu else { return false }
        let v = Int(a.index), pc = s.pc(v)
        return pc & 1 == 1 || s.phase(v) == .finish || (s.phase(v) == .check && !s.bitmap(pc >> 1))
    }

    /// The state without its ACCEPT call counters: a monitor of the
    /// `progress-bound` invariant that no step reads, so the cycle search
    /// finds a cycle as soon as the state repeats otherwise.
    public func withoutMonitors(_ s: State) -> State {
        var t = s
        for v in 0..<config.vcpus { t.setAttempts(v, 0) }
        return t
    }

    /// vCPU `v` is between the accepting-list check and the bitmap clear.
    func inArchAccept(_ v: Int, _ s: State) -> Bool {
        s.pc(v) & 1 == 0 && s.pc(v) < 2 * config.ranges && s.phase(v) != .check
    }

    /// The mirror's level agrees with the S-EPT entry: nothing with FREE, a
    /// 2M leaf with a PENDING or MAPPED leaf, frozen with a blocked leaf, a
    /// 4K table with a non-leaf.
    func mirrorAgrees(_ m: Mirror, _ e: Entry) -> Bool {
        switch m {
        case .none: e == .free
        case .leaf2M: e.isLeaf2M
        case .frozen: e.isBlockedLeaf
        case .table4K: e == .nlMapped || e == .nlBlocked
        }
    }

    /// Actions of two different actors that commute in `state` (checked by
    /// applying both orders, `commute`). Host steps are serialized by
    /// `mmu_lock` and never independent of each other.
    public func independent(_ a: Action, _ b: Action, in state: State) -> Bool {
        let x = actor(of: a), y = actor(of: b)
        guard x != y, a.kind == .vcpu || b.kind == .vcpu else { return false }
        return commute(a, b, in: state)
    }

    public func describe(_ a: Action, in s: State) -> TraceStep {
        let i = Int(a.index)
        let after = apply(a, to: s)
        switch a.kind {
        case .vcpu:
            let pc = s.pc(i), r = pc >> 1
            if pc & 1 == 1 {
                let ok = after.fatal == .none
                return TraceStep(actor: .vcpu(i), call: "touch range \(r)\(s.shared(r) ? " (shared alias)" : "")",
                                 result: ok ? "ok" : "access to unaccepted memory: TD killed", state: rangeText(r, after))
            }
            switch s.phase(i) {
            case .check:
                let result = !s.bitmap(r) ? "already accepted (bitmap clear), skipped" : config.acceptingList ? "added to accepting list" : "bitmap set, accepting"
                return TraceStep(actor: .vcpu(i), call: "accept_memory(range \(r))", result: result, state: rangeText(r, after))
            case .accept2M:
                return TraceStep(actor: .vcpu(i), call: "TDG.MEM.PAGE.ACCEPT range \(r) level=2M",
                                 result: Self.outcome2M(s.entry(r)).text + fatalText(after), state: rangeText(r, after))
            case .accept4K:
                let k = s.sub(i)
                return TraceStep(actor: .vcpu(i), call: "TDG.MEM.PAGE.ACCEPT range \(r) page \(k) level=4K",
                                 result: Self.outcome4K(s.entry(r), s.page(r, k)).text + fatalText(after), state: rangeText(r, after))
            case .finish:
                return TraceStep(actor: .vcpu(i), call: "accept_memory(range \(r)) done", result: "bitmap cleared, off the list", state: rangeText(r, after))
            }
        case .eptViolation:
            let r = s.pc(i) >> 1
            let level = s.phase(i) == .accept2M ? "2M" : "4K"
            return TraceStep(actor: .host, call: "EPT violation vcpu\(i) range \(r) accept level \(level)",
                             result: s.entry(r) == after.entry(r) && s.lo == after.lo ? "spurious (already mapped)" : "SEPT.ADD/PAGE.AUG", state: rangeText(r, after))
        case .block: return TraceStep(actor: .host, call: "TDH.MEM.RANGE.BLOCK range \(i) level=2M", result: "TDX_SUCCESS", state: rangeText(i, after))
        case .track: return TraceStep(actor: .host, call: "TDH.MEM.TRACK", result: "TDX_SUCCESS", state: rangeText(i, after))
        case .demote: return TraceStep(actor: .host, call: "TDH.MEM.PAGE.DEMOTE range \(i) level=2M", result: "TDX_SUCCESS", state: rangeText(i, after))
        case .convertShared: return TraceStep(actor: .vmm, call: "KVM_SET_MEMORY_ATTRIBUTES range \(i) shared", result: "private mapping zapped", state: rangeText(i, after))
        case .convertPrivate: return TraceStep(actor: .vmm, call: "KVM_SET_MEMORY_ATTRIBUTES range \(i) private (KVM_EXIT_MEMORY_FAULT)", result: "0", state: rangeText(i, after))
        case .zap: return TraceStep(actor: .host, call: "fallocate(PUNCH_HOLE) guest_memfd range \(i)", result: "private mapping zapped", state: rangeText(i, after))
        case .refuseAUG:
            let r = s.pc(i) >> 1
            return TraceStep(actor: .host, call: "EPT violation vcpu\(i) range \(r): the fault path returns without AUG (refuse-aug)",
                             result: "vCPU resumed, its ACCEPT faults again", state: rangeText(r, after))
        }
    }

    func fatalText(_ s: State) -> String {
        switch s.fatal {
        case .acceptFailed: " → tdx_accept_memory() fails: panic"
        case .doubleAccept: " (the range's data is zeroed)"
        default: ""
        }
    }

    /// Range `r` as the trace shows it.
    func rangeText(_ r: Int, _ s: State) -> String {
        var pages = ""
        if s.entry(r) == .nlMapped || s.entry(r) == .nlBlocked {
            pages = " 4K=[" + (0..<config.pagesPerRange).map { s.page(r, $0).description }.joined(separator: ",") + "]"
        }
        return "range \(r): S-EPT 2M=\(s.entry(r))\(pages) mirror=\(s.mirror(r)) unaccepted=\(s.bitmap(r) ? 1 : 0)"
            + (config.acceptingList ? " listed=\(s.listed(r) ? 1 : 0)" : "") + (s.shared(r) ? " shared" : "") + (s.written(r) ? " written" : "")
    }
}
