import ArgumentParser
import CoCoGuest
import CostModel
import CrashDump
import Firmware
import Foundation
import GuestKernel
import MemoryModel
import Reports
import KVM
import Simulation
import Validation
import TDXModule

@main
struct Cocomem: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "An executable model of memory acceptance in confidential VMs (Intel TDX, AMD SEV-SNP).",
        subcommands: [Boot.self, Dump.self, Kexec.self, Host.self, Accept.self, Validate.self, Bench.self], defaultSubcommand: Boot.self)

    /// Runs `body`, turning a CocomemError into one clear line and exit code 1.
    static func guarded(_ body: () throws -> Void) throws {
        do { try body() } catch let e as CocomemError {
            FileHandle.standardError.write(Data("error: \(e.message)\n".utf8))
            throw ExitCode(1)
        }
    }
}

func loadCalibration(_ path: String?) throws -> Calibration {
    if let path { return try Calibration.load(path: path) }
    return try Calibration.builtIn()
}

/// The options that define a simulated guest, shared by `boot` and `dump`.
struct ScenarioOptions: ParsableArguments {
    @Option(help: "tdx or snp") var platform = "tdx"
    @Option(help: "Guest memory (64G, 512M, 1.5T, 0x100000000)") var memory = "4G"
    @Option var vcpus = 4
    @Option(help: "lazy or eager (accept_memory=)") var accept = "lazy"
    @Option(help: "TDX host: tdx (KVM + TDX module, 4K private mappings, as upstream), tdx-huge (TDX huge pages v3 + Dynamic PAMT)") var host = "tdx"
    @Option(help: "guest_memfd backing for the KVM host: buddy, hugetlb-2m, hugetlb-1g (default: buddy for tdx, hugetlb-2m for tdx-huge)") var gmem: String?
    @Option(name: .customLong("host-mapping"), help: "SEV-SNP host backing: 4k or 2m") var hostMapping = "4k"
    @Option(help: "tdvf, tdvf-2022 or ovmf-snp (default: tdvf for TDX, ovmf-snp for SNP)") var firmware: String?
    @Option(name: .customLong("fw-partial-accept"), help: "tdvf-2022 PcdTdxAcceptPartialMemorySize (0 = all)") var partial = "256M"
    @Option(help: "Kernel generation: 6.5, 6.11, 6.12, 6.16, 7.0") var kernel = "7.0"
    @Option(help: "efistub (the kernel's EFI stub calls ExitBootServices) or grub-ebs (the loader does)") var loader = "efistub"
    @Flag(name: .customLong("no-unaccepted-support"), help: "Kernel without CONFIG_UNACCEPTED_MEMORY") var noSupport = false
    @Flag(name: .customLong("no-acceptance-protocol-call"), help: "Kernel stub that does not call AllowUnacceptedMemory() (SNP)") var noProtocolCall = false
    @Flag(name: .customLong("snp-firmware-without-protocol"), help: "SNP firmware without OVMF_SEV_MEMORY_ACCEPTANCE_PROTOCOL (edk2-stable202302)") var noFwProtocol = false
    @Flag(name: .customLong("snp-prefault"), help: "The VMM pre-faults on page state change (KVM_PRE_FAULT_MEMORY)") var prefault = false
    @Option(name: .customLong("deferred-init"), help: "on or off (CONFIG_DEFERRED_STRUCT_PAGE_INIT)") var deferred = "on"
    @Option(name: .customLong("boot-alloc"), help: "Memory user space allocates on the way to a shell") var bootAlloc = "256M"
    @Option(help: "none, touch=SIZE|all, pagecache=SIZE, hugetlb=SIZE (grow the 2 MiB hugetlb pool), rate=SIZE:SECONDS (SIZE allocated every second)") var workload = "none"
    @Option var seed: UInt64 = 0
    @Option(help: "Calibration file (default: built-in)") var calibration: String?
    @Flag(name: .customLong("step-by-step"), help: "Simulate every TDCALL/PVALIDATE one at a time") var step = false

