import CoCoGuest
public import CostModel
public import KVM
public import MemoryModel
import TDXModule

/// Runs a host scenario and reports.
public final class HostRun {
    public let scenario: HostScenario
    public let vm: TDXVM
    let linux: TDXAcceptor
    let edk4K: TDXAcceptor
    let edk2M: TDXAcceptor
    public let costs: CostTable
    public private(set) var clock: PhaseClock
    /// What the guest saw go wrong in the last command (an accept that
    /// failed, a fatal access), for the checker's guest-side invariants;
    /// nil when nothing did.
    package private(set) var lastGuestFailure: String?
    /// The first thing that failed the guest in the run (an accept the
    /// guest's driver gave up on, a fatal access, an access the host never
    /// completes); the run goes on, as the host must hold whatever follows,
    /// but the outcome is no longer `ok` (`outcomeString`).
    public private(set) var guestFailure: String?
    /// What each `hostread` command read (issue 18 §5), in order.
    public private(set) var hostReads: [(line: Int, frames: Range<GuestFrameNumber>, read: HostRead)] = []
    /// Records the host's committed memory, exits and accepts after each
    /// command (`record`); nil when not asked for.
    let recorder: Recorder?

    /// With `log`, the VM keeps its operation log; with `logSink` too, each
    /// line goes to the sink as it is produced and none is kept (`vm.log`
    /// is then empty), so a long run's log costs no memory. With
    /// `traceHost`, the VM keeps the host-visible trace (`vm.hostTrace`,
    /// `cocomem host --host-trace`), each command at its vCPU's time.
    public init(_ s: HostScenario, calibration: Calibration, log: Bool, logSink: ((String) -> Void)? = nil, record: Bool = true,
                traceHost: Bool = false) throws {
        guard s.platform == .tdx else {
            throw CocomemError(.invalidScenario, "a platform=snp host scenario runs with cocomem host (SNPHostRun), not on the TDX host")
        }
        scenario = s
        costs = CostTable(calibration)
        vm = try TDXVM(options: s.options, features: s.features, vcpus: s.vcpus, slots: s.slots, costs: costs)
        vm.logEnabled = log
        vm.operationLog.sink = logSink
        if traceHost { vm.hostTrace = HostTrace() }
        linux = TDXAcceptor(host: vm, driver: .linux, costs: costs)
        edk4K = TDXAcceptor(host: vm, driver: .edk2(pageSize: .size4K), costs: costs)
        edk2M = TDXAcceptor(host: vm, driver: .edk2(pageSize: .size2M), costs: costs)
        clock = PhaseClock(vcpus: s.vcpus)
        recorder = record ? Recorder(costs: costs, vcpus: s.vcpus) : nil
        recorder?.hostSlots = s.slots.map(\.frames)
        recorder?.isHostRun = true
        recorder?.start(vm: vm, snp: nil)
    }

    /// What the run recorded (issue 14): a phase per command (`line N:
    /// verb`), the series of host committed memory (private, shared),
    /// accept calls and exits after each command, and the snapshot
    /// `end of host run` (S-EPT mapping level, acceptance, shared, pinned
    /// per range of the memslots). Empty when the run does not record.
    /// - Complexity: O(commands + runs of the host's maps).
    public var record: RunRecord {
        guard let rec = recorder else { return RunRecord() }
        var r = rec.finish()
        r.snapshots = [MemorySnapshot(label: "end of host run", time: rec.segmentStart,
                                      ranges: rec.snapshotRanges(firmwareMap: nil, table: nil))]
        return r
    }

    /// Runs every command; a VM death stops the run.
    public func run() throws {
        for (i, c) in scenario.commands.enumerated() {
            if vm.isDead { break }
            try execute(c, line: i < scenario.lines.count ? scenario.lines[i] : 0, vcpu: scenario.vcpu(ofCommand: i))
        }
        settleTrace()
    }

    /// Settles the host trace's last guest accept call (seen if it exited),
    /// as the boot does after each of its calls. Idempotent.
    /// - Complexity: O(1).
    public func settleTrace() { vm.hostTrace?.endCall() }

    /// `vcpu`'s time in the run's clock, seconds.
    func vcpuSeconds(_ vcpu: Int) -> Double {
        Double(clock.vcpuPicoseconds.indices.contains(vcpu) ? clock.vcpuPicoseconds[vcpu] : 0) / 1e12
    }

