public import CostModel
public import CrashDump
import Foundation
public import GuestKernel
public import KVM
import MemoryModel

/// One run of cocomem described as a file (docs/SCENARIOS.md): the guest
/// that boots (a `Scenario`, exactly what `boot`/`dump`/`kexec` build from
/// their flags) and the steps run after the boot (`kexec`, `dump`, `host`),
/// each with the options its command has. `cocomem run FILE` runs it;
/// `--print-scenario` prints the file equivalent to a command line.
///
/// The file sets only what the flags set: every key names the flag it maps
/// to, and a missing key takes the flag's default.
public struct ScenarioFile: Sendable {
    /// The guest: `guest`, `firmware`, `kernel`, `host` and `workload` keys.
    public var scenario = Scenario()
    /// `calibration:` (`--calibration FILE`); nil: the built-in calibration.
    public var calibration: String? = nil
    /// `calibration-profile:` (`--profile NAME`); nil: the file's base values.
    public var calibrationProfile: String? = nil
    /// `boot: false` runs no guest (a file of `host` steps, or a `dump` of
    /// an `input:` vmcore, as `cocomem host` and `cocomem dump --input` do).
    public var boot = true
    /// `steps:`, run in order after the boot.
    public var steps: [Step] = []

    public init(scenario: Scenario = Scenario(), calibration: String? = nil, boot: Bool = true, steps: [Step] = []) {
        self.scenario = scenario
        self.calibration = calibration
        self.boot = boot
        self.steps = steps
    }

    /// A step after the boot.
    public enum Step: Sendable {
        /// `cocomem kexec`'s options (the running kernel's `--init-size` and
        /// `--crashkernel` are `kernel.init-size` and `kernel.crashkernel`).
        case kexec(KexecStep)
        /// `cocomem dump`'s options (`kernel.crashkernel` is `--crashkernel`).
        case dump(DumpStep)
        /// `cocomem host`: the host command language and its overrides.
        case host(HostStep)

        public var kind: String {
            switch self {
            case .kexec: "kexec"
            case .dump: "dump"
            case .host: "host"
            }
        }

        /// `from: previous`: the step runs on the guest as the step before
        /// it left it (or as the boot left it, for the first step), instead
        /// of booting the file's guest again as its command does.
        public var continues: Bool {
            switch self {
            case .kexec(let k): k.continues
            case .dump(let d): d.continues
            case .host: false
            }
        }
    }

    /// `cocomem kexec`'s own options.
    public struct KexecStep: Sendable, Equatable {
        /// `syscall:` (`--syscall`).
        public var syscall: KexecSyscall = .fileLoad
        /// `crash:` (`--crash`, `kexec -p`).
        public var crash = false
        /// `initrd:` (`--initrd`, 0: none).
        public var initrdBytes: UInt64 = 64 << 20
        /// `kernel-size:` (`--kernel-size`, the bzImage file size).
        public var kernelFileBytes: UInt64 = 14 << 20
        /// `kernel-alignment:` (`--kernel-alignment`).
        public var kernelAlignment: UInt64 = 2 << 20
        /// `cmdline-len:` (`--cmdline-len`).
        public var cmdlineBytes: UInt64 = 128
        /// `next-kernel:` (`--next-kernel`; nil: the running kernel's generation).
        public var nextKernel: KernelVersion? = nil
        /// `load-only:` (`--load-only`, `kexec -l`).
        public var loadOnly = false
        /// `workload:` the next kernel's workload after its boot, a list of
        /// phases as the file's top-level `workload` (`--next-workload`).
        public var workload: Workload = .none
        /// `from: previous` (`Step.continues`).
        public var continues = false
        public init() {}
    }

    /// `cocomem dump`'s own options.
    public struct DumpStep: Sendable, Equatable {
        /// `level:` (`-d`).
        public var level = 1
        /// `compression:` (`-c` zlib, `-l` lzo, `-p` snappy, `-z` zstd; none).
        public var compression: DumpCompression = .none
        /// `elf-dump:` (`-E`).
        public var elfDump = false
        /// `makedumpfile:` (`--makedumpfile`).
        public var makedumpfile: MakedumpfileVersion = .v1_7_8
        /// `num-threads:` (`--num-threads`; nil: all cores).
        public var threads: Int? = nil
        /// `estimate:` (`--estimate`).
        public var estimate = false
        /// `sample:` (`--sample`).
        public var sample: Int? = nil
        /// `mem-usage:` (`--mem-usage`).
        public var memUsage = false
        /// `thp:` (`--thp always`).
        public var thp = false
        /// `slub-order:` (`--slub-order`): SLUB's slab order, 0 to 10.
        public var slubOrder: UInt64 = 0
        /// `MAX_PAGE_ORDER` on x86-64: the largest order `slub_min_order=` takes.
        public static let maximumSlubOrder = 10
        /// `vmcoreinfo:` (false: `--no-vmcoreinfo`).
        public var vmcoreinfo = true
        /// `force:` (`-f`, makedumpfile's: replace an existing dump file).
        public var force = false
        /// `elf:` (`--elf`), relative to `cocomem run --out DIR`.
        public var elf: String? = nil
        /// `output:` (`-o`), relative to `cocomem run --out DIR`.
        public var output: String? = nil
        /// `input:` (`--input`), as given (relative to the current directory).
        public var input: String? = nil
        /// `from: previous` (`Step.continues`): dump the kernel the step
        /// before left running (the one a `kexec` step booted).
        public var continues = false
        public init() {}

