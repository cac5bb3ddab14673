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
        /// A host step on the SEV-SNP host (`td platform=snp`), with its invariant
        /// findings when it asked for them.
        case snpHost(SNPHostRun, violations: [String]?)
        /// A step that continues from a guest that died before it
        /// (`from: previous`): why it did not run, and the guest's outcome.
        case notRun(why: String, outcome: String)
    }

    /// The first outcome that is not `ok` (the boot's, then each step's in
    /// order), or `ok`: what the examples' `# expect: outcome` lines check.
    public var outcome: String {
        let all = (boot.map { [$0.outcomeString] } ?? []) + steps.map(\.outcome)
        // A failure anywhere wins over a degraded run before it.
        return all.first { $0 != "ok" && !$0.hasPrefix("degraded: ") } ?? all.first { $0 != "ok" } ?? "ok"
    }
}

extension ScenarioRunResult.StepResult {
    /// The step's own outcome: a kexec's (`KexecResult.outcome`), a host
    /// run's VM outcome, else its guest's failure; a dump's is `ok` (the guest it crashed is the
    /// boot's or the previous step's, whose outcome is counted there).
    public var outcome: String {
        switch self {
        case .kexec(let k): k.outcome
        case .dump, .memUsage: "ok"
        case .notRun(_, let outcome): outcome
        case .snpHost(let h, _): h.outcomeString
        case .host(let h, _):
            switch h.vm.outcome {
            // A guest the host run failed is not ok, as `cocomem host` reports it.
            case .ok: h.guestFailure.map { "guest_terminated: \($0)" } ?? "ok"
            case .ioctlError(let m): "ioctl_error: \(m)"
            case .vmBugged(let m): "vm_bugged: \(m)"
            case .vmDead(let m): "vm_dead: \(m)"
            }
        }
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
    /// command runs it. A step starts from the scenario as the file
    /// describes it (a dump or kexec boots the same guest again, exactly as
    /// `cocomem dump`/`cocomem kexec` do), or, with `from: previous`, from
    /// the guest as the step before left it (`guest(before:)`): a dump
    /// after a kexec dumps the kernel kexec booted. Files a step writes (`elf:`, `output:`) go under
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
        if let step = steps.first(where: { $0.kind == "kexec" || $0.kind == "dump" }) {
            try scenario.refuseHotplug(in: step.kind)
        }
        // Dump and kexec steps model the nodes; the host model's guest is built on one node.
        if let step = steps.first(where: { $0.kind == "host" }) { try scenario.refuseNUMA(in: step.kind) }
        if boot {
            out.boot = try BootSimulation(scenario: scenario, calibration: calibration, progress: progress).run()
        } else if let step = steps.first(where: { if case .dump(let d) = $0 { d.input == nil } else if case .kexec = $0 { true } else { false } }) {
            throw CocomemError(.invalidScenario, "boot: false, but a \(step.kind) step needs a booted guest")
        }
        for (i, step) in steps.enumerated() {
            switch step {
            case .kexec(let k) where k.continues:
                var g = try guest(before: i, calibration: calibration, progress: progress)
                out.steps.append(g.dead == nil ? .kexec(g.kexec(kexecPlan(k))) : Self.notRun(i, g))
            case .kexec(let k): out.steps.append(.kexec(try runKexec(k, calibration: calibration)))
            case .dump(let d):
                let g = d.continues ? try guest(before: i, calibration: calibration, progress: progress) : nil
                if let g, g.dead != nil { out.steps.append(Self.notRun(i, g)); continue }
                out.steps.append(try runDump(d, calibration: calibration, outputDirectory: outputDirectory, threads: threads, progress: progress,
                                             guest: g))
            case .host(let h):
                let hs = try h.hostScenario()
                if hs.platform == .snp {
                    // The SEV-SNP host (SNPHostRun): `check-invariants` checks after every command (its td option).
                    let r = try SNPHostRun(hs, calibration: calibration, log: h.log, traceHost: h.hostTrace != nil)
                    try r.run()
                    try Self.writeHostTrace(r.vm.hostTrace, to: h.hostTrace, in: outputDirectory)
                    out.steps.append(.snpHost(r, violations: hs.options.checkInvariants ? r.violations : nil))
                    continue
                }
                let r = try HostRun(hs, calibration: calibration, log: h.log, record: scenario.record, traceHost: h.hostTrace != nil)
                var violations: [String]? = nil
                if h.checkInvariants, let checkedHostRun { violations = try checkedHostRun(r) } else { try r.run() }
                try Self.writeHostTrace(r.vm.hostTrace, to: h.hostTrace, in: outputDirectory)
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
        plan.nextWorkload = k.workload
        return plan
    }

    /// The guest step `index` continues from (`from: previous`): the
    /// file's guest booted again, then the steps of its chain before it
    /// (`chainStart(of:)`) replayed: a kexec runs again, a dump marks the
    /// guest crashed. The run is deterministic, so this is the state the
    /// previous step left, in objects of the step's own. When a boot, a
    /// reboot or a workload killed it, the replay stops there (`dead`,
    /// `diedIn`): nothing continues from a dead guest.
    func guest(before index: Int, calibration: Calibration, progress: (any ProgressReporter)?) throws -> RunningGuest {
        var g = try RunningGuest.boot(BootSimulation(scenario: scenario, calibration: calibration, progress: progress))
        for j in chainStart(of: index)..<index where g.dead == nil {
            switch steps[j] {
            case .kexec(let k): _ = g.kexec(kexecPlan(k))
            case .dump: g.crashed = true
            case .host: throw CocomemError(.invalidScenario, "step \(index + 1) continues from step \(j + 1), a host step, which leaves no guest")
            }
            if g.dead != nil { g.diedIn = "step \(j + 1)" }
        }
        return g
    }

    /// The result of a step whose guest died before it: not run, as the
    /// real machine would not get there; the run's outcome is the death.
    static func notRun(_ index: Int, _ g: RunningGuest) -> ScenarioRunResult.StepResult {
        .notRun(why: "the guest it continues from died in \(g.diedIn)", outcome: "guest_terminated: \(g.dead ?? "")")
    }

    /// Runs a kexec step on the file's guest, as `cocomem kexec` does.
    public func runKexec(_ k: KexecStep, calibration: Calibration) throws -> KexecResult {
        try BootSimulation(scenario: scenario, calibration: calibration).runKexec(kexecPlan(k))
    }

    static func resolve(_ path: String, in dir: String) -> String {
        path.hasPrefix("/") || dir == "." ? path : (dir.hasSuffix("/") ? dir + path : dir + "/" + path)
    }

    /// The host steps' `host-trace:` files, resolved against `dir`, in step order.
    public func hostTracePaths(in dir: String) -> [String] {
        steps.compactMap { step -> String? in
            guard case .host(let h) = step, let p = h.hostTrace else { return nil }
            return Self.resolve(p, in: dir)
        }
    }

    /// A host step's `host-trace:` file (`cocomem host --host-trace`): the
    /// trace's JSON lines, written atomically.
    static func writeHostTrace(_ t: HostTrace?, to path: String?, in dir: String) throws {
        guard let t, let path else { return }
        let f = try AtomicFile(path: resolve(path, in: dir))
        try f.write(Array(t.jsonLines.utf8), at: 0)
        try f.commit()
    }

    /// A dump step: of `guest` when it continues from one, else of the
    /// file's guest booted again (or of the `input:` file).
    func runDump(_ d: DumpStep, calibration: Calibration, outputDirectory: String, threads: Int,
                 progress: (any ProgressReporter)? = nil, guest: RunningGuest? = nil) throws -> ScenarioRunResult.StepResult {
        let options = DumpOptions(dumpLevel: d.level, compression: d.compression, makedumpfile: d.makedumpfile, threads: d.threads ?? threads)
        var image: GuestMemoryImage
        var record = RunRecord()
        if let input = d.input {
            guard d.slubOrder == 0 else {
                throw CocomemError(.invalidScenario, "'slub-order' lays out a simulated guest's slabs; the dump step's input file has its own struct pages")
            }
            image = GuestMemoryImage(input: try ELFInput(path: input))
        } else if let g = guest {
            // The running kernel crashes into the kdump kernel its crashkernel= region holds.
            image = try CaptureView.image(from: g.result, seed: scenario.seed, transparentHugepages: d.thp, slabOrder: d.slubOrder, uptime: g.uptime)
            record = g.result.recordAtTheCrash
        } else {
            let r = try BootSimulation(scenario: scenario, calibration: calibration, progress: progress).run()
            if case .terminated(let why) = r.outcome { throw CocomemError(.invalidScenario, "the guest died before it could crash into kdump: \(why)") }
            image = try CaptureView.image(from: r, seed: r.scenario.seed, transparentHugepages: d.thp, slabOrder: d.slubOrder)
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
        result.makedumpfileCPU = DumpTool.makedumpfileCPU(result.report, compression: d.compression, calibration: calibration)
        return .dump(result)
    }
}