    func requireSlot(_ r: Range<GuestFrameNumber>, line: Int) throws {
        guard let s = vm.slot(r.lowerBound), r.upperBound <= s.frames.upperBound else {
            throw CocomemError(.invalidScenario, "host scenario line \(line): frames \(r.lowerBound.address)+\(r.length) are not inside one memslot")
        }
    }

    /// Runs one command; a guest command (`accept`, `access`) runs on `vcpu`.
    public func execute(_ c: HostScenario.Command, line: Int, vcpu: Int = 0) throws {
        try perform(c, line: line, vcpu: vcpu)
        if let why = lastGuestFailure, guestFailure == nil { guestFailure = "line \(line): \(why)" }
        recorder?.hostStep("line \(line): \(c.verb)", clock)
    }

    func perform(_ c: HostScenario.Command, line: Int, vcpu: Int) throws {
        lastGuestFailure = nil
        // The exits a command makes start a new record at its vCPU's time;
        // a host command after a guest accept call ends that call.
        if vm.hostTrace != nil { vm.hostTrace!.beginCommand(vcpu: vcpu, now: vcpuSeconds(vcpu)) }
        switch c {
        case .accept, .access:
            // A halted vCPU runs no guest code until it is woken.
            guard !vm.isFinalized || vm.isInGuestMode(vcpu: vcpu) else {
                throw CocomemError(.invalidScenario, "host scenario line \(line): \(c.verb) on vcpu=\(vcpu), which is halted (wake vcpu=\(vcpu) first)")
            }
        default: break
        }
        switch c {
        case .build(let r):
            try requireSlot(r, line: line)
            _ = try vm.addInitialMemory(r)
        case .finalize: vm.finalize()
        case .accept(let r, let level):
            try requireSlot(r, line: line)
            let a = level == .size4K ? edk4K : level == .size2M ? edk2M : linux
            let o = a.accept(AddressRange(frames: r), vcpu: vcpu, clock: &clock)
            if case .terminated(let why) = o {
                lastGuestFailure = why
                if !vm.isDead { vm.note("guest: \(why)") }
            }
        case .access(let r):
            try requireSlot(r, line: line)
            for g in r where !vm.isDead { guestAccess(g, vcpu: vcpu) }
        case .convert(let r, let p):
            try requireSlot(r, line: line)
            let o = vm.convert(r, toPrivate: p)
            if o != .ok { vm.note("userspace: conversion failed: \(o)") }
        case .attributes(let r, let p):
            try requireSlot(r, line: line)
            _ = vm.setMemoryAttributes(r, private: p)
        case .punch(let r):
            try requireSlot(r, line: line)
            let o = vm.punchHole(r)
            if o != .ok { vm.note("userspace: punch hole failed: \(o)") }
        case .cycle(let r, let n):
            try requireSlot(r, line: line)
            for _ in 0..<n where !vm.isDead {
                // The conversions come after the last cycle's accept call, on vCPU 0's clock.
                if vm.hostTrace != nil { vm.hostTrace!.beginCommand(vcpu: 0, now: vcpuSeconds(0)) }
                guard vm.convert(r, toPrivate: false) == .ok else { break }
                guard vm.convert(r, toPrivate: true) == .ok else { break }
                _ = edk4K.accept(AddressRange(frames: r), vcpu: 0, clock: &clock)
            }
        case .inject(let p, let n): vm.faults.inject(p, times: n)
        case .check: vm.checkInvariants()
        case .adversary(let attack, let r):
            try requireSlot(r, line: line)
            let o: HostOutcome
            switch attack {
            case .remove: o = vm.hostRemove(r)
            case .readd: o = vm.hostReadd(r)
            case .remap: o = vm.hostRemap(r)
            case .refuseAUG: vm.hostRefuseAUG(r); o = .ok
            }
            if o != .ok { vm.note("adversary: \(attack.rawValue) failed: \(o)") }
        case .hostUse(let use, let r):
            try requireSlot(r, line: line)
            switch use {
            case .pin: _ = vm.hostPin(r)
            case .unpin: vm.hostUnpin(r)
            case .hostmap: _ = vm.hostMap(r)
            case .hostread: hostReads.append((line, r, vm.hostRead(r)))
            }
        case .contend(let r, let acceptor):
            try requireSlot(r, line: line)
            guard acceptor != vcpu else {
                throw CocomemError(.invalidScenario, "host scenario line \(line): contend needs the accepting vCPU to be another than the faulting vCPU 0")
            }
            vm.hostContend(r, acceptor: acceptor)
        case .rmpadjust, .pscAnswer, .hostRMP:
            throw CocomemError(.invalidScenario, "host scenario line \(line): \(c.verb) needs platform=snp")
        case .halt:
            guard vm.isInGuestMode(vcpu: vcpu) else {
                throw CocomemError(.invalidScenario, "host scenario line \(line): halt vcpu=\(vcpu): the vCPU is not in the guest (halted already, or the TD is not finalized)")
            }
            vm.halt(vcpu: vcpu)
        case .wake:
            guard vm.isFinalized, !vm.isInGuestMode(vcpu: vcpu) else {
                throw CocomemError(.invalidScenario, "host scenario line \(line): wake vcpu=\(vcpu): the vCPU is not halted")
            }
            vm.wake(vcpu: vcpu)
        case .promote(let r):
            try requireSlot(r, line: line)
            guard vm.module.features.privateMappings1G else {
                throw CocomemError(.invalidScenario, "host scenario line \(line): promote needs module-1g=on on the td line (KVM keeps no 1G private leaf otherwise)")
            }
            guard !vm.module.features.dynamicPAMT else {
                throw CocomemError(.invalidScenario, "host scenario line \(line): promote needs dpamt=off (the freed PD page's tdx_pamt_put() needs its own 2M host range, which the model does not keep per table)")
            }
            var g = r.lowerBound.region1G
            while g.firstFrame < r.upperBound && !vm.isDead {
                let o = vm.hostPromote1G(g)
                if o != .merged { vm.note("promote \(g.firstFrame.address): \(o)") }
                g = g + 1
            }
        case .destroy: vm.destroy()
        }
    }

