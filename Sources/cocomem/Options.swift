public import ArgumentParser
import CoCoGuest
import CostModel
import CrashDump
import Foundation
import Firmware
import GuestKernel
import KVM
import MemoryModel
import Reports
import Simulation
import TDXModule

// The library's option enums (same package, so no @retroactive), read by their raw
// values; help texts and errors list `allCases` (docs/CLI.md).
extension PlatformKind: ExpressibleByArgument {}
extension HostScenario.Platform: ExpressibleByArgument {}
extension TDXHostModel: ExpressibleByArgument {}
extension TDXModuleSEPTLocking: ExpressibleByArgument {}

/// `--host`: a TDX host model, or `snp`, the KVM SEV-SNP host model.
enum HostChoice: String, ExpressibleByArgument, CaseIterable {
    case tdx
    case tdxHuge = "tdx-huge"
    case snp
}
extension GmemBacking: ExpressibleByArgument {}
extension HostMappingPolicy: ExpressibleByArgument {}
extension KexecSyscall: ExpressibleByArgument {}
extension GetMemoryMapStyle: ExpressibleByArgument {}
extension AcceptLevelPolicy: ExpressibleByArgument {}
extension ConversionPolicy: ExpressibleByArgument {}
extension TransparentHugepage: ExpressibleByArgument {}
extension HotplugAcceptance: ExpressibleByArgument {}
extension DPAMTSeries: ExpressibleByArgument {}
extension SEPTPlacement: ExpressibleByArgument {}

/// `on` or `off`.
enum OnOff: String, ExpressibleByArgument, CaseIterable {
    case on, off
    var isOn: Bool { self == .on }
}

/// `accept_memory=`: lazy or eager.
enum AcceptMode: String, ExpressibleByArgument, CaseIterable {
    case lazy, eager
}

/// Who calls ExitBootServices.
enum LoaderKind: String, ExpressibleByArgument, CaseIterable {
    /// The kernel's EFI stub.
    case efistub
    /// The boot loader (GRUB) before it jumps to the kernel.
    case grubEBS = "grub-ebs"
}

/// `transparent_hugepage=`.
enum THPMode: String, ExpressibleByArgument, CaseIterable {
    case always, never
}

/// `--json`, the same in every command that has it.
struct JSONOption: ParsableArguments {
    @Flag(help: "Print one JSON object instead of the text report") var json = false
}

/// `--calibration`, the same in every command that has it.
struct CalibrationOption: ParsableArguments {
    @Option(help: "Calibration file (default: the built-in Sources/CostModel/Resources/calibration.json)") var calibration: String?
    @Option(help: ArgumentHelp("Calibration profile: the costs measured on one hardware and host software generation, laid over the file's base values (the file's 'profiles'; docs/CALIBRATION.md)", valueName: "NAME"))
    var profile: String?

    func load() throws -> Calibration {
        try load(profile: profile)
    }

    /// The calibration with `profile` applied (nil: the base values).
    func load(profile: String?) throws -> Calibration {
        if let calibration { return try Calibration.load(path: calibration, profile: profile) }
        return try Calibration.builtIn(profile: profile)
    }
}

/// `--fail-on`, the same in every command that has it: exit 2 after the
/// report when the outcome is one of the chosen kinds. It belongs to the
/// command line, not to the scenario file (a file describes the guest and
/// its steps, not what counts as failure for the caller).
struct FailOnOption: ParsableArguments {
    @Option(name: .customLong("fail-on"), help: ArgumentHelp("Exit 2 after the report when the outcome is one of OUTCOMES (comma-separated: \(OutcomeKind.all.joined(separator: ", ")), or any for anything but ok)", valueName: "OUTCOMES"))
    var failOn: String?

    /// The chosen kinds.
    var kinds: Set<String> {
        guard let failOn else { return [] }
        var out: Set<String> = []
        for k in failOn.split(separator: ",").map(String.init) {
            if k == "any" { out.formUnion(OutcomeKind.all.filter { $0 != "ok" }) } else { out.insert(k) }
        }
        return out
    }

