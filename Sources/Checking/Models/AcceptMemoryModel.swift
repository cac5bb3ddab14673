import CoCoGuest
import CostModel
import Firmware
public import GuestKernel
import KVM
import MemoryModel
import Simulation
import TDXModule

/// `model: accept-memory`: 1–3 guest vCPUs of a TDX guest, each running a
/// short program on the real layers: `accept_memory(start, size)` of its
/// range (the kernel's step machine, `UnacceptedMemory.step`, over a real
/// unaccepted table) and then a touch of the range's first page. The steps
/// interleave where the kernel's do: at each change of
/// `unaccepted_memory_lock` (the list check, each `arch_accept_memory()`,
/// each bitmap clear); `arch_accept_memory()` is Linux's
/// `tdx_accept_memory()` (`TDXAcceptor`) against the KVM/TDX host model, which
/// faults the memory in (TDH.MEM.PAGE.AUG) on the ACCEPTs' EPT violations.
///
/// Checked after every step: `guest.accepting-list-exclusive` (no two calls
/// work on overlapping units at once), `guest.accept-succeeds` (a second
/// ACCEPT of accepted memory gets TDX_PAGE_ALREADY_ACCEPTED at every level
/// and Linux panics), `guest.never-touch-unaccepted` (a touch of a PENDING
/// page kills a SEPT_VE_DISABLE TD), `guest.unaccepted-table-agrees` (a clear
/// bit is accepted memory), and the host's registered invariants.
///
/// The kernel release decides the locking (`AcceptMemoryLocking`:
/// 50e782a86c98's list from 6.6 and 6.5.9, the lock held across the accept
/// before); `PlantedAcceptFault` plants a bug. States are `ReplayedState`s:
/// the path replayed from a freshly built TD.
public struct AcceptMemoryModel: TransitionSystem {
    public typealias State = ReplayedState
    public typealias Action = ModelStep

    public struct Config: Sendable, Hashable {
        /// The guest kernel's release (`KernelVersion(parsing:)`).
        public var kernel: String
        public var plantedFault: PlantedAcceptFault?
        /// Guest vCPUs, each with one program (1–3).
        public var vcpus: Int
        /// Bytes each `accept_memory()` asks for (a multiple of 4 KiB): 4 MiB
        /// is the page allocator's MAX_ORDER block.
        public var size: UInt64
        /// vCPU i's range starts at i × stride (0: every vCPU asks for the same range).
        public var stride: UInt64
        /// `tdx` (4K private mappings) or `tdx-huge` (2M).
        public var host: String

        public init(kernel: String = "7.0", plantedFault: PlantedAcceptFault? = nil, vcpus: Int = 2,
                    size: UInt64 = 4 << 20, stride: UInt64? = nil, host: String = "tdx-huge") {
            self.kernel = kernel
            self.plantedFault = plantedFault
            self.vcpus = vcpus
            self.size = size
            self.stride = stride ?? size
            self.host = host
        }

        /// vCPU i's `accept_memory()` start.
        func start(_ i: Int) -> UInt64 { UInt64(i) * stride }
        /// RAM: every program's range and the guard unit after the last.
        var memoryBytes: UInt64 {
            let end = (0..<vcpus).map { start($0) + size }.max() ?? size
            return (end + 2 * unit - 1) / unit * unit
        }
        var unit: UInt64 { UnacceptedTable.defaultUnitSize }
    }

    public let config: Config
    let locking: AcceptMemoryLocking
    let calibration: Calibration

    public init(_ config: Config) throws {
        guard (1...3).contains(config.vcpus) else { throw CocomemError(.invalidScenario, "accept-memory: vcpus must be 1...3") }
        guard config.size > 0, config.size % 4096 == 0, config.size <= 16 << 20 else {
            throw CocomemError(.invalidScenario, "accept-memory: size must be a multiple of 4K up to 16M")
        }
        guard config.stride % 4096 == 0, config.stride <= 16 << 20 else {
            throw CocomemError(.invalidScenario, "accept-memory: stride must be a multiple of 4K up to 16M")
        }
        guard ["tdx", "tdx-huge"].contains(config.host) else { throw CocomemError(.invalidScenario, "accept-memory: host must be tdx or tdx-huge") }
        self.config = config
        locking = try KernelVersion(parsing: config.kernel).acceptMemoryLocking
        calibration = try Calibration.builtIn()
    }

    /// The host language's `td`, `slot` and `finalize` lines.
    public var header: String {
        "td vcpus=\(config.vcpus) host=\(config.host) sept-ve-disable=on\n"
            + "slot id=1 base=0 pages=\(hex(config.memoryBytes / 4096))\nfinalize"
    }

