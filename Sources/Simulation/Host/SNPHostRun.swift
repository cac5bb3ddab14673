public import CoCoGuest
public import CostModel
public import KVM
import MemoryModel

/// Runs a host scenario on the SEV-SNP host (`td platform=snp`): KVM's SNP
/// host (`SNPVM`) with a Linux guest (`SNPHostGuest`) issuing the PSCs,
/// PVALIDATEs and accesses the commands ask for.
public final class SNPHostRun {
    public let scenario: HostScenario
    public let vm: SNPVM
    public let guest: SNPHostGuest
    public let costs: CostTable
    public private(set) var clock: PhaseClock
    /// Why the guest died (it stops the run), or nil.
    public private(set) var guestFailure: String?
    /// What the guest saw go wrong in the last command, for the checker.
    package private(set) var lastGuestFailure: String?
    /// With `check=on` (or `--check-invariants`): the invariants violated
    /// after each command, in order.
    public private(set) var violations: [String] = []

    /// With `traceHost`, the VM keeps the host-visible trace (`vm.hostTrace`,
    /// `cocomem host --platform snp --host-trace`), each command from its
    /// vCPU's time.
    public init(_ s: HostScenario, calibration: Calibration, log: Bool, traceHost: Bool = false) throws {
        guard s.platform == .snp else { throw CocomemError(.invalidScenario, "SNPHostRun needs a platform=snp scenario") }
        scenario = s
        costs = CostTable(calibration)
        vm = try SNPVM(vcpus: s.vcpus, slots: s.slots)
        vm.logEnabled = log
        vm.inPlace = s.options.conversionPolicy == .inPlace
        guest = SNPHostGuest(host: vm)
        clock = PhaseClock(vcpus: s.vcpus)
        if traceHost { vm.traceHost(costs: costs) }
    }

    /// Runs every command; the guest's death stops the run.
    public func run() throws {
        for (i, c) in scenario.commands.enumerated() {
            if guestFailure != nil { break }
            try execute(c, line: i < scenario.lines.count ? scenario.lines[i] : 0, vcpu: scenario.vcpu(ofCommand: i))
        }
        vm.settleTrace()
    }

    /// Runs one command, charges its operations to vCPU 0's clock and, when
    /// asked, checks every invariant after it.
    public func execute(_ c: HostScenario.Command, line: Int, vcpu: Int = 0) throws {
        let before = vm.ops
        lastGuestFailure = nil
        // The command's exits from its vCPU's time on (the clock is charged after it).
        vm.traceCommand(vcpu: vcpu, picoseconds: clock.vcpuPicoseconds.indices.contains(vcpu) ? clock.vcpuPicoseconds[vcpu] : 0)
        try perform(c, line: line, vcpu: vcpu)
        clock.charge(vm.ops - before, vcpu: vcpu, costs: costs)
        if let why = lastGuestFailure, guestFailure == nil { guestFailure = why }
        if scenario.options.checkInvariants {
            violations += vm.checkInvariants().map { "after line \(line) (\(c.verb)): \($0)" }
        }
    }

    func requireSlot(_ r: Range<GuestFrameNumber>, line: Int) throws {
        guard let s = vm.slot(r.lowerBound), r.upperBound <= s.frames.upperBound else {
            throw CocomemError(.invalidScenario, "host scenario line \(line): frames \(r.lowerBound.address)+\(r.length) are not inside one memslot")
        }
    }

    func perform(_ c: HostScenario.Command, line: Int, vcpu: Int) throws {
        switch c {
        case .build(let r):
            try requireSlot(r, line: line)
            if case .invalid(let why) = vm.launchUpdate(r) { throw CocomemError(.invalidScenario, "host scenario line \(line): \(why)") }
        case .finalize:
            // KVM_SEV_SNP_LAUNCH_FINISH (`snp_launch_finish()`): the VMSAs become guest-owned, pre-faulting is
            // allowed, SNP_LAUNCH_UPDATE is over. A second one is refused, as the launch-state patch does.
            guard !vm.launchFinished else { throw CocomemError(.invalidScenario, "host scenario line \(line): a second finalize: KVM_SEV_SNP_LAUNCH_FINISH after the launch finished (-EINVAL)") }
            vm.launchFinish()
        case .accept(let r, let level):
            try requireSlot(r, line: line)
            // `snp_accept_memory()` (or edk2's at 4K): one guest accept call.
            vm.traceGuestCall(vcpu: vcpu)
            lastGuestFailure = guest.accept(r, driver: level == .size4K ? .fourK : .linux)
        case .access(let r):
            try requireSlot(r, line: line)
            // With the C-bit the guest chose: its own view of what it made shared.
            lastGuestFailure = guest.access(r)
        case .convert(let r, let p):
            try requireSlot(r, line: line)
            lastGuestFailure = p ? guest.accept(r) : guest.makeShared(r)
        case .attributes(let r, let p):
            try requireSlot(r, line: line)
            _ = vm.mapGPARange(r, toPrivate: p)
        case .punch(let r):
            try requireSlot(r, line: line)
            _ = vm.punchHole(r)
        case .cycle(let r, let n):
            try requireSlot(r, line: line)
            for _ in 0..<n where lastGuestFailure == nil {
                lastGuestFailure = guest.makeShared(r, driver: .fourK)
                if lastGuestFailure == nil {
                    vm.traceGuestCall(vcpu: vcpu)
                    lastGuestFailure = guest.accept(r, driver: .fourK)
                }
            }
        case .check:
            violations += vm.checkInvariants().map { "at line \(line) (check): \($0)" }
        case .rmpadjust(let r, let vmpl):
            try requireSlot(r, line: line)
            lastGuestFailure = guest.rmpadjust(r, vmpl: vmpl, perms: 0xf)
        case .pscAnswer(let a, let r):
            try requireSlot(r, line: line)
            vm.answerPageStateChanges(r, a)
        case .hostRMP(let a, let r):
            try requireSlot(r, line: line)
            _ = vm.hostRMPUpdate(r, a)
        case .hostUse(let use, let r):
            try requireSlot(r, line: line)
            switch use {
            case .pin: vm.hostPin(r)
            case .unpin: vm.hostUnpin(r)
            case .hostmap: vm.hostMap(r)
            case .hostread:
                // The parser refuses it on an SNP td line; the SNP host model has no host read yet.
                throw CocomemError(.invalidScenario, "host scenario line \(line): hostread is a TDX host command")
            }
        case .inject, .adversary, .contend, .halt, .wake, .promote, .destroy:
            throw CocomemError(.invalidScenario, "host scenario line \(line): \(c.verb) is a TDX host command")
        }
    }

    /// `ok`, or `guest_terminated: why`.
    public var outcomeString: String { guestFailure.map { "guest_terminated: \($0)" } ?? "ok" }
}
