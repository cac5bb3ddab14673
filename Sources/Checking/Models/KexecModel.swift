import CoCoGuest
import CostModel
import Firmware
public import GuestKernel
public import MemoryModel
import Simulation

/// `model: kexec` (seed 001): a booted TDX guest whose kernel may touch
/// memory (a workload phase: allocations accept memory as they go), load a
/// kexec image with either syscall, and reboot into it; checked for
/// `kexec.destinations-accepted-before-relocation` (every segment's
/// destination accepted when `machine_kexec()` starts copying),
/// `guest.never-touch-unaccepted` (the relocation's first touch of an
/// unaccepted page kills the TD) and `guest.unaccepted-table-agrees` (each
/// RAM unit the table marks accepted is accepted on the platform).
///
/// Each step is one call across the guest kernel's real interface:
/// `kexec_file_load()`/`kexec_load()` (`GuestKernel.kexecLoad`),
/// `machine_kexec()` (`GuestKernel.machineKexec`), and the workload's
/// allocations. States are `ReplayedState`s rebuilt by booting the guest
/// again (deterministic) and replaying the kexec calls.
public struct KexecModel: TransitionSystem {
    public typealias State = ReplayedState
    public typealias Action = ModelStep

    /// The guest and the image.
    public struct Config: Sendable {
        /// The running kernel's release (`KernelVersion(parsing:)`): 6.16
        /// and later accept the destinations at load (seed 001).
        public var kernel: String
        public var memory: UInt64
        public var initrd: UInt64
        public var syscalls: [KexecSyscall]
        /// Workload phases the kernel may run before the load, each
        /// `touch=touchBytes`.
        public var maxTouches: Int
        public var touchBytes: UInt64

        public init(kernel: String, memory: UInt64 = ByteCount.gib(4).value, initrd: UInt64 = ByteCount.mib(256).value,
                    syscalls: [KexecSyscall] = [.fileLoad, .load], maxTouches: Int = 1, touchBytes: UInt64 = ByteCount.gib(1).value) {
            self.kernel = kernel
            self.memory = memory
            self.initrd = initrd
            self.syscalls = syscalls
            self.maxTouches = maxTouches
            self.touchBytes = touchBytes
        }
    }

    public let config: Config
    let version: KernelVersion
    let calibration: Calibration

    public init(_ config: Config) throws {
        self.config = config
        version = try KernelVersion(parsing: config.kernel)
        calibration = try Calibration.builtIn()
    }

    static let reboot = "kexec -e"

    public var initialStates: [ReplayedState] {
        [(try? replay([])) ?? ReplayedState(path: [], fingerprint: [], violations: [], terminal: true, observed: "boot failed")]
    }

    public func actions(in state: ReplayedState) -> [ModelStep] {
        guard !state.terminal else { return [] }
        let loaded = state.path.contains { $0.command.hasPrefix("kexec -l") }
        if loaded { return [ModelStep(.vcpu(0), Self.reboot, call: "machine_kexec(): relocate_kernel swaps every segment into place")] }
        var out: [ModelStep] = []
        if state.path.count < config.maxTouches {
            out.append(ModelStep(.vcpu(0), "touch=\(ByteCount(config.touchBytes))", call: "workload: allocations (cond_accept_memory() accepts as it goes)"))
        }
        for s in config.syscalls {
            out.append(ModelStep(.vcpu(0), "kexec -l --syscall \(s.rawValue)", call: "\(s.rawValue)(): place, sanity_check_segment_list(), load"))
        }
        return out
    }

    public func apply(_ action: ModelStep, to state: ReplayedState) -> ReplayedState {
        (try? replay(state.path + [action]))
            ?? ReplayedState(path: state.path + [action], fingerprint: [], violations: [], terminal: true, observed: "replay failed")
    }

    public func violations(in state: ReplayedState) -> [Violation] { state.violations }

    public func actor(of action: ModelStep) -> ActorID { action.actor }

    /// The scenario file (`cocomem run`'s format) that runs `path`.
    public func scenarioFile(_ path: [ModelStep]) -> String {
        let touches = path.filter { $0.command.hasPrefix("touch=") }.map(\.command)
        let syscall = path.first { $0.command.hasPrefix("kexec -l") }.map { String($0.command.split(separator: " ").last!) } ?? "kexec_file_load"
        let loadOnly = !path.contains { $0.command == Self.reboot }
        var s = "guest:\n  memory: \(ByteCount(config.memory))\nkernel:\n  version: \"\(config.kernel)\"\n"
        if !touches.isEmpty { s += "workload: [\(touches.joined(separator: ", "))]\n" }
        s += "steps:\n  - kexec:\n      syscall: \(syscall)\n      initrd: \(ByteCount(config.initrd))\n"
        if loadOnly { s += "      load-only: true\n" }
        return s
    }