    func scenario() throws -> Scenario {
        var s = Scenario()
        guard let p = PlatformKind(rawValue: platform) else { throw CocomemError(.invalidArgument, "platform '\(platform)' is not tdx or snp") }
        s.platform = p
        s.memory = try ByteCount.parseGuestMemory(memory).value
        s.vcpus = vcpus
        guard accept == "lazy" || accept == "eager" else { throw CocomemError(.invalidArgument, "accept '\(accept)' is not lazy or eager") }
        s.lazy = accept == "lazy"
        s.kernel.lazyAccept = s.lazy
        guard let hm = HostMappingPolicy(rawValue: hostMapping) else { throw CocomemError(.invalidArgument, "host mapping '\(hostMapping)' is not 4k or 2m") }
        s.hostMapping = hm
        guard let th = TDXHostModel(rawValue: host) else { throw CocomemError(.invalidArgument, "host '\(host)' is not tdx or tdx-huge") }
        s.tdxHost = th
        if let g = gmem {
            guard let b = GmemBacking(rawValue: g) else { throw CocomemError(.invalidArgument, "gmem backing '\(g)' is not buddy, hugetlb-2m or hugetlb-1g") }
            s.gmemBacking = b
        }
        let fwName = firmware ?? (p == .tdx ? "tdvf" : "ovmf-snp")
        guard let fw = FirmwareGeneration(rawValue: fwName) else { throw CocomemError(.invalidArgument, "firmware '\(fwName)' is not tdvf, tdvf-2022 or ovmf-snp") }
        s.firmware = fw
        s.partialAcceptBytes = try ByteCount.parse(partial).value
        guard let kv = KernelVersion(rawValue: kernel) else { throw CocomemError(.invalidArgument, "kernel '\(kernel)' is not one of 6.5, 6.11, 6.12, 6.16, 7.0") }
        s.kernel.version = kv
        guard loader == "efistub" || loader == "grub-ebs" else { throw CocomemError(.invalidArgument, "loader '\(loader)' is not efistub or grub-ebs") }
        s.loader.loaderCallsExitBootServices = loader == "grub-ebs"
        s.loader.kernelSupportsUnaccepted = !noSupport
        s.loader.stubCallsAcceptanceProtocol = !noProtocolCall
        s.snpAcceptanceProtocol = !noFwProtocol
        s.snpPrefault = prefault
        guard deferred == "on" || deferred == "off" else { throw CocomemError(.invalidArgument, "deferred-init '\(deferred)' is not on or off") }
        s.kernel.deferredStructPageInit = deferred == "on"
        s.bootAllocationBytes = try ByteCount.parse(bootAlloc).value
        s.workload = try Workload.parse(workload, memory: s.memory)
        s.seed = seed
        s.stepByStep = step
        return s
    }

    func boot(crashKernel: UInt64 = 0) throws -> BootResult {
        var s = try scenario()
        s.kernel.crashKernelBytes = crashKernel
        return try BootSimulation(scenario: s, calibration: loadCalibration(calibration)).run()
    }
}

struct Boot: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Boot a simulated TD or SNP guest and report what was accepted, by whom and when.")
    @OptionGroup var guest: ScenarioOptions
    @Flag var json = false
    @Flag(name: .customLong("meminfo"), help: "Print only /proc/meminfo") var meminfoOnly = false

    func run() throws {
        try Cocomem.guarded {
            let r = try guest.boot()
            if json { print(r.json.serialized()) } else if meminfoOnly { print(r.kernel?.procMeminfo ?? "", terminator: "") } else { print(r.text, terminator: "") }
        }
    }
}

