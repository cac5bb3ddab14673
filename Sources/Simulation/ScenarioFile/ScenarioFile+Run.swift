import CoCoGuest
public import CostModel
import CrashDump
public import Foundation
import GuestKernel
import KVM
public import MemoryModel

/// What `cocomem run` produced: the boot and each step's result.
public struct ScenarioRunResult {
    public var file: ScenarioFile
    /// The boot (nil with `boot: false`).
    public var boot: BootResult?
    public var steps: [StepResult] = []

    public enum StepResult {
        case kexec(KexecResult)
        case dump(DumpTool.Result)
        case memUsage(DumpTool.MemUsage)
        /// A host step, with what its invariant checks found when it asked for them.
        case host(HostRun, violations: [String]?)
    }

    /// The first outcome that is not `ok` (the boot's, then each step's in
    /// order), or `ok`: what the examples' `# expect: outcome` lines check.
    public var outcome: String {
        var all: [String] = []
        if let b = boot { all.append(b.outcomeString) }
        for s in steps {
            switch s {
            case .kexec(let k): all.append(k.outcome)
            case .dump, .memUsage: all.append("ok")
            case .host(let h, _):
                switch h.vm.outcome {
                case .ok: all.append("ok")
                case .ioctlError(let m): all.append("ioctl_error: \(m)")
                case .vmBugged(let m): all.append("vm_bugged: \(m)")
                case .vmDead(let m): all.append("vm_dead: \(m)")
                }
            }
        }
        // A failure anywhere wins over a degraded run before it.
        return all.first { $0 != "ok" && !$0.hasPrefix("degraded: ") } ?? all.first { $0 != "ok" } ?? "ok"
    }
}

extension KexecResult {
    /// `ok`, or the first failure: the first boot, the load, the reboot,
    /// the next kernel's boot.
    public var outcome: String {
        if first.outcome != .ok { return first.outcomeString }
        if case .failure? = load { return "load " + loadOutcome }
        if reboot != nil, rebootOutcome != "ok" { return rebootOutcome }
        if let s = second, s.outcome != .ok { return s.outcomeString }
        // Completed, but a boot lost or clamped memory.
        if first.isDegraded { return first.outcomeString }
        if let s = second, s.isDegraded { return s.outcomeString }
        return "ok"
    }
}

extension ScenarioFile {
    /// Runs the file: the boot (as `cocomem boot`), then each step as its
    /// command runs it. Every step starts from the scenario as the file
    /// describes it (a dump or kexec boots the same guest again, exactly as
    /// `cocomem dump`/`cocomem kexec` do), not from the state a previous
    /// step left. Files a step writes (`elf:`, `output:`) go under
    /// `outputDirectory` unless absolute. A host step with
    /// `check-invariants: true` runs through `checkedHostRun` (the Checking
    /// module's `HostRun.runChecked()`, which the caller passes in because
    /// Checking builds on this module); without it, only KVM's own checks
    /// after every host operation run.
    ///
    /// `progress`, if given, follows a `step-by-step` boot and each dump
    /// step's writing or exact estimate (it never changes a result).
    public func run(outputDirectory: String = ".", threads: Int = ProcessInfo.processInfo.activeProcessorCount,
                    checkedHostRun: ((HostRun) throws -> [String])? = nil,
                    progress: (any ProgressReporter)? = nil) throws -> ScenarioRunResult {
        let calibration = try loadCalibration()
        var out = ScenarioRunResult(file: self)
        if boot {
            out.boot = try BootSimulation(scenario: scenario, calibration: calibration, progress: progress).run()
        } else if let step = steps.first(where: { if case .dump(let d) = $0 { d.input == nil } else if case .kexec = $0 { true } else { false } }) {
            throw CocomemError(.invalidScenario, "boot: false, but a \(step.kind) step needs a booted guest")
        }
        for step in steps {
            switch step {
            case .kexec(let k): out.steps.append(.kexec(try runKexec(k, calibration: calibration)))
            case .dump(let d):
                out.steps.append(try runDump(d, calibration: calibration, outputDirectory: outputDirectory, threads: threads, progress: progress))
            case .host(let h):
                let r = try HostRun(try h.hostScenario(), calibration: calibration, log: h.log, record: scenario.record)
                var violations: [String]? = nil
                if h.checkInvariants, let checkedHostRun { violations = try checkedHostRun(r) } else { try r.run() }
                out.steps.append(.host(r, violations: violations))
            }
        }
        return out
    }

    /// `cocomem kexec`: the plan its options make.
    public func kexecPlan(_ k: KexecStep) -> KexecPlan {
        var plan = KexecPlan()
        plan.request.syscall = k.syscall
        plan.request.type = k.crash ? .crash : .normal
        var p = KexecPayload()
        p.initrdBytes = k.initrdBytes
        p.kernelFileBytes = k.kernelFileBytes
        p.initSize = scenario.kernel.kernelInitBytes
        p.kernelAlignment = k.kernelAlignment
        p.cmdlineBytes = k.cmdlineBytes
        plan.request.payload = p
        plan.nextKernel = k.nextKernel
        plan.execute = !k.loadOnly
        return plan
    }

    /// Runs a kexec step on the file's guest, as `cocomem kexec` does.
    public func runKexec(_ k: KexecStep, calibration: Calibration) throws -> KexecResult {
        try BootSimulation(scenario: scenario, calibration: calibration).runKexec(kexecPlan(k))
    }

    static func resolve(_ path: String, in dir: String) -> String {
        path.hasPrefix("/") || dir == "." ? path : (dir.hasSuffix("/") ? dir + path : dir + "/" + path)
    }

    func runDump(_ d: DumpStep, calibration: Calibration, outputDirectory: String, threads: Int,
                 progress: (any ProgressReporter)? = nil) throws -> ScenarioRunResult.StepResult {
        let options = DumpOptions(dumpLevel: d.level, compression: d.compression, makedumpfile: d.makedumpfile, threads: d.threads ?? threads)
        var image: GuestMemoryImage
        var record = RunRecord()
        if let input = d.input {
            image = GuestMemoryImage(input: try ELFInput(path: input))
        } else {
            let r = try BootSimulation(scenario: scenario, calibration: calibration, progress: progress).run()
            if case .terminated(let why) = r.outcome { throw CocomemError(.invalidScenario, "the guest died before it could crash into kdump: \(why)") }
            image = try CaptureView.image(from: r, seed: r.scenario.seed, transparentHugepages: d.thp)
            record = r.recordAtTheCrash
        }
        if !d.vmcoreinfo { image.vmcoreinfo = nil }
        if d.memUsage {
            return .memUsage(try DumpTool.memUsage(image: image, makedumpfile: d.makedumpfile, threads: options.threads))
        }
        let sampling = d.sample.map { EstimateSampling(pagesPerStratum: $0, seed: scenario.seed) }
        var result = try DumpTool.run(image: image, options: options, elf: d.elf.map { Self.resolve($0, in: outputDirectory) },
                                      output: d.output.map { Self.resolve($0, in: outputDirectory) }, estimateOnly: d.estimate,
                                      sampling: sampling, elfDump: d.elfDump, force: d.force, progress: progress)
        result.record = record
        return .dump(result)
    }
}
