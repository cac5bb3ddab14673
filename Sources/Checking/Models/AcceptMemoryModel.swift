import Foundation
import CoCoGuest
import CostModel
import Firmware
public import GuestKernel
public import KVM
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
public struct AcceptMemoryModel: TransitionSystem, Sendable {
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
        /// Each vCPU's own program (`ProgramOp`); nil: vCPU i accepts its
        /// range (`size`, `stride`) and touches its first page.
        public var programs: [[ProgramOp]]?
        /// The host's and the VMM's moves (host command lines), offered between any two steps.
        public var hostSteps: [ModelStep] = []
        /// At most this many host moves on a path.
        public var hostBudget: Int = 0
        /// Fault points an `inject` step may arm (`FaultPoint`).
        public var faultPoints: [FaultPoint] = []
        /// At most this many injected faults on a path.
        public var maxFaults: Int = 0
        /// The TD's conversion policy (seed 004), nil: the host's default.
        public var policy: ConversionPolicy?

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
        /// The programs the vCPUs run.
        var effectivePrograms: [[ProgramOp]] {
            programs ?? (0..<vcpus).map { i in
                let first = GuestPhysicalAddress(start(i)).frame
                return [.accept(Range(start: first, count: size / 4096)), .touch(first.only)]
            }
        }
        /// RAM: every range a program uses and the guard unit after the last.
        var memoryBytes: UInt64 {
            let end = effectivePrograms.joined().compactMap(\.end).map { $0.value * 4096 }.max() ?? size
            return (end + 2 * unit - 1) / unit * unit
        }
        var unit: UInt64 { UnacceptedTable.defaultUnitSize }
    }

    public let config: Config
    let locking: AcceptMemoryLocking
    let calibration: Calibration
    let acceptsKexecDestinations: Bool
    let programs: [[ProgramOp]]
    /// The renamings of vCPUs that map every vCPU onto one with the same
    /// program, the identity left out (empty: no symmetry).
    let symmetries: [[Int]]
    /// The last successors computed: the partial-order reduction's
    /// commutation check asks again for successors the search has just
    /// made, and a replay is the whole cost of a step.
    let recent = RecentReplays()

    public init(_ config: Config) throws {
        guard (1...3).contains(config.vcpus) else { throw CocomemError(.invalidScenario, "accept-memory: vcpus must be 1...3") }
        guard config.size > 0, config.size % 4096 == 0, config.size <= 16 << 20 else {
            throw CocomemError(.invalidScenario, "accept-memory: size must be a multiple of 4K up to 16M")
        }
        guard config.stride % 4096 == 0, config.stride <= 16 << 20 else {
            throw CocomemError(.invalidScenario, "accept-memory: stride must be a multiple of 4K up to 16M")
        }
        guard ["tdx", "tdx-huge"].contains(config.host) else { throw CocomemError(.invalidScenario, "accept-memory: host must be tdx or tdx-huge") }
        if let p = config.programs {
            guard (1...3).contains(p.count), p.allSatisfy({ !$0.isEmpty }) else {
                throw CocomemError(.invalidScenario, "accept-memory: 1...3 programs (vcpu0, vcpu1, vcpu2), none empty")
            }
        }
        guard (0...8).contains(config.hostBudget), (0...4).contains(config.maxFaults) else {
            throw CocomemError(.invalidScenario, "accept-memory: host-budget must be 0...8 and faults 0...4")
        }
        self.config = config
        let version = try KernelVersion(parsing: config.kernel)
        locking = version.acceptMemoryLocking
        acceptsKexecDestinations = version.acceptsKexecDestinations
        calibration = try Calibration.builtIn()
        programs = config.effectivePrograms
        let ops = programs
        symmetries = Self.permutations(ops.count).filter { p in
            p != Array(p.indices) && p.indices.allSatisfy { ops[p[$0]] == ops[$0] }
        }
        guard config.memoryBytes <= 64 << 20 else { throw CocomemError(.invalidScenario, "accept-memory: the programs' ranges must lie below 62 MiB") }
        let frames = config.memoryBytes / 4096
        for step in config.hostSteps {
            let s = try HostScenario.parse(header + "\n" + step.command)
            let r: Range<GuestFrameNumber>?
            switch s.commands.last {
            case .punch(let x)?, .attributes(let x, _)?, .adversary(_, let x)?, .hostUse(_, let x)?: r = x
            default: r = nil
            }
            if let r, r.upperBound.value > frames {
                throw CocomemError(.invalidScenario, "accept-memory: host step '\(step.command)' reaches past the TD's memory (\(hex(frames)) frames: the programs' ranges and a guard unit)")
            }
        }
    }

    /// The host language's `td`, `slot` and `finalize` lines.
    public var header: String {
        "td vcpus=\(programs.count) host=\(config.host) sept-ve-disable=on\(config.policy.map { " policy=\($0.rawValue)" } ?? "")\n"
            + "slot id=1 base=0 pages=\(hex(config.memoryBytes / 4096))\nfinalize"
    }

    /// The `inject` steps (the system's: a fault is nobody's call).
    var faultSteps: [ModelStep] {
        config.faultPoints.map { ModelStep(.system, "inject \($0.rawValue)", call: "fault: the next \($0.rawValue) fails") }
    }

    public var initialStates: [ReplayedState] {
        [(try? replay([]).state) ?? ReplayedState(path: [], fingerprint: [], violations: [], terminal: true, observed: "the TD did not build")]
    }

    public func actions(in state: ReplayedState) -> [ModelStep] {
        guard !state.terminal else { return [] }
        if let e = state.enabled { return e }
        guard let w = try? replay(state.path) else { return [] }
        return enabled(w.world)
    }

    /// The steps enabled in `w`: each vCPU's next, the host's moves while
    /// its budget lasts, the faults while theirs does.
    func enabled(_ w: World) -> [ModelStep] {
        var out = (0..<programs.count).compactMap { w.next(for: $0) }
        if w.hostMoves < config.hostBudget { out += config.hostSteps }
        if w.faults < config.maxFaults { out += faultSteps }
        return out
    }

    public func apply(_ action: ModelStep, to state: ReplayedState) -> ReplayedState {
        let path = state.path + [action]
        if let s = recent.state(after: path) { return s }
        let s = (try? replay(path).state)
            ?? ReplayedState(path: path, fingerprint: [], violations: [], terminal: true, observed: "the step did not run")
        recent.keep(s)
        return s
    }

    public func violations(in state: ReplayedState) -> [Violation] { state.violations }

    public func actor(of action: ModelStep) -> ActorID { action.actor }

    /// What a vCPU's program is doing inside its current operation.
    enum Phase: Equatable {
        /// About to start operation `pc`.
        case ready
        /// Inside `accept_memory()` (for an `accept`, or a `kexec-load`'s
        /// `sanity_check_segment_list()`).
        case inCall(AcceptMemoryCall)
        /// A `convert ... private`'s MapGPA done; next: `tdx_accept_memory()`.
        case acceptAfterConvert
    }

    /// One vCPU: the operation it is at and where inside it.
    struct Program: Equatable {
        var pc = 0
        var phase = Phase.ready
    }

    /// The TD, the kernel's unaccepted memory and the programs after a path.
    final class World {
        let model: AcceptMemoryModel
        let run: HostRun
        let memory: UnacceptedMemory
        var programs: [Program]
        var clock: PhaseClock
        var dead: String?
        /// The loaded kexec image's destination, if any.
        var kexecImage: Range<GuestFrameNumber>?
        /// `machine_kexec()` ran: the TD is in the next kernel.
        var rebooted = false
        var hostMoves = 0
        var faults = 0
        /// What the last step broke that only that step can tell (a kexec
        /// destination not accepted at relocation).
        var stepViolations: [Violation] = []
        /// The frames the last step asked the platform to accept.
        var lastAccept: Range<GuestFrameNumber>?
        /// Ranges the guest itself made shared (set_memory_decrypted()):
        /// accepted in the bitmap, not private on the platform, by design.
        var guestShared: [Range<GuestFrameNumber>] = []

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
            programs = Array(repeating: Program(), count: m.programs.count)
            clock = PhaseClock(vcpus: m.programs.count)
        }

        func op(_ v: Int) -> ProgramOp? { programs[v].pc < model.programs[v].count ? model.programs[v][programs[v].pc] : nil }
        func callText(_ r: Range<GuestFrameNumber>) -> String { "accept_memory(\(hex(r.lowerBound.address.value)), \(ByteCount(r.length * 4096)))" }
        func rangeText(_ v: Int) -> String {
            switch op(v) {
            case .accept(let r)?: callText(r)
            case .kexecLoad(let r)?: "sanity_check_segment_list(): " + callText(r)
            default: "accept_memory()"
            }
        }
        func frames(_ r: Range<UnacceptedUnit>) -> String {
            let a = GuestPhysicalAddress(memory.table.address(of: r.lowerBound)).frame
            let b = GuestPhysicalAddress(memory.table.address(of: r.upperBound)).frame
            return "\(hex(a.value))+\(b.value - a.value)"
        }
        var finished: Bool { programs.indices.allSatisfy { op($0) == nil } }

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
            guard case .inCall(let c) = programs[v].phase, c.phase == .retry, memory.plantedFault == nil else { return false }
            switch memory.locking {
            case .acceptingList: return memory.acceptingList.contains { $0.units.overlaps(c.window) }
            case .lockHeldAcrossAccept: return memory.lockHolder.map { $0 != v } ?? false
            }
        }

        /// Whether another vCPU than v is inside `accept_memory()` with
        /// interrupts off (from its `spin_lock_irqsave()` to the last
        /// `spin_unlock_irqrestore()`; "Keep interrupts disabled until the
        /// accept operation is complete"): `stop_other_cpus()`'s
        /// REBOOT_VECTOR IPI waits for it. (The NMI `native_stop_other_cpus()`
        /// sends after a second is not modelled: these accepts take milliseconds.)
        func anotherInsideAccept(_ v: Int) -> Bool {
            programs.indices.contains { i in
                guard i != v, case .inCall(let c) = programs[i].phase else { return false }
                return c.isWorking || (memory.locking == .lockHeldAcrossAccept && memory.lockHolder == i)
            }
        }

        /// The 2 MiB regions of frames `r`.
        func regions(_ r: Range<GuestFrameNumber>) -> Range<UInt64> {
            let per = PageLevel.size2M.pages
            return r.lowerBound.value / per ..< (r.upperBound.value + per - 1) / per
        }
        /// The 2 MiB regions of table units `u`.
        func regions(_ u: Range<UnacceptedUnit>) -> Range<UInt64> {
            let b = PageLevel.size2M.bytes
            return memory.table.address(of: u.lowerBound) / b ..< (memory.table.address(of: u.upperBound) + b - 1) / b
        }
        /// The regions `accept_memory()` of `r` may look at before its
        /// window is known: its units and the guard unit after them.
        func callRegions(_ r: Range<GuestFrameNumber>) -> Range<UInt64> {
            let t = memory.table
            let lo = t.unit(containing: r.lowerBound.address.value), hi = t.unit(roundingUp: r.upperBound.address.value) + 1
            return regions(lo ..< hi)
        }

        /// vCPU v's next step, nil when it has none (finished, spinning: a
        /// retry that meets the same entry changes nothing, or waiting to
        /// stop the others).
        func next(for v: Int) -> ModelStep? {
            guard dead == nil, !rebooted, !spins(v), let o = op(v) else { return nil }
            switch programs[v].phase {
            case .inCall(let c):
                switch c.phase {
                case .retry:
                    return ModelStep(.vcpu(v), "# vcpu\(v): \(rangeText(v)): retry", call: usesList ? "retry: spin_lock_irqsave(), walk accepting_list again" : "spin_lock_irqsave() again",
                                     regions: regions(c.window))
                case .accepting(let r):
                    return ModelStep(.vcpu(v), "accept \(frames(r)) linux vcpu=\(v)", call: "arch_accept_memory() of units \(r.lowerBound.value)..<\(r.upperBound.value): tdx_accept_memory(), the host AUGs on its EPT violations",
                                     regions: regions(r))
                case .clearing(let r):
                    return ModelStep(.vcpu(v), "# vcpu\(v): \(rangeText(v)): bitmap_clear", call: "spin_lock(), bitmap_clear() of units \(r.lowerBound.value)..<\(r.upperBound.value), next run or list_del()",
                                     regions: regions(c.window))
                case .done:
                    return nil
                }
            case .acceptAfterConvert:
                guard case .convert(let r, _) = o else { return nil }
                return ModelStep(.vcpu(v), "accept \(ProgramOp.text(r)) linux vcpu=\(v)", call: "set_memory_encrypted(): tdx_accept_memory() of the range MapGPA made private",
                                 regions: regions(r))
            case .ready:
                switch o {
                case .accept(let r):
                    return ModelStep(.vcpu(v), "# vcpu\(v): \(rangeText(v)): lock\(usesList ? ", accepting_list" : "")", call: "\(rangeText(v)): " + firstStep,
                                     regions: callRegions(r))
                case .acceptAt(let r, let l):
                    return ModelStep(.vcpu(v), "accept \(ProgramOp.text(r)) \(l == .size2M ? "2m" : "4k") vcpu=\(v)",
                                     call: "TdAcceptPages() at \(l == .size2M ? "2M" : "4K") (edk2's fixed AcceptPageSize, not the kernel's bitmap)",
                                     regions: regions(r))
                case .touch(let r):
                    let call = model.config.programs == nil ? "touch: the first page of the range accept_memory() returned for" : "touch: a load/store of every page"
                    return ModelStep(.vcpu(v), "access \(ProgramOp.text(r)) vcpu=\(v)", call: call, regions: regions(r))
                case .convert(let r, let p):
                    return ModelStep(.vcpu(v), "convert \(ProgramOp.text(r)) \(p ? "private" : "shared")",
                                     call: "set_memory_\(p ? "encrypted" : "decrypted")(): TDG.VP.VMCALL<MapGPA>; the VMM converts under the TD's policy")
                case .kexecLoad(let r):
                    if model.acceptsKexecDestinations {
                        return ModelStep(.vcpu(v), "# vcpu\(v): \(rangeText(v)): lock\(usesList ? ", accepting_list" : "")", call: "kexec_file_load(): \(rangeText(v)): " + firstStep)
                    }
                    return ModelStep(.vcpu(v), "# vcpu\(v): kexec_file_load(): segment at \(ProgramOp.text(r))",
                                     call: "kexec_file_load(): the segment placed, its destination not accepted (before 6.15)")
                case .reboot:
                    guard !anotherInsideAccept(v) else { return nil }
                    guard let r = kexecImage else {
                        return ModelStep(.vcpu(v), "# vcpu\(v): kexec -e: no image", call: "reboot(LINUX_REBOOT_CMD_KEXEC): no image loaded, -EINVAL")
                    }
                    return ModelStep(.vcpu(v), "access \(ProgramOp.text(r)) vcpu=\(v)",
                                     call: "kernel_kexec(): stop_other_cpus(), machine_kexec(): relocate_kernel copies the segment to its destination")
                }
            }
        }

        /// Runs vCPU v's next step; what it did, in one line.
        func perform(_ v: Int) throws -> String {
            guard let o = op(v) else { return "finished" }
            switch programs[v].phase {
            case .inCall(var c):
                if case .accepting(let u) = c.phase {
                    lastAccept = GuestPhysicalAddress(memory.table.address(of: u.lowerBound)).frame ..< GuestPhysicalAddress(memory.table.address(of: u.upperBound)).frame
                }
                let r = memory.step(&c, clock: &clock)
                return finish(v, c, r)
            case .acceptAfterConvert:
                guard case .convert(let r, _) = o else { return "?" }
                lastAccept = r
                try run.execute(.accept(r, nil), line: 0, vcpu: v)
                advance(v)
                if let f = run.lastGuestFailure { dead = f; return f }
                return "accepted"
            case .ready:
                switch o {
                case .accept(let r):
                    return begin(v, r)
                case .kexecLoad(let r):
                    kexecImage = r
                    if model.acceptsKexecDestinations { return begin(v, r) }
                    advance(v)
                    return "loaded; destination not accepted"
                case .acceptAt(let r, let l):
                    lastAccept = r
                    try run.execute(.accept(r, l), line: 0, vcpu: v)
                    advance(v)
                    if let f = run.lastGuestFailure { dead = f; return f }
                    return "accepted"
                case .touch(let r):
                    try run.execute(.access(r), line: 0, vcpu: v)
                    advance(v)
                    if let f = run.lastGuestFailure { dead = f; return f }
                    return "ok"
                case .convert(let r, let p):
                    // The host language's `convert` (HostRun runs the same
                    // call); its outcome is MapGPA's return to the guest.
                    let o = run.vm.convert(r, toPrivate: p)
                    if run.vm.isDead { return "\(run.vm.outcome)" }
                    guard o == .ok else {
                        // tdx_map_gpa() fails, so does set_memory_*crypted(): its
                        // callers leak the page and go no further with it.
                        programs[v].pc = model.programs[v].count
                        return "MapGPA failed (\(o)): set_memory_\(p ? "encrypted" : "decrypted")() fails, the page is leaked, the program stops"
                    }
                    guestShared.removeAll { $0 == r }
                    if p { programs[v].phase = .acceptAfterConvert } else { guestShared.append(r); advance(v) }
                    return "converted"
                case .reboot:
                    advance(v)
                    guard let r = kexecImage else { return "no image: -EINVAL" }
                    rebooted = true
                    if let u = firstUnaccepted(r) {
                        stepViolations.append(Violation(invariant: InvariantRegistry.kexecDestinationsAccepted.name,
                                                        detail: "destination \(ProgramOp.text(r)): unit \(u.value) is still set in the unaccepted bitmap when relocate_kernel copies into it"))
                    }
                    try run.execute(.access(r), line: 0, vcpu: v)
                    if let f = run.lastGuestFailure { dead = f; return f }
                    return "relocation completed"
                }
            }
        }

        func begin(_ v: Int, _ r: Range<GuestFrameNumber>) -> String {
            var c = memory.beginAcceptMemory(start: r.lowerBound.address.value, size: r.length * 4096, vcpu: v)
            if c.isDone { advance(v); return "nothing in the table" }
            let s = memory.step(&c, clock: &clock)
            return finish(v, c, s)
        }

        func advance(_ v: Int) { programs[v].pc += 1; programs[v].phase = .ready }

        /// The first unit of `r` the bitmap still marks unaccepted.
        func firstUnaccepted(_ r: Range<GuestFrameNumber>) -> UnacceptedUnit? {
            let t = memory.table
            let lo = t.unit(containing: r.lowerBound.address.value), hi = t.unit(roundingUp: r.upperBound.address.value)
            var u = lo
            while u < hi { if t.bitmap.test(u) { return u }; u = u + 1 }
            return nil
        }

        func finish(_ v: Int, _ c: AcceptMemoryCall, _ r: AcceptMemoryStep?) -> String {
            if case .done(let o) = c.phase {
                advance(v)
                if case .terminated(let why) = o { dead = why; programs[v].pc = model.programs[v].count; return why }
            } else {
                programs[v].phase = .inCall(c)
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

        /// Runs a host move or an injected fault (a host command line).
        func performHost(_ step: ModelStep) throws -> String {
            let s = try HostScenario.parse(model.header + "\n" + step.command)
            guard let c = s.commands.last else { return "?" }
            if case .inject = c { faults += 1 } else { hostMoves += 1 }
            try run.execute(c, line: 0)
            return run.vm.isDead ? "\(run.vm.outcome)" : "done"
        }

        /// Whether frame g may be inaccessible to the guest's private
        /// accesses with its unit clear in the bitmap: the guest made it
        /// shared, or is between MapGPA(private) and its accept.
        func excused(_ g: GuestFrameNumber) -> Bool {
            if guestShared.contains(where: { $0.contains(g) }) { return true }
            return programs.indices.contains { v in
                guard programs[v].phase == .acceptAfterConvert, case .convert(let r, _)? = op(v) else { return false }
                return r.contains(g)
            }
        }

        /// The model's invariants in this state.
        func violations(lastActor v: Int?, observed: String) -> [Violation] {
            var out: [Violation] = stepViolations
            let working = programs.enumerated().compactMap { i, p -> (Int, AcceptMemoryCall)? in
                if case .inCall(let c) = p.phase, c.isWorking { return (i, c) } else { return nil }
            }
            for (x, a) in working.enumerated() {
                for (i, b) in working[(x + 1)...] where a.1.window.overlaps(b.window) {
                    out.append(Violation(invariant: InvariantRegistry.acceptingListExclusive.name,
                                         detail: "vcpu\(a.0) (units \(a.1.window.lowerBound.value)..<\(a.1.window.upperBound.value)) and vcpu\(i) (units \(b.window.lowerBound.value)..<\(b.window.upperBound.value)) work on overlapping units at once"))
                }
            }
            if let d = dead, let v {
                let acceptFailed = d.contains("Failed to accept memory") || d.contains("TdAcceptPages failed")
                if acceptFailed, let r = lastAccept, r.contains(where: { run.vm.faults.refusedAUG.value(at: $0) }) {
                    out.append(Violation(invariant: InvariantRegistry.acceptCompletes.name,
                                         detail: "vcpu\(v): the host never AUGs \(ProgramOp.text(r)); the vCPU faults again for ever (cut off: \(d))"))
                } else if acceptFailed {
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
                    let frames = Range(start: a, count: model.config.unit / 4096)
                    if !run.vm.module.isAccessible(frames), frames.contains(where: { !run.vm.module.isAccessible($0.only) && !excused($0) }) {
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
        /// list or lock, each program's position, the image, the budgets used.
        var fingerprint: [UInt64] { fingerprint(order: nil) }

        /// The fingerprint with the vCPUs renamed: position j describes
        /// vCPU `order[j]` (its program, its list entry, the lock if it
        /// holds it, its module state). Every per-vCPU part is renamed and
        /// nothing else, so two states that differ only by which of two
        /// identical vCPUs did what get equal fingerprints.
        func fingerprint(order: [Int]?) -> [UInt64] {
            let order = order ?? Array(programs.indices)
            var renamed = Array(order.indices)
            for (j, i) in order.enumerated() { renamed[i] = j }
            func name(_ v: Int) -> UInt64 { UInt64(renamed.indices.contains(v) ? renamed[v] : v) }
            var w = HostFingerprint(run.vm, vcpuOrder: order).words
            w.append(0xACCE_0000_0000_0001)
            for r in memory.table.bitmap.setRuns(in: memory.table.allUnits) { w += [r.lowerBound.value, r.upperBound.value] }
            w.append(0xACCE_0000_0000_0002)
            // The list's order is not observable (accept_memory() only tests
            // overlap and list_del()s its own entry): sorted, so two calls
            // listed in either order are one state.
            for e in memory.acceptingList.map({ [$0.units.lowerBound.value, $0.units.upperBound.value, name($0.vcpu)] })
                .sorted(by: { $0.lexicographicallyPrecedes($1) }) { w += e }
            w.append(memory.lockHolder.map { name($0) } ?? .max)
            for p in order.map({ programs[$0] }) {
                w.append(UInt64(p.pc))
                switch p.phase {
                case .ready: w.append(1)
                case .acceptAfterConvert: w.append(6)
                case .inCall(let c):
                    switch c.phase {
                    case .retry: w.append(2)
                    case .accepting(let r): w += [3, r.lowerBound.value, r.upperBound.value]
                    case .clearing(let r): w += [4, r.lowerBound.value, r.upperBound.value]
                    case .done: w.append(5)
                    }
                }
            }
            w += [kexecImage.map { $0.lowerBound.value } ?? .max, kexecImage.map { $0.upperBound.value } ?? .max,
                  rebooted ? 1 : 0, UInt64(hostMoves), UInt64(faults), 0xACCE_0000_0000_0003]
            for r in guestShared { w += [r.lowerBound.value, r.upperBound.value] }
            w.append(dead.map { stableHash($0) } ?? 0)
            return w
        }
    }

    /// Replays `path` on a fresh TD; every registered invariant is checked
    /// after every step, and the state carries the last step's findings.
    /// - Complexity: O(path length) steps, each a call across a real layer.
    func replay(_ path: [ModelStep]) throws -> (state: ReplayedState, world: World) {
        let w = try World(self)
        let top = w.run.vm.slots.map(\.frames.upperBound).max() ?? GuestFrameNumber(0)
        var host = HostInvariants(watching: .lowest..<(top + (PageLevel.size2M.pages - 1)).region2M)
        _ = host.registered(after: w.run.vm)
        var observed = ""
        var last: [Violation] = []
        for step in path {
            let brokenBefore = Set(w.run.vm.brokenOutcomes)
            let wasBugged = w.run.vm.isDead
            w.stepViolations = []
            w.lastAccept = nil
            var lastVCPU: Int? = nil
            if case .vcpu(let v) = step.actor {
                observed = try w.perform(v)
                lastVCPU = v
            } else {
                observed = try w.performHost(step)
            }
            var v = w.violations(lastActor: lastVCPU, observed: observed)
            for b in w.run.vm.brokenOutcomes where !brokenBefore.contains(b) && !b.hasPrefix("invariant: ") {
                v.append(InvariantRegistry.violation(host: b))
            }
            if !wasBugged, case .vmBugged(let why) = w.run.vm.outcome {
                v.append(Violation(invariant: InvariantRegistry.noBugOn.name, detail: why))
                _ = host.registered(after: w.run.vm)
            } else {
                v += host.registered(after: w.run.vm)
            }
            if w.run.vm.isDead, w.dead == nil { w.dead = "\(w.run.vm.outcome)" }
            last = v
        }
        let terminal = w.dead != nil || w.rebooted || w.finished
        let fingerprint = w.fingerprint
        let symmetric = symmetries.isEmpty ? nil : symmetries.map { w.fingerprint(order: $0) }.reduce(fingerprint) { $1.lexicographicallyPrecedes($0) ? $1 : $0 }
        let state = ReplayedState(path: path, fingerprint: fingerprint, violations: HostCommandModel.deduplicated(last),
                                  terminal: terminal, observed: observed, enabled: terminal ? [] : enabled(w),
                                  symmetricFingerprint: symmetric)
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
        let command = checkFile.hasSuffix(".yaml") || checkFile.hasSuffix(".yml") ? "cocomem check \(checkFile)" : "cocomem verdicts --only \(checkFile)"
        var head = "# cocomem scenario: the shortest counterexample `\(command)` found (docs/CHECKER.md)\n"
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

/// A small memo of replayed states by path (`AcceptMemoryModel.apply`):
/// forgotten all at once when full, so it holds about one state's
/// successors and their neighbours. Replay is deterministic, so a hit is the
/// state a replay would make.
final class RecentReplays: @unchecked Sendable {
    private let lock = NSLock()
    private var states: [[ModelStep]: ReplayedState] = [:]
    static let capacity = 256

    func state(after path: [ModelStep]) -> ReplayedState? {
        lock.lock()
        defer { lock.unlock() }
        return states[path]
    }

    func keep(_ s: ReplayedState) {
        lock.lock()
        defer { lock.unlock() }
        if states.count >= Self.capacity { states.removeAll(keepingCapacity: true) }
        states[s.path] = s
    }
}