struct Dump: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Boot a guest, crash it into a kdump kernel, and write its vmcore (ELF) and/or a kdump-compressed file.",
        discussion: "Level and compressor flags follow makedumpfile: -d LEVEL (1 zero, 2 cache, 4 private cache, 8 user, 16 free), -c zlib, -l lzo, -p snappy, -z zstd, --num-threads N. Levels above 1 walk the struct pages cocomem generates (kernels 6.12 and later), or, with --input, those in the file, found through its VMCOREINFO.")
    @OptionGroup var guest: ScenarioOptions
    @Option(name: .customLong("crashkernel"), help: "crashkernel= reservation (accepted when memblock reserves it)") var crashKernel = "256M"
    @Option(name: .customLong("input"), help: "Convert this ELF vmcore instead of booting a guest (makedumpfile -d LEVEL ... in out)") var input: String?
    @Option(name: .customLong("elf"), help: "Write the capture kernel's /proc/vmcore (ELF) here") var elf: String?
    @Option(name: [.short, .long], help: "Write a kdump-compressed file here") var output: String?
    @Option(name: .short, help: "makedumpfile dump level") var d = 1
    @Flag(name: .short, help: "Compress pages with zlib") var c = false
    @Flag(name: .short, help: "Compress pages with lzo") var l = false
    @Flag(name: .short, help: "Compress pages with snappy") var p = false
    @Flag(name: .short, help: "Compress pages with zstd") var z = false
    @Flag(name: .customShort("E"), help: "Write an ELF dump file instead (makedumpfile -E: uncompressed, PT_LOADs cut around runs of 256 or more excluded pages)") var elfDump = false
    @Option(help: "Follow this makedumpfile's filter: 1.7.2, 1.7.7 or 1.7.8 (1.7.8 excludes unaccepted blocks under -d 16)") var makedumpfile = "1.7.8"
    @Option(name: .customLong("num-threads"), help: "Threads compressing pages (default: all cores); the output does not depend on it") var threads: Int?
    @Flag(help: "Compute the exact kdump-compressed size without writing") var estimate = false
    @Option(help: "With --estimate: compress this many memmap pages per stratum, drawn with the scenario's seed, instead of all of them; the report gives the 95% margin") var sample: Int?
    @Flag(name: .customLong("mem-usage"), help: "Print makedumpfile --mem-usage's table for the guest (pages a -d 31 dump excludes, by kind)") var memUsage = false
    @Option(help: "transparent_hugepage: always (anonymous memory in 2 MiB folios where aligned) or never") var thp = "never"
    @Flag(name: .customLong("no-vmcoreinfo"), help: "Leave the VMCOREINFO note out of the vmcore (then only -d 0 and -d 1 work)") var noVmcoreinfo = false
    @Flag var json = false

    func run() throws {
        try Cocomem.guarded {
            let compressions = [(c, DumpCompression.zlib), (l, .lzo), (p, .snappy), (z, .zstd)].filter(\.0)
            guard compressions.count <= 1 else { throw CocomemError(.invalidArgument, "choose at most one of -c, -l, -p, -z") }
            guard let version = MakedumpfileVersion(rawValue: makedumpfile) else {
                throw CocomemError(.invalidArgument, "unknown makedumpfile version '\(makedumpfile)' (1.7.2, 1.7.7 or 1.7.8)")
            }
            let options = DumpOptions(dumpLevel: d, compression: compressions.first?.1 ?? .none, makedumpfile: version,
                                      threads: threads ?? ProcessInfo.processInfo.activeProcessorCount)
            guard elf != nil || output != nil || estimate || memUsage else {
                throw CocomemError(.invalidArgument, "nothing to do: give --elf PATH, -o PATH, --estimate or --mem-usage")
            }
            var image: GuestMemoryImage
            if let input {
                guard elf == nil else { throw CocomemError(.invalidArgument, "--elf writes a simulated guest's /proc/vmcore; an input file is one already (for makedumpfile -E give -E -o PATH)") }
                guard !noVmcoreinfo else { throw CocomemError(.invalidArgument, "--no-vmcoreinfo applies to simulated guests; an input file keeps its notes") }
                image = GuestMemoryImage(input: try ELFInput(path: input))
            } else {
                let r = try guest.boot(crashKernel: try ByteCount.parse(crashKernel).value)
                if case .terminated(let why) = r.outcome { throw CocomemError(.invalidScenario, "the guest died before it could crash into kdump: \(why)") }
                guard thp == "always" || thp == "never" else { throw CocomemError(.invalidArgument, "thp '\(thp)' is not always or never") }
                image = try CaptureView.image(from: r, seed: r.scenario.seed, transparentHugepages: thp == "always")
            }
            if noVmcoreinfo { image.vmcoreinfo = nil }
            if memUsage {
                guard !elfDump else { throw CocomemError(.invalidArgument, "Commandline parameter is invalid: --mem-usage writes no file; leave out -E") }
                guard image.input == nil else { throw CocomemError(.invalidArgument, "--mem-usage reads the running guest (makedumpfile reads /proc/kcore), not a vmcore file") }
                let u = try DumpTool.memUsage(image: image, makedumpfile: version, threads: options.threads)
                print(json ? u.json.serialized() : u.text, terminator: json ? "\n" : "")
                return
            }
            if let sample, sample < 2 || sample > 1 << 24 {
                throw CocomemError(.invalidArgument, "--sample \(sample) is not between 2 and 16777216 pages")
            }
            let sampling = sample.map { EstimateSampling(pagesPerStratum: $0, seed: guest.seed) }
            let result = try DumpTool.run(image: image, options: options, elf: elf, output: output, estimateOnly: estimate, sampling: sampling,
                                          elfDump: elfDump)
            print(json ? result.json.serialized() : result.text, terminator: json ? "\n" : "")
        }
    }
}

