extension AcceptanceCore {
    /// A trace of the abstraction written in the host command language
    /// (`cocomem host`, a scenario file's `host` step), so `cocomem run`
    /// replays it on the real layers (KVM, the TDX module, the guest's
    /// accept driver).
    public struct HostTranslation: Sendable {
        /// The host commands: `td`, `slot`, `finalize`, then one command
        /// (or a comment, for a guest-internal step) per abstract step,
        /// each with the vCPU or actor and the abstract calls it stands for.
        public var commands: String
        /// The abstract steps that have no counterpart in the host command
        /// language, each with why; empty when every step has one. When not
        /// empty, `commands` holds the translated prefix only (the rest as
        /// comments): it does not reach the violation and must not claim to.
        public var notExpressible: [String]
        /// How the abstract steps were regrouped (an accept's calls made
        /// contiguous), or nil when the trace was already in that shape.
        public var reordered: String?

        public var complete: Bool { notExpressible.isEmpty }
    }

    /// What each abstract step becomes in the host command language:
    ///
    /// | abstract step | host command |
    /// |---|---|
    /// | vCPU: the bitmap and accepting-list check, the bitmap clear | a comment: `accept_memory()`'s own bookkeeping, no call leaves the guest |
    /// | vCPU: every TDG.MEM.PAGE.ACCEPT of one `accept_memory()` of a range, with KVM's handling of its EPT violations and the splits a 4K ACCEPT demands | one `accept BASE+512 linux` (`tdx_accept_memory()`: 2M, then 4K on any non-zero status; `already-accepted: trust` is `2m`, edk2's `TdAcceptPages()`, which takes ALREADY_ACCEPTED as done) |
    /// | vCPU: a touch | `access BASE+512` |
    /// | VMM: a conversion to shared / back to private | `attributes BASE+512 shared` / `private` (KVM_SET_MEMORY_ATTRIBUTES) |
    /// | host: a hole punched | `punch BASE+512` |
    /// | host: a split on its own (BLOCK, TRACK, DEMOTE not demanded by a fault) | none: no host command only splits a mapping |
    ///
    /// A host `accept` runs to completion, so an accept's calls must be
    /// contiguous in the trace. Where other actors' steps fall between
    /// them, they are moved before or after the accept if the abstract
    /// model reaches the very same final state that way (checked by
    /// replaying the reordered trace); where neither order does, the
    /// interleaving is what the counterexample is about and the host
    /// language cannot express it: `notExpressible` names the steps.
    ///
    /// Each guest command runs on the abstract vCPU that made it
    /// (`vcpu=N`, the host language's vCPU argument). A range of
    /// `pagesPerRange` pages stands for 512: `BASE+512` is its 2 MiB.
    /// - Complexity: O(n³) `apply` calls for a trace of n steps (each
    ///   regrouping is checked by a replay), n being a few dozen at most.
    public func hostScenario(_ actions: [Action]) -> HostTranslation {
        let initial = initialStates[0]
        // The original step numbers, permuted with the trace.
        var order = Array(actions.indices)
        var trace: [Action] { order.map { actions[$0] } }
        var reordered: [String] = []
        var notes: [String] = []
        if let target = final(actions, from: initial) {
            var i = 0, budget = 8 * (actions.count + 1) * (actions.count + 1)
            scan: while i < order.count, budget > 0 {
                budget -= 1
                let t = trace, states = statesAlong(t, from: initial)
                guard let ep = episode(startingAt: i, in: t, states: states) else { i += 1; continue }
                if !endsAccept(ep.vcpu, states[ep.last + 1]) {
                    notes.append("steps \(ep.members.map { "\(order[$0] + 1)" }.joined(separator: ", ")): vcpu\(ep.vcpu)'s accept_memory() of range \(ep.range) "
                                 + "is still between its ACCEPT calls when the invariant breaks; a host `accept` command runs to completion, so it cannot stop there")
                    break
                }
                if let k = ep.members.first(where: { t[$0].kind == .refuseAUG }) {
                    notes.append("step \(order[k] + 1) (\(describe(t[k], in: states[k]).call)): the host refuses one fault of vcpu\(ep.vcpu)'s accept; "
                                 + "the host language's `refuse-aug RANGE` refuses every later fault on the range, not one")
                    break
                }
                let foreign = (ep.first...ep.last).filter { !ep.members.contains($0) }
                if foreign.isEmpty { i = ep.last + 1; continue }
                let head = Array(order[..<ep.first]), tail = Array(order[(ep.last + 1)...])
                let members = ep.members.map { order[$0] }, others = foreign.map { order[$0] }
                for (candidate, advance, how) in [(head + others + members + tail, 0, "before"), (head + members + others + tail, members.count, "after")]
                where final(candidate.map { actions[$0] }, from: initial) == target {
                    reordered.append("step\(others.count > 1 ? "s" : "") \(others.map { "\($0 + 1)" }.joined(separator: ", ")) moved \(how) "
                                     + "vcpu\(ep.vcpu)'s accept of range \(ep.range) (the abstract model reaches the same state)")
                    order = candidate
                    i = ep.first + advance
                    continue scan
                }
                notes.append(notExpressibleNote(ep, order: order, trace: t, states: states))
                break
            }
            if budget == 0 && notes.isEmpty && i < order.count {
                notes.append("the regrouping of the accepts did not settle within its bound; the steps from the first accept still interleaved are not written")
            }
        }
        let t = trace
        return render(t, order: order, stopAt: notes.isEmpty ? nil : firstUnexpressed(t, initial), notes: notes,
                      reordered: reordered.isEmpty ? nil : reordered.joined(separator: "; "))
    }

