import ArgumentParser
import Foundation
import CrashDump
import GuestKernel
import MemoryModel
import Reports
import Simulation

/// `--print-scenario`, the same in every command that has it.
struct PrintScenarioOption: ParsableArguments {
    @Flag(name: .customLong("print-scenario"), help: "Print the equivalent scenario file (YAML, for cocomem run) and exit") var on = false

    /// Prints `file` with the command line it equals as a comment.
    func print(_ file: ScenarioFile) {
        let args = CommandLine.arguments.dropFirst().filter { $0 != "--print-scenario" }.map { a in
            a.isEmpty || a.contains(where: { " \t'\"$\\".contains($0) }) ? "'" + a.replacingOccurrences(of: "'", with: "'\\''") + "'" : a
        }
        Swift.print(file.yaml(from: (["cocomem"] + args).joined(separator: " ")), terminator: "")
    }
}

extension ScenarioOptions {
    /// The scenario file these flags describe, with `steps` after the boot.
    func scenarioFile(steps: [ScenarioFile.Step] = [], adjust: (inout Scenario) throws -> Void = { _ in }) throws -> ScenarioFile {
        var s = try scenario()
        try adjust(&s)
        var f = ScenarioFile(scenario: s, calibration: calibration.calibration, steps: steps)
        f.calibrationProfile = calibration.profile
        return f
    }
}

extension Boot {
    func scenarioFile() throws -> ScenarioFile { try guest.scenarioFile() }
}

extension Dump {
    /// The file `cocomem dump` with these flags runs: the guest with its
    /// `crashkernel=` and one dump step (`boot: false` with `--input`).
    func scenarioFile() throws -> ScenarioFile {
        var d = ScenarioFile.DumpStep()
        d.level = self.d
        d.compression = compression
        d.elfDump = elfDump
        d.makedumpfile = try MakedumpfileVersion.parse(makedumpfile)
        d.threads = threads
        d.estimate = estimate
        d.sample = sample
        d.memUsage = memUsage
        d.thp = thp == .always
        d.slubOrder = slubOrder
        d.vmcoreinfo = !noVmcoreinfo
        d.force = force
        d.elf = elf
        d.output = output
        d.input = input
        var f = try guest.scenarioFile(steps: [.dump(d)]) { $0.kernel.crashKernelBytes = try ByteCount.parse(crashKernel).value }
        f.boot = input == nil
        return f
    }
}

extension Kexec {
    /// The file `cocomem kexec` with these flags runs (`--init-size` is the
    /// running kernel's footprint too, `kernel.init-size`).
    func scenarioFile() throws -> ScenarioFile {
        var k = ScenarioFile.KexecStep()
        k.syscall = syscall
        k.crash = crash
        k.initrdBytes = try ByteCount.parse(initrd).value
        k.kernelFileBytes = try ByteCount.parse(kernelSize).value
        k.kernelAlignment = try ByteCount.parse(kernelAlignment).value
        guard k.kernelAlignment >= 4096, k.kernelAlignment & (k.kernelAlignment - 1) == 0 else {
            throw ValidationError("--kernel-alignment \(kernelAlignment) is not a power of two of at least 4K")
        }
        guard cmdlineLen >= 1, cmdlineLen <= 1 << 20 else { throw ValidationError("--init-size must be positive and --cmdline-len between 1 and 1M") }
        k.cmdlineBytes = cmdlineLen
        k.nextKernel = try nextKernel.map { try KernelVersion(parsing: $0) }
        k.loadOnly = loadOnly
        let crashDefault: UInt64 = crash ? 256 << 20 : 0
        var f = try guest.scenarioFile(steps: [.kexec(k)]) { s in
            s.kernel.crashKernelBytes = try crashKernel.map { try ByteCount.parse($0).value } ?? crashDefault
            if let initSize {
                s.kernel.kernelInitBytes = try ByteCount.parse(initSize).value
                guard s.kernel.kernelInitBytes > 0 else { throw ValidationError("--init-size must be positive and --cmdline-len between 1 and 1M") }
            }
        }
        // `touch=all` is the guest's memory, known once the scenario is.
        k.workload = try Workload.parse(nextWorkload, memory: f.scenario.memory)
        if k.workload != .none, loadOnly || crash {
            throw ValidationError("--next-workload runs on the kernel kexec -e boots; \(crash ? "--crash only loads a crash image" : "--load-only does not execute")")
        }
        f.steps = [.kexec(k)]
        return f
    }
}

extension Host {
    /// The file `cocomem host` with these flags runs: no guest boot, one
    /// host step carrying the command text.
    func scenarioFile(text: String?) -> ScenarioFile {
        var h = ScenarioFile.HostStep()
        h.commands = text
        h.log = log
        h.precheck = precheck.map(\.isOn)
        h.acceptLevel = acceptLevel
        h.policy = policy
        h.checkInvariants = check
        h.hostTrace = hostTrace
        var f = ScenarioFile(calibration: calibration.calibration, boot: false, steps: [.host(h)])
        f.calibrationProfile = calibration.profile
        return f
    }
}