    func validate() throws {
        guard let failOn else { return }
        let given = failOn.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        for k in given where k != "any" && !OutcomeKind.all.contains(k) {
            throw ValidationError("--fail-on: '\(k)' is not an outcome (expected \(OutcomeKind.all.joined(separator: ", ")) or any)")
        }
    }

    /// Exits 2 (after the report, which the caller has printed) when
    /// `outcome` is of a chosen kind.
    func check(_ outcome: String) throws {
        if kinds.contains(OutcomeKind.of(outcome)) { throw ExitCode(2) }
    }
}

/// `--progress` / `--no-progress`, the same in every command with long runs
/// (`dump`, `boot`, `run`; a `sweep` command takes this group too and tells
/// the reporter one `.items("points")` task). By default a progress line
/// (`TerminalProgress`: percent, counts, ETA, on stderr) is shown only when
/// stderr is a terminal, and only for a task still running after half a
/// second; `--progress` shows it whatever stderr is, from the start;
/// `--no-progress` never. Progress never reaches stdout or a written file.
///
/// For `sweep`: `@OptionGroup var progress: ProgressOption`, then
///
///     let p = progress.reporter()
///     try p.run(ProgressTask("sweep", total: UInt64(points.count), unit: .items("points"))) {
///         ... p?.advance(by: 1) for each point finished ...
///     }
///
/// calling `advance` from the thread that collects results in order (a
/// reporter is called by one thread at a time), and handing `p` to the
/// simulations a point runs only if their own lines are wanted (they would
/// replace the sweep's line while they run).
struct ProgressOption: ParsableArguments {
    @Flag(inversion: .prefixedNo, help: "Show a progress line (percent, ETA) on stderr during long runs (default: when stderr is a terminal)")
    var progress: Bool?

    /// The reporter to hand down, or nil when nobody is to be shown progress.
    func reporter() -> (any ProgressReporter)? { Self.reporter(progress) }

    /// The reporter for `--progress` (true), `--no-progress` (false) or neither (nil).
    static func reporter(_ progress: Bool?) -> (any ProgressReporter)? {
        switch progress {
        case .some(true): TerminalProgress(delay: 0)
        case .some(false): nil
        case .none: TerminalProgress.standardErrorIsTerminal ? TerminalProgress() : nil
        }
    }
}