    /// One `accept_memory()` of one range by one vCPU, as trace indices:
    /// its ACCEPT calls and the host steps that serve them.
    struct Episode {
        var vcpu: Int
        var range: Int
        var first: Int
        var last: Int
        var members: [Int]
    }

    /// The states before each action and after the last.
    func statesAlong(_ trace: [Action], from s0: State) -> [State] {
        var out = [s0]
        for a in trace { out.append(apply(a, to: out[out.count - 1])) }
        return out
    }

    /// The state `trace` reaches, nil if some action is not enabled on the way.
    func final(_ trace: [Action], from s0: State) -> State? {
        var s = s0
        for a in trace {
            guard actions(in: s).contains(a) else { return nil }
            s = apply(a, to: s)
        }
        return s
    }

    /// The accept episode whose first ACCEPT is `trace[i]`, if it is one.
    func episode(startingAt i: Int, in trace: [Action], states: [State]) -> Episode? {
        let a = trace[i], s = states[i]
        guard a.kind == .vcpu, isAcceptCall(Int(a.index), s) else { return nil }
        let v = Int(a.index), r = s.pc(v) >> 1
        var ep = Episode(vcpu: v, range: r, first: i, last: i, members: [i])
        var splitFor = false
        var j = i
        while !endsAccept(v, states[j + 1]), j + 1 < trace.count {
            j += 1
            let b = trace[j], t = states[j]
            switch b.kind {
            case .vcpu where Int(b.index) == v: ep.members.append(j)
            case .eptViolation where Int(b.index) == v, .refuseAUG where Int(b.index) == v: ep.members.append(j)
            case .block where Int(b.index) == r && t.waiting(v) && t.phase(v) == .accept4K && t.pc(v) >> 1 == r:
                splitFor = true
                ep.members.append(j)
            case .track where Int(b.index) == r && splitFor: ep.members.append(j)
            case .demote where Int(b.index) == r && splitFor:
                splitFor = false
                ep.members.append(j)
            default: break
            }
        }
        ep.last = ep.members.last ?? i
        return ep
    }

    /// vCPU `v`'s next step is a TDG.MEM.PAGE.ACCEPT.
    func isAcceptCall(_ v: Int, _ s: State) -> Bool {
        s.pc(v) & 1 == 0 && (s.phase(v) == .accept2M || s.phase(v) == .accept4K)
    }