    func scenario(touches: Int) -> Scenario {
        var s = Scenario()
        s.memory = config.memory
        s.kernel.version = version
        s.record = false
        if touches > 0 { s.workload = touches == 1 ? .touch(config.touchBytes) : .phases(Array(repeating: .touch(config.touchBytes), count: touches)) }
        return s
    }

    /// Boots and replays `path`.
    /// - Complexity: one boot of the configured guest plus the kexec calls.
    func replay(_ path: [ModelStep]) throws -> ReplayedState {
        let touches = path.count { $0.command.hasPrefix("touch=") }
        let first = try BootSimulation(scenario: scenario(touches: touches), calibration: calibration).bootRunningGuest()
        guard first.outcome == .ok, let k = first.kernel else {
            return ReplayedState(path: path, fingerprint: [1], violations: [], terminal: true, observed: "boot: \(first.outcomeString)")
        }
        var image: KexecImage?
        var last: [Violation] = []
        var observed = "booted"
        var terminal = false
        var clock = PhaseClock(vcpus: first.scenario.vcpus)
        for step in path {
            last = []
            if step.command.hasPrefix("kexec -l") {
                var req = KexecRequest()
                req.syscall = step.command.hasSuffix(KexecSyscall.load.rawValue) ? .load : .fileLoad
                req.payload.initrdBytes = config.initrd
                req.payload.efiRuntimeDescriptors = UInt64(first.firmware.map.descriptors.filter { $0.attribute.contains(.runtime) }.count)
                switch k.kexecLoad(req, clock: &clock) {
                case .success(let i): image = i; observed = "loaded \(i.segments.count) segments"
                case .failure(let e): observed = "load failed: \(e)"; terminal = true
                }
            } else if step.command == Self.reboot, let i = image {
                // The observer's check, before machine_kexec() starts copying.
                for seg in i.segments where !accepted(k, seg.range) {
                    last.append(Violation(invariant: InvariantRegistry.kexecDestinationsAccepted.name,
                                          detail: "\(seg.kind.rawValue) segment \(hex(seg.mem))+\(hex(seg.memsz)) is not accepted when relocate_kernel copies into it"))
                    break
                }
                let r = k.machineKexec(i, clock: &clock)
                terminal = true
                if case .terminated(let why) = r.outcome {
                    observed = why
                    last.append(Violation(invariant: InvariantRegistry.neverTouchUnaccepted.name,
                                          detail: "relocate_kernel (\(r.faultSegment?.rawValue ?? "?") segment): \(why)"))
                } else {
                    observed = "relocation completed"
                }
            }
            if let d = tableDisagreement(k) { last.append(Violation(invariant: InvariantRegistry.tableAgreesWithPlatform.name, detail: d)) }
        }
        var fp: [UInt64] = [UInt64(touches), terminal ? 1 : 0]
        if let t = k.unaccepted?.table { for r in t.bitmap.setRuns(in: t.allUnits) { fp += [r.lowerBound.value, r.upperBound.value] } }
        if let i = image { fp += [UInt64(i.syscall == .load ? 1 : 2)] + i.segments.flatMap { [$0.mem, $0.memsz] } }
        fp.append(stableHash(observed))
        return ReplayedState(path: path, fingerprint: fp, violations: last, terminal: terminal, observed: observed)
    }

    /// Whether every unit of `r` the unaccepted table covers is accepted
    /// (clear): memory below the table's base or above what it covers was
    /// accepted by firmware.
    func accepted(_ k: GuestKernel, _ r: AddressRange) -> Bool {
        guard let t = k.unaccepted?.table, r.size > 0 else { return true }
        let lo = max(r.start, t.physBase.value), hi = min(r.start + r.size, t.coveredEnd)
        guard lo < hi else { return true }
        return !t.bitmap.anySet(in: t.unit(containing: lo)..<t.unit(roundingUp: hi))
    }

    /// The first RAM range the table marks accepted that the platform has
    /// not accepted, if any.
    /// - Complexity: O(RAM ranges × runs of the bitmap), platform queries per run.
    func tableDisagreement(_ k: GuestKernel) -> String? {
        guard let t = k.unaccepted?.table else { return nil }
        for ram in k.ram {
            let lo = max(ram.start, t.physBase.value), hi = min(ram.start + ram.size, t.coveredEnd)
            guard lo < hi else { continue }
            var a = lo
            while a < hi {
                let u = t.unit(containing: a)
                let next = min(hi, t.address(of: u) + t.unitSize)
                if !t.bitmap.test(u), !k.platform.isAccessible(AddressRange(start: a, size: next - a)) {
                    return "unit at \(hex(a)) is clear in the unaccepted table but not accepted on the platform"
                }
                a = next
            }
        }
        return nil
    }
}