/// The options that define a simulated guest, shared by `boot`, `dump` and `kexec`.
struct ScenarioOptions: ParsableArguments {
    @Option(help: "Platform") var platform: PlatformKind = .tdx
    @Option(help: "Guest memory (64G, 512M, 1.5T, 0x100000000)") var memory = "4G"
    @Option(help: "vCPUs") var vcpus = 4
    @Option(help: ArgumentHelp("NUMA nodes as QEMU's -numa node,memdev= makes them: N equal nodes, or each node's size (3G,1G), adding up to --memory (default 1: no NUMA)", valueName: "N|SIZE,SIZE,...")) var numa: String?
    @Option(help: ArgumentHelp("-smp N,sockets=S: vCPUs go to node (socket % nodes) as QEMU's default mapping puts them; one socket (the default, as QEMU >= 6.2 makes plain -smp N) puts every vCPU on node 0", valueName: "S")) var sockets = 1
    @Option(help: "accept_memory=") var accept: AcceptMode = .lazy
    @Option(help: "Host model: tdx (KVM + TDX module, 4K private mappings, as upstream), tdx-huge (TDX huge pages v3 + Dynamic PAMT), snp (SEV-SNP guests: KVM's SEV-SNP host with guest_memfd, NPT and RMP; --host-mapping chooses 4K or 2M folios; docs/HOST.md) (default: tdx; an SNP guest without --host snp runs on the guest-facing SNP platform)") var host: HostChoice = .tdx
    @Option(help: "guest_memfd backing for the KVM host (default: buddy for tdx, hugetlb-2m for tdx-huge)") var gmem: GmemBacking?
    @Option(name: .customLong("host-mapping"), help: "SEV-SNP host backing") var hostMapping: HostMappingPolicy = .map4K
    @Flag(name: .customLong("tdx-module-1g"), help: "Forward-looking: a TDX module that maps private memory at 1G (AUG, ACCEPT, DEMOTE, REMOVE at 1G); needs --host tdx-huge, used with --gmem hugetlb-1g (docs/HOST.md)") var tdxModule1G = false
    @Option(help: "TDX host (tdx-huge): the Dynamic PAMT series, v4 (Nov 2025) or v6 (May 2026: enabled only with --host-phys-bits 48 or less) (default: v4)") var dpamt: DPAMTSeries?
    @Option(name: .customLong("host-phys-bits"), help: ArgumentHelp("TDX host: x86_phys_bits after the KeyID bits, 36 to 52 (default 46)", valueName: "N")) var hostPhysBits: Int?
    @Option(name: .customLong("host-placement"), help: "TDX host: where the host allocator puts S-EPT and TDX control pages: contiguous, scattered or buddy (default: contiguous; docs/HOST.md)") var hostPlacement: SEPTPlacement?
    @Option(name: .customLong("host-free-4k"), help: ArgumentHelp("TDX host, --host-placement buddy: isolated free 4K pages the allocator hands out first, one 2M range each (0 to 4294967296)", valueName: "N")) var hostFree4K: UInt64?
    @Option(help: "Firmware: tdvf, tdvf-2022, ovmf-snp, or an edk2 stable tag from edk2-stable202302 (the platform's upstream generation; docs/VERSIONS.md) (default: tdvf for TDX, ovmf-snp for SNP)") var firmware: String?
    @Option(name: .customLong("fw-partial-accept"), help: "tdvf-2022 PcdTdxAcceptPartialMemorySize (0 = all)") var partial = "256M"
    @Option(help: "Kernel release as uname -r starts: 6.5 to 7.1 (mainline, x.y = x.y.0) or a stable point release such as 6.12.30 (docs/VERSIONS.md)") var kernel = "7.0"
    @Option(help: "Who calls ExitBootServices: efistub (the kernel's EFI stub) or grub-ebs (the loader)") var loader: LoaderKind = .efistub
    @Flag(name: .customLong("no-unaccepted-support"), help: "Kernel without CONFIG_UNACCEPTED_MEMORY") var noSupport = false
    @Flag(name: .customLong("no-acceptance-protocol-call"), help: "Kernel stub that does not call AllowUnacceptedMemory() (SNP)") var noProtocolCall = false
    @Flag(name: .customLong("snp-firmware-without-protocol"), help: "SNP firmware without OVMF_SEV_MEMORY_ACCEPTANCE_PROTOCOL (no edk2 release: 26847fb6be added it before 0d129ef7c3 left RAM above 4 GiB unaccepted, both in edk2-stable202302)") var noFwProtocol = false
    @Flag(name: .customLong("snp-prefault"), help: "The VMM pre-faults on page state change (KVM_PRE_FAULT_MEMORY)") var prefault = false
    @Option(help: ArgumentHelp("SEV-SNP: the VMPL the guest runs at; above 0 an SVSM at VMPL0 does Linux's PVALIDATEs (SVSM_CORE_PVALIDATE calls; docs/KEXEC.md)", valueName: "0-3")) var vmpl = 0
    @Flag(name: .customLong("snp-coherency-sfw-no"), help: "SEV-SNP: the CPU sets COHERENCY_SFW_NO (CPUID Fn8000001F_EBX[31]), so kernels with 7b306dfa326f skip sev_evict_cache() after validation") var coherencySfwNo = false
    @Option(name: .customLong("deferred-init"), help: "CONFIG_DEFERRED_STRUCT_PAGE_INIT") var deferred: OnOff = .on
    @Option(name: .customLong("boot-alloc"), help: "Memory user space allocates on the way to a shell") var bootAlloc = "256M"
    @Option(help: "none, touch=SIZE|all, pagecache=SIZE, hugetlb=SIZE (grow the 2 MiB hugetlb pool), rate=SIZE:SECONDS (SIZE allocated every second)") var workload = "none"
    @Option(help: "Seed of every random choice (page contents, samples)") var seed: UInt64 = 0
    @Option(name: .customLong("transparent-hugepage"), help: "transparent_hugepage= at boot: always or madvise start khugepaged, which raises vm.min_free_kbytes (set_recommended_min_free_kbytes()); never leaves it") var transparentHugepage: TransparentHugepage = .madvise
    @Option(name: .customLong("swiotlb"), help: ArgumentHelp("swiotlb= on the guest's command line, as setup_io_tlb_npages() reads it: slabs of 2 KiB (1 to 2097152, rounded up to 128), areas (1 to 4096), force or noforce (no bounce buffer); a slab count other than 32768 keeps mem_encrypt_setup_arch() from resizing it", valueName: "SLABS[,AREAS][,force|noforce]")) var swiotlb: String?
    @Flag(name: .customLong("idle-poll"), help: "idle=poll on the guest's command line: idle vCPUs spin in cpu_idle_poll() instead of halting (tdx_safe_halt()), so they stay in guest mode, where every TDX TLB-tracking kick reaches them, and take no HLT exits") var idlePoll = false
    @Flag(name: .customLong("workload-actors"), help: "A workload phase on several vCPUs runs as one actor per vCPU on the seeded scheduler (--seed): every vCPU that finds the zone short calls cond_accept_memory() itself (the overshoot of many allocators), each block's pages free at its __free_pages_ok() step; default off: the least-loaded loop") var workloadActors = false
    @Flag(name: .customLong("efi-debug"), help: "efi=debug on the guest's command line: EFI boot services memory is kept reserved for /sys/kernel/debug/efi instead of freed (efi_free_boot_services() returns on EFI_DBG)") var efiDebug = false
    @Flag(name: .customLong("swiotlb-shared"), inversion: .prefixedNo, help: "mem_encrypt_init()'s swiotlb_update_mem_attributes(): the SWIOTLB pool made shared at boot through the platform (TDX MapGPA, SNP page-state changes) and the host's conversion, as every TDX and SNP kernel does (default off: on, the per-leaf zap's assumed costs take validate's kata-128g row out of its band; docs/CLI.md)") var swiotlbShared = false
    @Flag(name: .customLong("early-decrypted"), help: "The SNP guest's other shared memory, made shared as the kernel does: __bss_decrypted at __startup_64() (512 pages) and each vCPU's GHCB page at trap_init(), through the GHCB MSR protocol, and the unused part of __bss_decrypted made private again at free_initmem(); a TD makes none of these shared (default off: it moves SNP boots' counts and times; docs/CLI.md)") var earlyDecrypted = false
    @Option(name: .customLong("early-tick"), help: ArgumentHelp("A periodic tick at HZ on the boot CPU while start_kernel() converts memory with interrupts on (an HPET or PIT clockevent; the local APIC timer starts later, in smp_prepare_cpus()): 0 (none, default), 100, 250, 300 or 1000. A pending tick makes KVM answer a TDX MapGPA with TDVMCALL_STATUS_RETRY between 2 MiB pieces", valueName: "HZ")) var earlyTick: UInt64 = 0
    @Option(name: .customLong("min-free-kbytes"), help: ArgumentHelp("vm.min_free_kbytes written before user space (0 to 2147483647; default: the kernel's own, raised by khugepaged)", valueName: "KB")) var minFreeKbytes: UInt64?
    @Option(name: .customLong("watermark-scale-factor"), help: ArgumentHelp("vm.watermark_scale_factor written before user space (1 to 3000; default 10)", valueName: "N")) var watermarkScaleFactor: UInt64?
    @Option(help: ArgumentHelp("Hot-plug memory after boot, before the workload: a DIMM (whole 128M blocks) or SIZE more of a virtio-mem device (4M blocks); as the workload phase hotplug=SIZE:KIND (docs/HOTPLUG.md)", valueName: "SIZE[:dimm|virtio-mem]")) var hotplug: String?
    @Option(name: .customLong("hotplug-accept"), help: "How hot-added memory is accepted: none (mainline: not at all), amd-rfc (accept_hotplug_memory()), tdx-rfc-v2 (plugged bitmap, SRAT in the EFI stub), uhp (a kernel reading EFI_MEMORY_UHP; needs --uhp)") var hotplugAccept: HotplugAcceptance = .mainline
    @Flag(name: .customLong("uhp"), help: "Firmware marks the hot-plug window EFI_MEMORY_UHP (edk2 PR 12811)") var uhp = false
    @Option(name: .customLong("soft-reserved"), help: ArgumentHelp("SEV-SNP: QEMU lists the last SIZE of RAM above 4 GiB as E820 SoftReserved (Specific Purpose Memory); a multiple of 2M (docs/VERSIONS.md)", valueName: "SIZE")) var softReserved: String?
    @Flag(name: .customLong("retain-soft-reserved"), help: "Firmware with edk2 6c6d0a72c2 (PR 12774, master after edk2-stable202605): the SoftReserved range stays system memory with EFI_MEMORY_SP and is pre-validated") var retainSoftReserved = false
    @OptionGroup var calibration: CalibrationOption
    @Flag(name: .customLong("step-by-step"), help: "Simulate every TDCALL/PVALIDATE one at a time") var step = false