struct Kexec: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Boot a guest, kexec_load or kexec_file_load a new kernel into it, kexec -e, and boot the next kernel from the acceptance state the first left.",
        discussion: "Segments are placed as the kernel (kexec_file_load) or kexec-tools (kexec_load) place them on x86-64. Kernels 6.16 and later accept the destinations at load; older ones let the relocation touch unaccepted memory, which kills the guest.")
    @OptionGroup var guest: ScenarioOptions
    @Option(help: "kexec_file_load (kexec -s) or kexec_load (kexec -c)") var syscall = "kexec_file_load"
    @Flag(help: "Load a crash image into the crashkernel= region (kexec -p); it is only loaded") var crash = false
    @Option(name: .customLong("crashkernel"), help: "crashkernel= reservation (default: 256M with --crash, none otherwise)") var crashKernel: String?
    @Option(help: "Initrd size (0: none)") var initrd = "64M"
    @Option(name: .customLong("kernel-size"), help: "bzImage file size") var kernelSize = "14M"
    @Option(name: .customLong("init-size"), help: "setup_header.init_size (default: the scenario's decompressed kernel footprint, 64M)") var initSize: String?
    @Option(name: .customLong("kernel-alignment"), help: "setup_header.kernel_alignment (CONFIG_PHYSICAL_ALIGN)") var kernelAlignment = "2M"
    @Option(name: .customLong("cmdline-len"), help: "Command line length including the NUL") var cmdlineLen: UInt64 = 128
    @Option(name: .customLong("next-kernel"), help: "Generation of the kernel kexec boots (default: the running one's)") var nextKernel: String?
    @Flag(name: .customLong("load-only"), help: "Load without executing (kexec -l)") var loadOnly = false
    @Flag var json = false

    func run() throws {
        try Cocomem.guarded {
            var s = try guest.scenario()
            s.kernel.crashKernelBytes = try crashKernel.map { try ByteCount.parse($0).value } ?? (crash ? 256 << 20 : 0)
            var plan = KexecPlan()
            guard let sc = KexecSyscall(rawValue: syscall) else { throw CocomemError(.invalidArgument, "syscall '\(syscall)' is not kexec_file_load or kexec_load") }
            plan.request.syscall = sc
            plan.request.type = crash ? .crash : .normal
            var p = KexecPayload()
            p.initrdBytes = try ByteCount.parse(initrd).value
            p.kernelFileBytes = try ByteCount.parse(kernelSize).value
            p.initSize = try initSize.map { try ByteCount.parse($0).value } ?? s.kernel.kernelInitBytes
            s.kernel.kernelInitBytes = p.initSize
            p.kernelAlignment = try ByteCount.parse(kernelAlignment).value
            guard p.kernelAlignment >= 4096, p.kernelAlignment & (p.kernelAlignment - 1) == 0 else {
                throw CocomemError(.invalidArgument, "kernel-alignment must be a power of two of at least 4K")
            }
            guard p.initSize > 0, cmdlineLen >= 1, cmdlineLen <= 1 << 20 else {
                throw CocomemError(.invalidArgument, "init-size must be positive and cmdline-len between 1 and 1M")
            }
            p.cmdlineBytes = cmdlineLen
            if let v = nextKernel {
                guard let kv = KernelVersion(rawValue: v) else { throw CocomemError(.invalidArgument, "next-kernel '\(v)' is not one of 6.5, 6.11, 6.12, 6.16, 7.0") }
                plan.nextKernel = kv
            }
            plan.execute = !loadOnly
            let sim = BootSimulation(scenario: s, calibration: try loadCalibration(guest.calibration))
            plan.request.payload = p
            let r = try sim.runKexec(plan)
            print(json ? r.json.serialized() : r.text, terminator: json ? "\n" : "")
        }
    }
}