    public var initialStates: [ReplayedState] {
        [(try? replay([]).state) ?? ReplayedState(path: [], fingerprint: [], violations: [], terminal: true, observed: "the TD did not build")]
    }

    public func actions(in state: ReplayedState) -> [ModelStep] {
        guard !state.terminal, let w = try? replay(state.path) else { return [] }
        return (0..<config.vcpus).compactMap { w.world.next(for: $0) }
    }

    public func apply(_ action: ModelStep, to state: ReplayedState) -> ReplayedState {
        (try? replay(state.path + [action]).state)
            ?? ReplayedState(path: state.path + [action], fingerprint: [], violations: [], terminal: true, observed: "the step did not run")
    }

    public func violations(in state: ReplayedState) -> [Violation] { state.violations }

    public func actor(of action: ModelStep) -> ActorID { action.actor }

    /// What a vCPU's program is doing.
    enum Program: Equatable {
        case notStarted
        case inCall(AcceptMemoryCall)
        case touch
        case finished
    }

    /// The TD, the kernel's unaccepted memory and the programs after a path.
    final class World {
        let model: AcceptMemoryModel
        let run: HostRun
        let memory: UnacceptedMemory
        var programs: [Program]
        var clock: PhaseClock
        var dead: String?

        init(_ m: AcceptMemoryModel) throws {
            model = m
            let s = try HostScenario.parse(m.header)
            run = try HostRun(s, calibration: m.calibration, log: false, record: false)
            for (i, c) in s.commands.enumerated() { try run.execute(c, line: i) }
            let units = m.config.memoryBytes / m.config.unit
            var table = UnacceptedTable(physBase: GuestPhysicalAddress(0), size: (units + 7) / 8,
                                        address: GuestPhysicalAddress(m.config.memoryBytes))
            table.bitmap.set(Range(start: .lowest, count: units))
            let acceptor = TDXAcceptor(host: run.vm, driver: .linux, costs: run.costs)
            memory = UnacceptedMemory(table: table, acceptor: acceptor, costs: run.costs)
            memory.locking = m.locking
            memory.plantedFault = m.config.plantedFault
            programs = Array(repeating: .notStarted, count: m.config.vcpus)
            clock = PhaseClock(vcpus: m.config.vcpus)
        }

        func rangeText(_ v: Int) -> String { "accept_memory(\(hex(model.config.start(v))), \(ByteCount(model.config.size)))" }
        func touchFrame(_ v: Int) -> GuestFrameNumber { GuestPhysicalAddress(model.config.start(v)).frame }
        func frames(_ r: Range<UnacceptedUnit>) -> String {
            let a = GuestPhysicalAddress(memory.table.address(of: r.lowerBound)).frame
            let b = GuestPhysicalAddress(memory.table.address(of: r.upperBound)).frame
            return "\(hex(a.value))+\(b.value - a.value)"
        }

        /// Whether calls go on `accepting_list` (50e782a86c98, no planted fault).
        var usesList: Bool { memory.plantedFault == nil && memory.locking == .acceptingList }

        /// What the first step of a call does in this kernel.
        var firstStep: String {
            switch (memory.plantedFault, memory.locking) {
            case (.noAcceptingList?, _): "spin_lock_irqsave(), first run of set units, spin_unlock() (planted: no accepting_list)"
            case (.claimByClearing?, _): "spin_lock_irqsave(), first run of set units, bitmap_clear() of it, spin_unlock() (planted: claim by clearing)"
            case (nil, .acceptingList): "spin_lock_irqsave(), walk accepting_list, list_add(), first run of set units, spin_unlock()"
            case (nil, .lockHeldAcrossAccept): "spin_lock_irqsave() (held across the accept: before 50e782a86c98), first run of set units"
            }
        }

        /// Whether vCPU v's next step would find the list (or the lock)
        /// taken by another call and leave everything as it was.
        func spins(_ v: Int) -> Bool {
            guard case .inCall(let c) = programs[v], c.phase == .retry, memory.plantedFault == nil else { return false }
            switch memory.locking {
            case .acceptingList: return memory.acceptingList.contains { $0.units.overlaps(c.window) }
            case .lockHeldAcrossAccept: return memory.lockHolder.map { $0 != v } ?? false
            }
        }