    func scenario() throws -> Scenario {
        var s = Scenario()
        s.platform = platform
        s.memory = try ByteCount.parseGuestMemory(memory).value
        s.vcpus = vcpus
        s.sockets = sockets
        if let numa { s.numaNodeSizes = try Scenario.numaNodeSizes(numa, memory: s.memory, vcpus: vcpus, sockets: sockets) }
        s.lazy = accept == .lazy
        s.kernel.lazyAccept = s.lazy
        s.hostMapping = hostMapping
        switch host {
        case .tdx: s.tdxHost = .tdx
        case .tdxHuge: s.tdxHost = .tdxHuge
        case .snp: s.snpHost = true
        }
        if let gmem { s.gmemBacking = gmem }
        s.tdxModule1G = tdxModule1G
        if let hostPhysBits, !(36...52).contains(hostPhysBits) {
            throw CocomemError(.invalidArgument, "--host-phys-bits must be 36 to 52, got \(hostPhysBits)")
        }
        if let hostFree4K, hostFree4K > 1 << 32 {
            throw CocomemError(.invalidArgument, "--host-free-4k must be 0 to 4294967296, got \(hostFree4K)")
        }
        s.dpamtSeries = dpamt
        s.hostPhysBits = hostPhysBits
        s.hostPlacement = hostPlacement
        s.hostIsolatedFreePages = hostFree4K
        if let firmware, let g = FirmwareGeneration(rawValue: firmware) {
            s.firmware = g
        } else if let firmware {
            let release = try EDK2Release.parse(firmware)
            s.edk2Release = release
            s.firmware = release.generation(tdx: platform == .tdx)
        } else {
            s.firmware = platform == .tdx ? .tdvf : .ovmfSNP
        }
        s.partialAcceptBytes = try ByteCount.parse(partial).value
        s.kernel.version = try KernelVersion(parsing: kernel)
        s.loader.loaderCallsExitBootServices = loader == .grubEBS
        s.loader.kernelSupportsUnaccepted = !noSupport
        s.loader.stubCallsAcceptanceProtocol = !noProtocolCall
        s.snpAcceptanceProtocol = !noFwProtocol
        s.snpPrefault = prefault
        s.snpVMPL = vmpl
        s.snpCoherencySfwNo = coherencySfwNo
        s.kernel.deferredStructPageInit = deferred.isOn
        s.kernel.idlePoll = idlePoll
        s.kernel.workloadActors = workloadActors
        s.kernel.transparentHugepage = transparentHugepage
        s.kernel.swiotlbShared = swiotlbShared
        s.kernel.earlyDecrypted = earlyDecrypted
        guard KernelConfig.earlyTickChoices.contains(earlyTick) else {
            throw CocomemError(.invalidArgument, "--early-tick must be 0, 100, 250, 300 or 1000 (CONFIG_HZ), not \(earlyTick)")
        }
        s.kernel.earlyTickHz = earlyTick
        s.kernel.efiDebug = efiDebug
        if let swiotlb { s.kernel.swiotlbParameter = try SWIOTLBParameter.parse(swiotlb) }
        s.kernel.minFreeKbytes = minFreeKbytes
        s.kernel.watermarkScaleFactor = watermarkScaleFactor
        s.bootAllocationBytes = try ByteCount.parse(bootAlloc).value
        s.workload = try Workload.parse(workload, memory: s.memory)
        if let hotplug {
            let plug = try Workload.parse("hotplug=" + hotplug, memory: s.memory)
            s.workload = s.workload == .none ? plug : .phases([plug, s.workload])
        }
        s.kernel.hotplugAcceptance = hotplugAccept
        s.firmwareMarksUHP = uhp
        if let softReserved { s.softReservedBytes = try ByteCount.parse(softReserved).value }
        s.retainSoftReserved = retainSoftReserved
        s.seed = seed
        s.stepByStep = step
        return s
    }

