import CoCoGuest
public import CostModel
import Firmware
public import GuestKernel
import MemoryModel

/// A kexec of a booted guest: what to load and whether to jump to it.
public struct KexecPlan: Sendable {
    public var request = KexecRequest()
    /// The generation of the kernel kexec boots (default: the running one's).
    public var nextKernel: KernelVersion? = nil
    /// `kexec -e` after loading; false loads only (`kexec -l`). Crash
    /// images are only loaded: the panic and the capture kernel are
    /// `cocomem dump`'s business.
    public var execute = true
    /// What the next kernel runs once it has booted (a scenario file's
    /// kexec `workload:`, `--next-workload`); none by default.
    public var nextWorkload: Workload = .none
    public init() {}
}

/// Everything a kexec run produces.
public struct KexecResult {
    public var first: BootResult
    /// The load, or nil when the first boot did not get that far.
    public var load: Result<KexecImage, KexecLoadFailure>?
    public var loadSeconds = 0.0
    public var loadCounts = OpCounts()
    public var reboot: KexecReboot?
    /// `enc_kexec_finish()`: shared memory converted back, or left shared.
    public var unshare = KexecUnshare()
    /// Virtual time of that conversion (part of `rebootSeconds`).
    public var unshareSeconds = 0.0
    /// Virtual time of `machine_kexec()` up to the next kernel's entry.
    public var rebootSeconds = 0.0
    /// Bytes still marked unaccepted in the table when the next kernel starts.
    public var unacceptedAtHandover: UInt64 = 0
    /// The next kernel's boot (no firmware or EFI stub run after kexec).
    public var second: BootResult?
    /// `arch_accept_memory()` ranges the next kernel issued outside the
    /// units still set at hand-over; the table guarantees there are none.
    public var reacceptedBytes: UInt64 = 0
    /// The whole run over virtual time (issue 14): the first boot's phases,
    /// `kexec_load`, the snapshot `before kexec`, `kexec_reboot`, and the
    /// next kernel's phases (`next_kernel.kernel_boot`, ...) with the
    /// snapshot `end of boot (next kernel)`. Empty without `Scenario.record`.
    public var record = RunRecord()
}

extension BootSimulation {
    /// Boots the scenario, loads a kexec image into the running kernel,
    /// jumps to it and boots the next kernel from the state the first left:
    /// the same platform (nothing is un-accepted by kexec) and the same
    /// unaccepted table, which lives in ACPI-reclaim memory that
    /// neither kernel reuses, found again through the EFI configuration
    /// table the kexec boot_params pass on (`efi_config_parse_tables()`).
    /// The EFI stub does not run again: kexec enters the bzImage at
    /// `startup_64` with boot_params already filled in.
    public func runKexec(_ plan: KexecPlan) throws -> KexecResult {
        try scenario.refuseHotplug(in: "kexec")
        if plan.nextWorkload.flattened.contains(where: \.isHotplug) {
            throw CocomemError(.invalidScenario, "kexec: hotplug= and unplug= phases in the next kernel's workload are not modelled (docs/HOTPLUG.md)")
        }
        let (first, acc) = try boot()
        var out = kexec(plan, after: first, acc)
        if let rec = acc.recorder { out.record = rec.finish() }
        return out
    }

    func kexec(_ plan: KexecPlan, after first: BootResult, _ acc: Acceptors) -> KexecResult {
        var out = KexecResult(first: first)
        guard first.outcome == .ok, let k = first.kernel else { return out }
        var lclock = PhaseClock(vcpus: scenario.vcpus)
        var request = plan.request
        // The running kernel hands on the firmware's runtime descriptors.
        request.payload.efiRuntimeDescriptors = UInt64(first.firmware.map.descriptors.filter { $0.attribute.contains(.runtime) }.count)
        let rec = acc.recorder
        rec?.switchKernelActor(to: .kexecLoad)
        let load = k.kexecLoad(request, clock: &lclock)
        out.load = load
        out.loadSeconds = lclock.seconds(costs)
        out.loadCounts = lclock.counts
        rec?.phase("kexec_load", lclock, seconds: out.loadSeconds)
        guard case .success(let image) = load, plan.execute, image.type == .normal else { return out }
        rec?.snapshot("before kexec")

        var rclock = PhaseClock(vcpus: scenario.vcpus)
        // `native_machine_shutdown()` stops the other CPUs before
        // `enc_kexec_finish()` (the unsharing below): `stop_other_cpus()` →
        // `acpi_mp_stop_this_cpu()` sends each AP back to the firmware's
        // mailbox loop, where it spins in guest mode; the CPU running kexec runs.
        k.wakeVCPUs(0..<k.vcpus)
        out.unshare = k.kexecUnshare(clock: &rclock)
        out.unshareSeconds = rclock.seconds(costs)
        guard out.unshare.outcome == .ok else {
            out.reboot = KexecReboot(outcome: out.unshare.outcome)
            out.rebootSeconds = rclock.seconds(costs)
            return out
        }
        let reboot = k.machineKexec(image, clock: &rclock)
        out.reboot = reboot
        out.rebootSeconds = rclock.seconds(costs)
        rec?.phase("kexec_reboot", rclock, seconds: out.rebootSeconds)
        guard reboot.outcome == .ok else { return out }
        rec?.switchKernelActor(to: .nextKernel)

        let table = k.unaccepted.map { UnacceptedMemory(table: $0.table, acceptor: $0.acceptor, costs: costs) }
        if let t = table?.table { out.unacceptedAtHandover = t.bitmap.countSet(in: t.allUnits) * t.unitSize }
        let setAtHandover = table?.table.bitmap
        var reaccepted: UInt64 = 0
        table?.onArchAccept = { a, b in
            guard let t = table?.table, let bits = setAtHandover else { return }
            let units = t.unit(containing: a)..<t.unit(roundingUp: b)
            reaccepted += (units.length - bits.countSet(in: units)) * t.unitSize
        }
        guard let kseg = image.segments.first(where: { $0.kind == .kernel }) else { return out }
        // The running kernel's configuration (the scenario's, or the one a
        // previous kexec booted), with the next release if one is named.
        var config = first.scenario.kernel
        if let v = plan.nextKernel { config.version = v }
        var s2 = first.scenario
        s2.kernel = config
        s2.workload = plan.nextWorkload
        var second = BootResult(scenario: s2, firmware: first.firmware)
        let initrd = image.segments.first { $0.kind == .initrd }.map { AddressRange(start: $0.mem, size: $0.memsz) }
        // The next kernel parses the same ACPI SRAT (the firmware's tables stay
        // where they were, found again through the boot_params kexec passes
        // on), so it has the first kernel's nodes: its memblock, memmap
        // buffers, zones and deferred init are per node as at the first boot.
        bootKernel(
            config: config, ram: k.ram, unaccepted: table, platform: k.platform,
            image: AddressRange(start: kseg.mem, size: kseg.memsz), initrd: initrd, workload: plan.nextWorkload, into: &second,
            recorder: rec, prefix: "next_kernel.", numa: k.numa.isSingleNode ? nil : k.numa)
        table?.onArchAccept = nil
        out.second = finish(&second, acc)
        out.reacceptedBytes = reaccepted
        return out
    }
}

extension KexecResult {
    public var loadOutcome: String {
        switch load {
        case .none: "not attempted (the first boot failed)"
        case .success: "ok"
        case .failure(let f): "failed: \(f)"
        }
    }

    public var rebootOutcome: String {
        guard let r = reboot else { return "not executed" }
        switch r.outcome {
        case .ok: return "ok"
        case .terminated(let why): return "guest_terminated: \(why)"
        }
    }
}