        /// vCPU v's next step, nil when it has none (finished, or spinning:
        /// a retry that meets the same entry changes nothing).
        func next(for v: Int) -> ModelStep? {
            guard dead == nil, !spins(v) else { return nil }
            switch programs[v] {
            case .notStarted:
                return ModelStep(.vcpu(v), "# vcpu\(v): \(rangeText(v)): lock\(usesList ? ", accepting_list" : "")", call: "\(rangeText(v)): " + firstStep)
            case .inCall(let c):
                switch c.phase {
                case .retry:
                    return ModelStep(.vcpu(v), "# vcpu\(v): \(rangeText(v)): retry", call: usesList ? "retry: spin_lock_irqsave(), walk accepting_list again" : "spin_lock_irqsave() again")
                case .accepting(let r):
                    return ModelStep(.vcpu(v), "accept \(frames(r)) linux vcpu=\(v)", call: "arch_accept_memory() of units \(r.lowerBound.value)..<\(r.upperBound.value): tdx_accept_memory(), the host AUGs on its EPT violations")
                case .clearing(let r):
                    return ModelStep(.vcpu(v), "# vcpu\(v): \(rangeText(v)): bitmap_clear", call: "spin_lock(), bitmap_clear() of units \(r.lowerBound.value)..<\(r.upperBound.value), next run or list_del()")
                case .done:
                    return nil
                }
            case .touch:
                return ModelStep(.vcpu(v), "access \(hex(touchFrame(v).value)) vcpu=\(v)", call: "touch: the first page of the range accept_memory() returned for")
            case .finished:
                return nil
            }
        }

        /// Runs vCPU v's next step; what it did, in one line.
        func perform(_ v: Int) throws -> String {
            switch programs[v] {
            case .notStarted:
                var c = memory.beginAcceptMemory(start: model.config.start(v), size: model.config.size, vcpu: v)
                if c.isDone { programs[v] = .touch; return "nothing in the table" }
                let r = memory.step(&c, clock: &clock)
                return finish(v, c, r)
            case .inCall(var c):
                let r = memory.step(&c, clock: &clock)
                return finish(v, c, r)
            case .touch:
                try run.execute(.access(touchFrame(v).only), line: 0, vcpu: v)
                programs[v] = .finished
                if let f = run.lastGuestFailure { dead = f; return f }
                return "ok"
            case .finished:
                return "finished"
            }
        }

        func finish(_ v: Int, _ c: AcceptMemoryCall, _ r: AcceptMemoryStep?) -> String {
            if case .done(let o) = c.phase {
                programs[v] = .touch
                if case .terminated(let why) = o { dead = why; programs[v] = .finished; return why }
            } else {
                programs[v] = .inCall(c)
            }
            switch r {
            case .spun: return "overlaps an accepting_list entry: unlock, retry"
            case .listed(let first):
                let run = "\(first.lowerBound.value)..<\(first.upperBound.value)"
                switch (memory.plantedFault, memory.locking) {
                case (.noAcceptingList?, _): return "no list: first run \(run), unlocked"
                case (.claimByClearing?, _): return "no list: run \(run) claimed (bits cleared), unlocked"
                case (nil, .acceptingList): return "on the list (units \(c.window.lowerBound.value)..<\(c.window.upperBound.value)), first run \(run), unlocked"
                case (nil, .lockHeldAcrossAccept): return "holding unaccepted_memory_lock, first run \(run)"
                }
            case .nothingToAccept: return "no set unit in \(c.window.lowerBound.value)..<\(c.window.upperBound.value): returned"
            case .accepted(_, let o): return o == .ok ? "accepted" : "\(o)"
            case .cleared(_, let next): return next.map { "cleared; next run \($0.lowerBound.value)..<\($0.upperBound.value)" } ?? (usesList ? "cleared; list_del(), returned" : "cleared; returned")
            case nil: return "returned"
            }
        }

        /// The model's invariants in this state.
        func violations(lastActor v: Int?, observed: String) -> [Violation] {
            var out: [Violation] = []
            let working = programs.enumerated().compactMap { i, p -> (Int, AcceptMemoryCall)? in
                if case .inCall(let c) = p, c.isWorking { return (i, c) } else { return nil }
            }
            for (x, a) in working.enumerated() {
                for (i, b) in working[(x + 1)...] where a.1.window.overlaps(b.window) {
                    out.append(Violation(invariant: InvariantRegistry.acceptingListExclusive.name,
                                         detail: "vcpu\(a.0) (units \(a.1.window.lowerBound.value)..<\(a.1.window.upperBound.value)) and vcpu\(i) (units \(b.window.lowerBound.value)..<\(b.window.upperBound.value)) work on overlapping units at once"))
                }
            }
            if let d = dead, let v {
                if d.contains("Failed to accept memory") {
                    out.append(Violation(invariant: InvariantRegistry.acceptSucceeds.name, detail: "vcpu\(v): \(d)"))
                } else if d.contains("Guest access before accepting") || d.contains("EPT-violation on private memory") {
                    out.append(Violation(invariant: InvariantRegistry.neverTouchUnaccepted.name, detail: "vcpu\(v): \(d)"))
                }
            }
            let ram = Range(start: UnacceptedUnit.lowest, count: model.config.memoryBytes / model.config.unit)
            var u = ram.lowerBound
            while u < ram.upperBound {
                if !memory.table.bitmap.test(u) {
                    let a = GuestPhysicalAddress(memory.table.address(of: u)).frame
                    if !run.vm.module.isAccessible(Range(start: a, count: model.config.unit / 4096)) {
                        out.append(Violation(invariant: InvariantRegistry.tableAgreesWithPlatform.name,
                                             detail: "unit \(u.value) is clear in the unaccepted bitmap but not accepted on the platform"))
                        break
                    }
                }
                u = u + 1
            }
            return out
        }