    /// The files the scenario reads (an output may not replace them).
    var inputs: [String] { calibration.calibration.map { [$0] } ?? [] }

    func boot(crashKernel: UInt64 = 0, progress: (any ProgressReporter)? = nil) throws -> BootResult {
        var s = try scenario()
        s.kernel.crashKernelBytes = crashKernel
        return try BootSimulation(scenario: s, calibration: calibration.load(), progress: progress).run()
    }

    /// The boot, with its calibration note: the same scenario booted again
    /// at both ends of the calibrated ranges (issue 17; three boots when
    /// the file has ranges), and whether it lies beyond the calibrated range.
    func bootWithBand(progress: (any ProgressReporter)? = nil, traceHost: Bool = false) throws -> BootResult {
        var s = try scenario()
        if traceHost {
            guard s.platform == .tdx || s.snpHost else {
                throw CocomemError(.invalidArgument, "--host-trace on an SEV-SNP guest needs --host snp: without it the boot runs on the guest-facing SNPPlatform, which has no host to trace")
            }
            s.traceHost = true
        }
        let cal = try calibration.load()
        var r = try BootSimulation(scenario: s, calibration: cal, progress: progress).run()
        var total: ClosedRange<Double>? = nil, work: ClosedRange<Double>? = nil
        if cal.hasRanges {
            // Bulk replay gives the same times as --step-by-step, faster; the
            // band's two boots need only the times.
            var bulk = s
            bulk.stepByStep = false
            bulk.record = false
            bulk.traceHost = false
            let ends = try CostEnd.allCases.map { try BootSimulation(scenario: bulk, calibration: cal.atEnd($0)).run().times } + [r.times]
            let t = ends.map(\.totalBoot), w = ends.map(\.workload)
            total = t.min()!...t.max()!
            work = w.min()!...w.max()!
        }
        r.calibrationNote = CalibrationNote(profile: cal.profile, totalBootBand: total, workloadBand: work,
                                            extrapolation: cal.calibratedRange?.extrapolation(vcpus: s.vcpus, memory: s.memory))
        return r
    }
}