    /// The accept is over: its bitmap clear is next, or the TD is dead.
    func endsAccept(_ v: Int, _ s: State) -> Bool {
        s.fatal != .none || !(s.phase(v) == .accept2M || s.phase(v) == .accept4K)
    }

    func notExpressibleNote(_ ep: Episode, order: [Int], trace: [Action], states: [State]) -> String {
        let foreign = (ep.first...ep.last).filter { !ep.members.contains($0) }
        let names = foreign.map { "\(order[$0] + 1) (\(describe(trace[$0], in: states[$0]).call))" }.joined(separator: ", ")
        return "steps \(ep.members.map { "\(order[$0] + 1)" }.joined(separator: ", ")): vcpu\(ep.vcpu)'s accept_memory() of range \(ep.range) is one `accept` command in the host "
            + "language, which runs its ACCEPT calls (and KVM's handling of their EPT violations) to completion; step\(foreign.count > 1 ? "s" : "") "
            + "\(names) (another actor's) run between those calls, and neither before nor after the accept do they reach the same state: "
            + "the interleaving inside one accept_memory() is the counterexample, and the host language cannot express it"
    }

    /// The index of the first step the host language cannot express in
    /// `trace`: the first accept with foreign steps inside it or still
    /// unfinished at the end, or the first host split on the host's own.
    func firstUnexpressed(_ trace: [Action], _ s0: State) -> Int {
        let states = statesAlong(trace, from: s0)
        var i = 0
        while i < trace.count {
            if let ep = episode(startingAt: i, in: trace, states: states) {
                if ep.members.count != ep.last - ep.first + 1 || !endsAccept(ep.vcpu, states[ep.last + 1])
                    || ep.members.contains(where: { trace[$0].kind == .refuseAUG }) { return i }
                i = ep.last + 1
                continue
            }
            if trace[i].kind == .block { return i }
            i += 1
        }
        return trace.count
    }

    /// The host commands of `trace`, up to `stopAt` (the rest as comments).
    func render(_ trace: [Action], order: [Int], stopAt: Int?, notes: [String], reordered: String?) -> HostTranslation {
        let s0 = initialStates[0]
        let states = statesAlong(trace, from: s0)
        var lines = [
            "td vcpus=\(config.vcpus) host=\(config.hostMapping == .map2M ? "tdx-huge" : "tdx") sept-ve-disable=on",
            "slot id=1 base=0 pages=\(config.ranges * 512)",
            "finalize",
        ]
        var notes = notes
        var i = 0
        let end = min(stopAt ?? trace.count, trace.count)
        func base(_ r: Int) -> String { "0x" + String(r * 512, radix: 16) + "+512" }
        while i < end {
            let a = trace[i], s = states[i], step = describe(a, in: s)
            let v = Int(a.index)
            switch a.kind {
            case .vcpu where isAcceptCall(v, s):
                guard let ep = episode(startingAt: i, in: trace, states: states), ep.members.count == ep.last - ep.first + 1 else {
                    i = end
                    continue
                }
                let calls = (ep.first...ep.last).map { k -> String in
                    let d = describe(trace[k], in: states[k])
                    return "\(order[k] + 1). \(d.actor) \(d.call) → \(d.result)"
                }
                lines.append("accept \(base(ep.range)) \(config.alreadyAccepted == .linux ? "linux" : "2m") vcpu=\(v)    # vcpu\(v): accept_memory() of range \(ep.range): " + calls.joined(separator: "; "))
                i = ep.last + 1
                continue
            case .vcpu where s.pc(v) & 1 == 1:
                lines.append("access \(base(s.pc(v) >> 1)) vcpu=\(v)    # vcpu\(v): \(order[i] + 1). \(step.call) → \(step.result)")
            case .vcpu:
                lines.append("# vcpu\(v): \(order[i] + 1). \(step.call) → \(step.result) (guest-internal: no call leaves the guest)")
            case .convertShared:
                lines.append("attributes \(base(v)) shared    # vmm: \(order[i] + 1). \(step.call)")
            case .convertPrivate:
                lines.append("attributes \(base(v)) private    # vmm: \(order[i] + 1). \(step.call)")
            case .zap:
                lines.append("punch \(base(v))    # host: \(order[i] + 1). \(step.call)")
            case .block, .track, .demote:
                notes.append("step \(order[i] + 1) (\(step.call)): a split the host starts on its own; no host command only splits a mapping "
                             + "(a split happens inside a conversion, a punch or a 4K accept, each of which also changes the memory)")
                i = end
                continue
            case .eptViolation, .refuseAUG:
                // Inside an accept (handled above): a lone one means the
                // accept around it was cut.
                break
            }
            i += 1
        }
        if end < trace.count {
            lines.append("# NOT REPLAYED (no counterpart in the host command language, see above): the remaining abstract steps")
            for k in end..<trace.count {
                let d = describe(trace[k], in: states[k])
                lines.append("#   \(order[k] + 1). \(d.actor) \(d.call) → \(d.result)")
            }
        }
        var seen = Set<String>()
        return HostTranslation(commands: lines.joined(separator: "\n") + "\n", notExpressible: notes.filter { seen.insert($0).inserted }, reordered: reordered)
    }
}