    /// A guest load/store to `gfn`: shared pages fault into the shared EPT;
    /// private pages not yet mapped fault in at KVM's level (no accept
    /// level); touching a PENDING page kills a SEPT_VE_DISABLE TD ("Guest
    /// access before accepting") or gives the guest a #VE, whose handler
    /// accepts at 4K.
    func guestAccess(_ g: GuestFrameNumber, vcpu: Int) {
        if vm.module.isAccessible(g.only) { return }
        if vm.hostTrace != nil { vm.traceClock(vcpu: vcpu, now: vcpuSeconds(vcpu)) }
        if !vm.attributes.isPrivate(g) {
            if !vm.mmu.sharedMapped.value(at: g) { clock.charge(vm.sharedFault(gfn: g), vcpu: vcpu, costs: costs) }
            return
        }
        if vm.options.septVEDisable {
            let (c, fatal) = vm.guestAccess(gfn: g, vcpu: vcpu)
            clock.charge(c, vcpu: vcpu, costs: costs)
            if let fatal { lastGuestFailure = fatal }
            return
        }
        if !vm.isMapped(g) { clock.charge(vm.handleEPTViolation(gfn: g, acceptLevel: nil), vcpu: vcpu, costs: costs) }
        guard vm.isMapped(g), !vm.isDead else {
            if !vm.isDead { lastGuestFailure = "access to \(g.address) never completes: the host does not map it" }
            return
        }
        if case .terminated(let why) = edk4K.accept(AddressRange(frames: g.only), vcpu: vcpu, clock: &clock) { lastGuestFailure = why }
    }
}

extension HostScenario.Command {
    /// The command's keyword in the host scenario language.
    var verb: String {
        switch self {
        case .build: "build"
        case .finalize: "finalize"
        case .accept: "accept"
        case .access: "access"
        case .convert: "convert"
        case .attributes: "attributes"
        case .punch: "punch"
        case .cycle: "cycle"
        case .inject: "inject"
        case .check: "check"
        case .adversary(let a, _): a.rawValue
        case .hostUse(let u, _): u.rawValue
        case .contend: "contend"
        case .rmpadjust: "rmpadjust"
        case .pscAnswer(let a, _): a.rawValue
        case .hostRMP(let a, _): a.rawValue
        case .halt: "halt"
        case .wake: "wake"
        case .promote: "promote"
        case .destroy: "destroy"
        }
    }
}