/// `--report FILE.html`: a self-contained HTML report of the run (docs/REPORTS.md).
struct ReportOption: ParsableArguments {
    @Option(help: ArgumentHelp("Also write a self-contained HTML report (inline SVG: memory strips, timelines, vCPU lanes, histograms) to FILE", valueName: "FILE"))
    var report: String?

    /// Checks, before the run, that the report can be written: an existing
    /// directory, not an input, not another output, not a non-regular file.
    func check(inputs: [String], outputs: [(option: String, path: String)] = []) throws {
        guard let report else { return }
        try checkArtifactPaths([("--report", report)], inputs: inputs, outputs: outputs)
    }

    func write(_ html: @autoclosure () -> String) throws {
        guard let report else { return }
        try writeArtifact(report, html())
    }
}

/// `--trace FILE.json` and `--strip`: what a run recorded over virtual time,
/// as a Chrome trace and as a memory strip in the text report.
struct RecordOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Also write the run's record in the Chrome trace event format to FILE (open it in ui.perfetto.dev or chrome://tracing)", valueName: "FILE"))
    var trace: String?
    @Flag(help: "Add a memory strip per recorded snapshot to the text report (one line per RAM region: accepted, unaccepted)")
    var strip = false

    /// Checks, before the run, that the trace can be written (as `ReportOption.check`)
    /// and that `--strip` has a text report to add to.
    func check(inputs: [String], outputs: [(option: String, path: String)] = [], textReport: Bool = true) throws {
        if strip && !textReport { throw ValidationError("--strip adds to the text report; leave out --json (and --meminfo)") }
        guard let trace else { return }
        try checkArtifactPaths([("--trace", trace)], inputs: inputs, outputs: outputs)
    }

    func write(_ records: @autoclosure () -> [(String, RunRecord)]) throws {
        guard let trace else { return }
        try writeArtifact(trace, ChromeTrace.json(records()))
    }

    /// The strip to append to the text report (empty without `--strip` or with `--json`).
    func stripText(_ records: [(String, RunRecord)], json: Bool) -> String {
        guard strip, !json else { return "" }
        return records.map { (records.count > 1 ? "\nMemory strip of the \($0.0):" : "") + TerminalStrip.text($0.1) }.joined()
    }
}