extension AcceptanceCore {
    /// A counterexample as a scenario file (`cocomem run FILE`): the host
    /// translation (`hostScenario`) in a `host` step with the invariants
    /// checked and the operation log on (where the guest's failed accept
    /// shows: "guest: TDX: Failed to accept memory"), under comments that say what the abstract trace was, which
    /// steps were regrouped or have no counterpart, and what the replay on
    /// the real layers shows (`CounterexampleReplay`, run here).
    /// - Complexity: as `hostScenario`, plus the replay (O(n²) host commands).
    public func scenarioFile(_ actions: [Action], violation v: Violation, checkFile: String) -> String {
        var t = hostScenario(actions)
        var head = [
            "# cocomem scenario: the shortest counterexample `cocomem check \(checkFile)` found (docs/CHECKER.md)",
            "# \(v.invariant): \(v.detail)",
            "# The model is acceptance-core, an abstraction (\(config.vcpus) vCPUs, \(config.ranges) ranges of \(config.pagesPerRange) pages standing for 512);",
            "# its \(actions.count)-step trace is written in the host command language (AcceptanceCore.hostScenario, docs/CHECKER.md);",
            "# each command's comment gives the abstract steps it stands for, numbered as in the trace it translates.",
        ]
        if !t.complete {
            head.append("# That trace has steps with no real counterpart:")
            for n in t.notExpressible { head.append("#   - \(n)") }
            if let other = shortestExpressible(v.invariant) {
                let u = hostScenario(other)
                if u.complete {
                    head.append("# Below instead: the shortest trace at the host language's granularity (AcceptanceCore.HostGranularity: each accept_memory()")
                    head.append("# runs its ACCEPT calls to completion, the host splits nothing on its own), \(other.count) abstract steps, the same invariant.")
                    t = u
                }
            } else {
                head.append("# No trace at the host language's granularity breaks it (AcceptanceCore.HostGranularity): the interleaving is the finding.")
            }
        }
        if let r = t.reordered { head.append("# Regrouped so each accept_memory()'s ACCEPT calls are one `accept`: \(r).") }
        if t.complete {
            let seen = (try? CounterexampleReplay.invariants(hostCommands: t.commands)) ?? []
            head.append(seen.contains(v.invariant)
                        ? "# Every step below has a real counterpart; replayed on the real layers, it breaks \(v.invariant) too."
                        : "# Every step below has a real counterpart, but replayed on the real layers it does NOT break \(v.invariant) (it breaks: "
                            + "\(seen.isEmpty ? "nothing" : seen.joined(separator: ", "))): the abstraction and the layers disagree here.")
        } else {
            head.append("# So this file replays only the steps before them and does NOT reach the violation.")
        }
        let body = t.commands.split(separator: "\n", omittingEmptySubsequences: false).map { $0.isEmpty ? "" : "        " + $0 }.joined(separator: "\n")
        return head.joined(separator: "\n") + "\nboot: false\nsteps:\n  - host:\n      commands: |\n" + body + "      log: true\n      check-invariants: true\n"
    }
}