        /// Everything that decides the future: the host, the bitmap, the
        /// list or lock, each program's position.
        var fingerprint: [UInt64] {
            var w = HostFingerprint(run.vm).words
            w.append(0xACCE_0000_0000_0001)
            for r in memory.table.bitmap.setRuns(in: memory.table.allUnits) { w += [r.lowerBound.value, r.upperBound.value] }
            w.append(0xACCE_0000_0000_0002)
            for e in memory.acceptingList { w += [UInt64(e.vcpu), e.units.lowerBound.value, e.units.upperBound.value] }
            w.append(memory.lockHolder.map { UInt64($0) } ?? .max)
            for p in programs {
                switch p {
                case .notStarted: w.append(1)
                case .inCall(let c):
                    switch c.phase {
                    case .retry: w.append(2)
                    case .accepting(let r): w += [3, r.lowerBound.value, r.upperBound.value]
                    case .clearing(let r): w += [4, r.lowerBound.value, r.upperBound.value]
                    case .done: w.append(5)
                    }
                case .touch: w.append(6)
                case .finished: w.append(7)
                }
            }
            w.append(dead.map { stableHash($0) } ?? 0)
            return w
        }
    }

    /// Replays `path` on a fresh TD.
    /// - Complexity: O(path length) steps, each a call across a real layer.
    func replay(_ path: [ModelStep]) throws -> (state: ReplayedState, world: World) {
        let w = try World(self)
        var observed = ""
        var last: Int? = nil
        for step in path {
            guard case .vcpu(let v) = step.actor else { continue }
            observed = try w.perform(v)
            last = v
        }
        let top = w.run.vm.slots.map(\.frames.upperBound).max() ?? GuestFrameNumber(0)
        var host = HostInvariants(watching: .lowest..<(top + (PageLevel.size2M.pages - 1)).region2M)
        let v = w.violations(lastActor: last, observed: observed) + host.registered(after: w.run.vm)
        let done = w.programs.allSatisfy { $0 == .finished }
        let state = ReplayedState(path: path, fingerprint: w.fingerprint, violations: HostCommandModel.deduplicated(v),
                                  terminal: w.dead != nil || done, observed: observed)
        return (state, w)
    }

    /// A counterexample as a scenario file `cocomem run` replays: the
    /// `arch_accept_memory()` steps as `accept ... linux vcpu=N`, the touches
    /// as `access ... vcpu=N`, the kernel-internal steps (lock, list, bitmap)
    /// as comments. Invariants of the kernel's own state (the list's
    /// exclusion, the bitmap's agreement) have no host command: the file says
    /// it does NOT reach them and replays the calls up to them.
    public func scenarioFile(_ path: [ModelStep], violation v: Violation, checkFile: String) -> String {
        let kernelState = [InvariantRegistry.acceptingListExclusive.name, InvariantRegistry.tableAgreesWithPlatform.name].contains(v.invariant)
        var head = "# cocomem scenario: the shortest counterexample `cocomem check \(checkFile)` found (docs/CHECKER.md)\n"
            + "# \(v.invariant): \(v.detail)\n"
            + "# Kernel \(config.kernel) (\(locking.rawValue))\(config.plantedFault.map { ", planted fault \($0.rawValue)" } ?? ""): each vCPU's "
            + "arch_accept_memory() is one `accept ... linux vcpu=N`, its touch `access ... vcpu=N`; the lock, list and bitmap steps are comments.\n"
        if kernelState {
            head += "# \(v.invariant) is a property of the kernel's own state (accepting_list, the bitmap), which has no real counterpart in the host "
                + "command language: this replay does NOT reach the violation; it runs the platform calls of the trace.\n"
        }
        let body = (header + "\n" + path.map { s in
            s.command.hasPrefix("#") ? s.command + " (\(s.call))" : s.command + "    # \(s.actor): \(s.call)"
        }.joined(separator: "\n")).split(separator: "\n", omittingEmptySubsequences: false).map { "        " + $0 }.joined(separator: "\n")
        return head + """
        boot: false
        steps:
          - host:
              commands: |
        \(body)
              check-invariants: true

        """
    }
}