struct Accept: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the EFI stub and accept_memory() alone on a memory map and a list of calls.")
    @Option(help: "Memory map in the kernel's efi=debug format or JSON") var memmap: String
    @Option(help: "File with one 'start size' accept_memory() call per line") var calls: String?
    @Flag var json = false

    func run() throws {
        try Cocomem.guarded {
            guard let m = FileManager.default.contents(atPath: memmap).flatMap({ String(data: $0, encoding: .utf8) }) else {
                throw CocomemError(.io, "cannot read memory map '\(memmap)'")
            }
            var cs: [(UInt64, UInt64)] = []
            if let calls {
                guard let c = FileManager.default.contents(atPath: calls).flatMap({ String(data: $0, encoding: .utf8) }) else {
                    throw CocomemError(.io, "cannot read calls file '\(calls)'")
                }
                cs = try AcceptTool.parseCalls(c)
            }
            let out = try AcceptTool.run(map: AcceptTool.parseMap(m), calls: cs, calibration: Calibration.builtIn())
            print(out.json.serialized(pretty: true))
        }
    }
}

struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Compare the model with published measurements; non-zero exit if one is out of tolerance.")
    @Option var calibration: String?
    func run() throws {
        try Cocomem.guarded {
            let rows = try PublishedFigures.evaluate(calibration: loadCalibration(calibration))
            print(PublishedFigures.table(rows), terminator: "")
            if rows.contains(where: { !$0.withinTolerance }) { throw ExitCode(1) }
        }
    }
}

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Time the simulator itself (wall clock, peak memory) on large guests.")
    @Option(help: "Sizes to boot") var sizes = "4G,64G,1T,4T"
    @Option(help: "Instead of booting: time the host model (fault in + accept at 2M and 4K, 10% conversions) on a TD of this size") var host: String?
    func run() throws {
        try Cocomem.guarded {
            if let h = host { print(try BenchRunner.runHost(size: h), terminator: ""); return }
            print(try BenchRunner.run(sizes: sizes.split(separator: ",").map(String.init)), terminator: "")
        }
    }
}

struct Host: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a host-side TDX scenario (KVM's TDX MMU on the TDX module): operation log, debugfs stats, SEAMCALLs, outcome.",
        discussion: "Without FILE, runs the built-in 4 GiB / 8-vCPU TD of seed 004's [5] and [6]; --print-default shows it as a file to edit.")
    @Argument(help: "Host scenario file (see --print-default for the format)") var file: String?
    @Flag(help: "JSON output") var json = false
    @Flag(help: "Print the operation log") var log = false
    @Flag(name: .customLong("print-default"), help: "Print the built-in scenario and exit") var printDefault = false
    @Option(help: "Override: lpage_info pre-check on or off") var precheck: String?
    @Option(name: .customLong("accept-level"), help: "Override: inhibit, per-fault or none") var acceptLevel: String?
    @Option(help: "Override: conversion policy (wip-hugetlb, zap-first, sept-first, multi-folio)") var policy: String?
    @Flag(name: .customLong("check-invariants"), help: "Check every invariant after every host operation") var check = false
    @Option var calibration: String?

    func run() throws {
        if printDefault { print(HostScenario.seed004); return }
        try Cocomem.guarded {
            var text = HostScenario.seed004
            if let f = file {
                guard let d = FileManager.default.contents(atPath: f), let t = String(data: d, encoding: .utf8) else {
                    throw CocomemError(.io, "cannot read host scenario '\(f)'")
                }
                text = t
            }
            var s = try HostScenario.parse(text)
            if let p = precheck {
                guard p == "on" || p == "off" else { throw CocomemError(.invalidArgument, "--precheck must be on or off") }
                s.options.lpagePrecheck = p == "on"
            }
            if let a = acceptLevel {
                guard let v = AcceptLevelPolicy(rawValue: a) else { throw CocomemError(.invalidArgument, "--accept-level must be inhibit, per-fault or none") }
                s.options.acceptLevelPolicy = v
            }
            if let p = policy {
                guard let v = ConversionPolicy(rawValue: p) else { throw CocomemError(.invalidArgument, "--policy must be wip-hugetlb, zap-first, sept-first or multi-folio") }
                s.options.conversionPolicy = v
            }
            if check { s.options.checkInvariants = true }
            let r = try HostRun(s, calibration: loadCalibration(calibration), log: log)
            try r.run()
            if json { print(r.json.serialized()) } else { print(r.text, terminator: "") }
        }
    }
}