/// Checks artifact outputs before a run: the directory exists and takes a
/// new file, and the path is neither an input, another output, nor an
/// existing non-regular file (`OutputPaths.check`; an existing regular file
/// is replaced).
func checkArtifactPaths(_ mine: [(option: String, path: String)], inputs: [String], outputs: [(option: String, path: String)]) throws {
    for (_, p) in mine {
        let dir = URL(fileURLWithPath: p).deletingLastPathComponent().path
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else {
            throw CocomemError(.io, "cannot write '\(p)': directory '\(dir)' does not exist")
        }
    }
    func identity(_ p: String) -> (dev_t, ino_t)? {
        var st = stat()
        return stat(p, &st) == 0 ? (st.st_dev, st.st_ino) : nil
    }
    for (option, p) in mine {
        for input in inputs {
            let same = identity(p).flatMap { a in identity(input).map { b in a == b } }
                ?? (URL(fileURLWithPath: p).standardizedFileURL.path == URL(fileURLWithPath: input).standardizedFileURL.path)
            if same { throw CocomemError(.invalidArgument, "\(option) '\(p)' is one of the command's inputs: writing it would replace a file being read") }
        }
    }
    try OutputPaths.check(outputs: outputs + mine, inputs: [], force: true)
    // The directory must take the file: the temporary file the write will
    // use is made and dropped now (an unnamed O_TMPFILE file leaves nothing;
    // a named one is removed), so an unwritable directory is refused before
    // the run instead of after it.
    for (_, p) in mine { _ = try AtomicFile(path: p) }
}

/// Writes `text` to `path` atomically (a temporary file renamed into place, `AtomicFile`).
func writeArtifact(_ path: String, _ text: String) throws {
    let f = try AtomicFile(path: path)
    try f.write(Array(text.utf8), at: 0)
    try f.commit()
}