        /// The checks `cocomem dump` makes on its command line.
        public func validate() throws {
            guard elf != nil || output != nil || estimate || memUsage else {
                throw CocomemError(.invalidScenario, "nothing to do: give elf, output, estimate or mem-usage")
            }
            if input != nil {
                guard elf == nil else { throw CocomemError(.invalidScenario, "elf writes a simulated guest's /proc/vmcore; an input file is one already") }
                guard vmcoreinfo else { throw CocomemError(.invalidScenario, "vmcoreinfo: false applies to simulated guests; an input file keeps its notes") }
            }
            if memUsage {
                guard !elfDump else { throw CocomemError(.invalidScenario, "mem-usage writes no file; leave out elf-dump") }
                guard input == nil else { throw CocomemError(.invalidScenario, "mem-usage reads the running guest, not a vmcore file") }
            }
            guard (0...31).contains(level) else { throw CocomemError(.invalidScenario, "level \(level) is not between 0 and 31") }
            if let threads, !(1...256).contains(threads) { throw CocomemError(.invalidScenario, "num-threads \(threads) is not between 1 and 256") }
            if !memUsage, let sample, sample < 2 || sample > 1 << 24 {
                throw CocomemError(.invalidScenario, "sample \(sample) is not between 2 and 16777216 pages")
            }
        }
    }

    /// `cocomem host`'s input and overrides.
    public struct HostStep: Sendable, Equatable {
        /// `commands:` the host command language (`cocomem host FILE`); nil:
        /// the built-in seed 004 scenario, as `cocomem host` without FILE.
        public var commands: String? = nil
        /// `log:` (`--log`).
        public var log = false
        /// `precheck:` (`--precheck on|off`).
        public var precheck: Bool? = nil
        /// `accept-level:` (`--accept-level`).
        public var acceptLevel: AcceptLevelPolicy? = nil
        /// `policy:` (`--policy`).
        public var policy: ConversionPolicy? = nil
        /// `check-invariants:` (`--check-invariants`).
        public var checkInvariants = false
        /// `host-trace:` (`--host-trace FILE`): where the run's host-visible
        /// trace goes, relative to `cocomem run --out` unless absolute; nil: no trace.
        public var hostTrace: String? = nil
        public init() {}

        /// The host scenario with the overrides applied, as `cocomem host` builds it.
        public func hostScenario() throws -> HostScenario {
            var s = try HostScenario.parse(commands ?? HostScenario.seed004)
            if s.platform == .snp, precheck != nil || acceptLevel != nil || (policy != nil && policy != .inPlace) {
                throw CocomemError(.invalidScenario, "host step: precheck, accept-level and policies other than in-place are the TDX host's; this host step is platform=snp")
            }
            if let precheck { s.options.lpagePrecheck = precheck }
            if let acceptLevel { s.options.acceptLevelPolicy = acceptLevel }
            if let policy {
                s.options.conversionPolicy = policy
                try s.options.checkAttributesSwitch()
                if policy != .inPlace, s.commands.contains(where: { if case .hostUse(let u, _) = $0 { u != .hostmap && u != .hostread } else { false } }) {
                    throw CocomemError(.invalidScenario, "host step policy \(policy.rawValue): the commands' pin and unpin need policy in-place")
                }
            }
            if checkInvariants { s.options.checkInvariants = true }
            return s
        }
    }

    /// The `crashkernel=` a file without `kernel.crashkernel` gets: 256M when
    /// a step needs one (a dump, a crash kexec), as `cocomem dump` and
    /// `cocomem kexec --crash` default; none otherwise.
    static func defaultCrashKernel(for steps: [Step]) -> UInt64 {
        steps.contains { step in
            switch step {
            case .dump(let d): d.input == nil
            case .kexec(let k): k.crash
            case .host: false
            }
        } ? 256 << 20 : 0
    }

    /// The same file with only the guest and one of its steps (or none):
    /// what each result embeds as its `scenario_file`. A step that
    /// continues from the one before keeps the steps it continues from
    /// (`chainStart(of:)`), so the file reruns it: its result is the last
    /// step's of that file.
    public func only(step index: Int?) -> ScenarioFile {
        var f = self
        f.steps = index.map { steps.indices.contains($0) ? Array(steps[chainStart(of: $0)...$0]) : [] } ?? []
        return f
    }

    /// The first step of the chain step `index` belongs to: the nearest
    /// step at or before it that does not continue from the one before
    /// (it boots the file's guest again), or 0 when every step back to the
    /// first continues (the chain starts at the boot).
    public func chainStart(of index: Int) -> Int {
        var i = index
        while i > 0, steps[i].continues { i -= 1 }
        return i
    }

    /// Loads the calibration the file names (or the built-in one).
    public func loadCalibration() throws -> Calibration {
        if let calibration { return try Calibration.load(path: calibration, profile: calibrationProfile) }
        return try Calibration.builtIn(profile: calibrationProfile)
    }
}
