import CoCoGuest
import CostModel
import GuestKernel
import MemoryModel

/// A guest as a step of a scenario file leaves it, for the next step to
/// continue from (`from: previous`, docs/SCENARIOS.md): the kernel running
/// now with the platform and host under it, how long the machine has run,
/// and whether it died or crashed into kdump. After a `kexec` step it is
/// the kernel kexec booted, on the same platform, with the unaccepted
/// table the first kernel left in ACPI-reclaim memory (`runKexec`'s model);
/// after a `dump` step it is the same kernel, crashed.
///
/// Each step that continues gets a guest of its own, built by booting the
/// file's guest again and replaying the steps it continues from
/// (`ScenarioFile.guest(before:)`): the run is deterministic, so it is the
/// state the previous step left, and no report of an earlier step (which
/// reads its kernel and host when printed) changes when a later step
/// loads an image into that kernel or boots another.
struct RunningGuest {
    let simulation: BootSimulation
    /// The running kernel's boot: the file's, or the next kernel's after a kexec.
    var result: BootResult
    var acceptors: BootSimulation.Acceptors
    /// Virtual seconds since power-on: every boot, workload, load and
    /// reboot so far (the wall clock a crash records as CRASHTIME).
    var uptime: Double
    /// Why the guest died, if it did (a boot, a reboot or a workload killed it).
    var dead: String?
    /// Where it died: `the boot`, or `step N`.
    var diedIn = "the boot"
    /// A dump step crashed it into kdump: only another dump of the same
    /// crash continues from here (the reader refuses anything else).
    var crashed = false

    /// Boots the scenario, as `cocomem boot` (with a step-by-step boot's progress line).
    static func boot(_ simulation: BootSimulation) throws -> RunningGuest {
        let (r, acc) = try simulation.bootShowingProgress()
        var g = RunningGuest(simulation: simulation, result: r, acceptors: acc, uptime: r.times.totalBoot + r.times.workload)
        if case .terminated(let why) = r.outcome { g.dead = why }
        return g
    }

    /// Runs a kexec from the running kernel, as `cocomem kexec` does from
    /// its freshly booted one; the guest becomes the next kernel when
    /// `kexec -e` ran and booted it, and stays the running kernel (with
    /// the image loaded) otherwise.
    /// - Precondition: the guest is alive and not crashed.
    mutating func kexec(_ plan: KexecPlan) -> KexecResult {
        var out = simulation.kexec(plan, after: result, acceptors)
        if let rec = acceptors.recorder { out.record = rec.finish() }
        uptime += out.loadSeconds + out.rebootSeconds
        if let reboot = out.reboot, case .terminated(let why) = reboot.outcome { dead = why }
        if let next = out.second {
            result = next
            uptime += next.times.totalBoot + next.times.workload
            if case .terminated(let why) = next.outcome { dead = why }
        } else {
            // The load is part of the running kernel's history now.
            result.record = out.record
        }
        return out
    }
}