extension AcceptanceCore {
    /// The acceptance core at the host command language's granularity: a
    /// vCPU's `accept_memory()` of a range runs all its ACCEPT calls, with
    /// KVM's handling of their EPT violations and the splits a 4K ACCEPT
    /// demands, as one step (a host `accept` command runs to completion);
    /// the host splits nothing on its own (no host command only splits).
    /// Every trace of it has a real counterpart, so its shortest
    /// counterexample is the shortest one `cocomem run` can replay when
    /// the abstraction's shortest interleaves inside an accept.
    public struct HostGranularity: TransitionSystem, Sendable {
        public typealias State = AcceptanceCore.State
        public typealias Action = AcceptanceCore.Action
        public let core: AcceptanceCore

        public init(_ core: AcceptanceCore) { self.core = core }

        public var initialStates: [State] { core.initialStates }

        public func actions(in s: State) -> [Action] {
            core.actions(in: s).filter { a in
                switch a.kind {
                case .vcpu: return !core.isAcceptCall(Int(a.index), s) || expand(a, in: s) != nil
                case .convertShared, .convertPrivate, .zap: return true
                // Inside an accept only (expand), never on their own; a
                // refusal of one fault has no host command (refuse-aug
                // refuses every later fault on the range).
                case .eptViolation, .block, .track, .demote, .refuseAUG: return false
                }
            }
        }

        public func apply(_ a: Action, to s: State) -> State {
            var t = s
            for b in expand(a, in: s) ?? [a] { t = core.apply(b, to: t) }
            return t
        }

        public func violations(in s: State) -> [Violation] { core.violations(in: s) }
        public func actor(of a: Action) -> ActorID { core.actor(of: a) }

        /// The abstract steps one coarse step stands for: a vCPU's accept
        /// with the host steps that serve it, to its end; nil when it cannot
        /// complete by itself (a fault only a VMM conversion or a split the
        /// host started would answer). Any other action is itself.
        /// - Complexity: O(ACCEPT calls of the accept), at most a few dozen.
        public func expand(_ a: Action, in s: State) -> [Action]? {
            guard a.kind == .vcpu, core.isAcceptCall(Int(a.index), s) else { return [a] }
            let v = Int(a.index), r = s.pc(v) >> 1
            var t = core.apply(a, to: s)
            var out = [a]
            var guardSteps = 64 * (core.config.pagesPerRange + 1)
            while !core.endsAccept(v, t) {
                guardSteps -= 1
                guard guardSteps > 0 else { return nil }
                let enabled = core.actions(in: t)
                let next: Action
                if t.waiting(v) {
                    if enabled.contains(Action(.eptViolation, v)) { next = Action(.eptViolation, v) }
                    else if let split = enabled.first(where: { [.block, .track, .demote].contains($0.kind) && Int($0.index) == r }) { next = split }
                    else { return nil }
                } else {
                    guard enabled.contains(Action(.vcpu, v)) else { return nil }
                    next = Action(.vcpu, v)
                }
                out.append(next)
                t = core.apply(next, to: t)
            }
            return out
        }
    }

    /// The shortest counterexample for `invariant` at the host language's
    /// granularity, as abstract steps (nil if none within `maxStates`).
    /// - Complexity: a breadth-first search of `HostGranularity`.
    public func shortestExpressible(_ invariant: String, maxStates: Int = 2_000_000) -> [Action]? {
        let g = HostGranularity(self)
        let r = Explorer(g, bounds: .init(maxStates: maxStates)).run()
        guard let c = r.counterexamples.first(where: { $0.violation.invariant == invariant }) else { return nil }
        var s = c.initial
        var out: [Action] = []
        for a in c.actions {
            out += g.expand(a, in: s) ?? [a]
            s = g.apply(a, to: s)
        }
        return out
    }
}
