import ArgumentParser
import CoCoGuest
import CostModel
import CrashDump
import Foundation
import GuestKernel
import MemoryModel
import Reports
import Simulation

struct Dump: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Boot a guest, crash it into a kdump kernel, and write its vmcore (ELF) and/or a kdump-compressed file.",
        discussion: "Level and compressor flags follow makedumpfile: -d LEVEL (1 zero, 2 cache, 4 private cache, 8 user, 16 free), -c zlib, -l lzo, -p snappy, -z zstd, --num-threads N. Levels above 1 walk the struct pages cocomem generates (kernels 6.12 and later), or, with --input, those in the file, found through its VMCOREINFO. lzo, snappy and zstd are loaded when asked for (liblzo2-2, libsnappy1v5, libzstd1).")
    @OptionGroup var guest: ScenarioOptions
    @Option(name: .customLong("crashkernel"), help: "crashkernel= reservation (accepted when memblock reserves it)") var crashKernel = "256M"
    @Option(name: .customLong("input"), help: "Convert this ELF vmcore instead of booting a guest (makedumpfile -d LEVEL ... in out)") var input: String?
    @Option(name: .customLong("elf"), help: "Write the capture kernel's /proc/vmcore (ELF) here") var elf: String?
    @Option(name: [.short, .long], help: "Write a kdump-compressed file here") var output: String?
    @Option(name: .short, help: "makedumpfile dump level, 0-31") var d = 1
    @Flag(name: .short, help: "Compress pages with zlib") var c = false
    @Flag(name: .short, help: "Compress pages with lzo") var l = false
    @Flag(name: .short, help: "Compress pages with snappy") var p = false
    @Flag(name: .short, help: "Compress pages with zstd") var z = false
    @Flag(name: .customShort("E"), help: "Write an ELF dump file instead (makedumpfile -E: uncompressed, PT_LOADs cut around runs of 256 or more excluded pages)") var elfDump = false
    @Option(help: "Follow this makedumpfile release's filter: 1.7.2, 1.7.7, 1.7.8, 1.7.9 or dev (the development branch after 1.7.9: f50c015 reads Linux 7.1's page.compound_info); 1.7.8 and later exclude unaccepted blocks under -d 16; docs/VERSIONS.md") var makedumpfile = "1.7.8"
    @Option(name: .customLong("num-threads"), help: "Threads compressing pages (default: all cores); the output does not depend on it") var threads: Int?
    @Flag(help: "Compute the exact kdump-compressed size without writing") var estimate = false
    @Option(help: "With --estimate: compress this many memmap pages per stratum (2-16777216), drawn with the scenario's seed, instead of all of them; the report gives the 95% margin") var sample: Int?
    @Flag(name: .customLong("mem-usage"), help: "Print makedumpfile --mem-usage's table for the guest (pages a -d 31 dump excludes, by kind)") var memUsage = false
    @Option(help: "transparent_hugepage: always (anonymous memory in 2 MiB folios where aligned) or never") var thp: THPMode = .never
    @Option(name: .customLong("slub-order"), help: ArgumentHelp("SLUB's slab order (slub_min_order= and slub_max_order=, 0 to 10): slab memory in 2^N-page slab folios; 0 (default) order-0 slab pages. Kernels 6.15 and later", valueName: "N")) var slubOrder: UInt64 = 0
    @Flag(name: [.short, .long], help: "Overwrite an existing dump file (makedumpfile -f); a file that is not a regular one is never replaced") var force = false
    @Flag(name: .customLong("no-vmcoreinfo"), help: "Leave the VMCOREINFO note out of the vmcore (then only -d 0 and -d 1 work)") var noVmcoreinfo = false
    @OptionGroup var json: JSONOption
    @OptionGroup var printScenario: PrintScenarioOption
    @OptionGroup var failOn: FailOnOption
    @OptionGroup var progress: ProgressOption
    @OptionGroup var report: ReportOption
    @OptionGroup var record: RecordOptions

    var compression: DumpCompression {
        [(c, DumpCompression.zlib), (l, .lzo), (p, .snappy), (z, .zstd)].first(where: \.0)?.1 ?? .none
    }

    func validate() throws {
        guard [c, l, p, z].filter({ $0 }).count <= 1 else { throw ValidationError("choose at most one of -c, -l, -p, -z") }
        guard elf != nil || output != nil || estimate || memUsage else {
            throw ValidationError("nothing to do: give --elf PATH, -o PATH, --estimate or --mem-usage")
        }
        if input != nil {
            guard elf == nil else { throw ValidationError("--elf writes a simulated guest's /proc/vmcore; an input file is one already (for makedumpfile -E give -E -o PATH)") }
            guard !noVmcoreinfo else { throw ValidationError("--no-vmcoreinfo applies to simulated guests; an input file keeps its notes") }
        }
        if memUsage {
            guard !elfDump else { throw ValidationError("Commandline parameter is invalid: --mem-usage writes no file; leave out -E") }
            guard input == nil else { throw ValidationError("--mem-usage reads the running guest (makedumpfile reads /proc/kcore), not a vmcore file") }
            guard report.report == nil, record.trace == nil, !record.strip else { throw ValidationError("--report, --trace and --strip draw a dump; --mem-usage prints only its table") }
        }
        if thp == .always, guest.transparentHugepage == .never {
            throw ValidationError("--thp always lays anonymous memory out in transparent huge pages, which --transparent-hugepage never turns off")
        }
        if slubOrder > UInt64(ScenarioFile.DumpStep.maximumSlubOrder) {
            throw ValidationError("--slub-order \(slubOrder) is above \(ScenarioFile.DumpStep.maximumSlubOrder) (MAX_PAGE_ORDER, the largest slub_min_order= takes)")
        }
        if slubOrder > 0, input != nil {
            throw ValidationError("--slub-order lays out a simulated guest's slabs; an input file has its own struct pages")
        }
        if !memUsage, let sample, sample < 2 || sample > 1 << 24 {
            throw ValidationError("--sample \(sample) is not between 2 and 16777216 pages")
        }
    }

    func run() throws {
        if printScenario.on { printScenario.print(try scenarioFile()); return }
        let makedumpfile = try MakedumpfileVersion.parse(self.makedumpfile)
        let options = DumpOptions(dumpLevel: d, compression: compression, makedumpfile: makedumpfile,
                                  threads: threads ?? ProcessInfo.processInfo.activeProcessorCount)
        let inputs = guest.inputs + (input.map { [$0] } ?? [])
        var dumpOutputs: [(option: String, path: String)] = []
        if let elf { dumpOutputs.append(("--elf", elf)) }
        if let output { dumpOutputs.append(("-o", output)) }
        try report.check(inputs: inputs, outputs: dumpOutputs)
        try record.check(inputs: inputs, outputs: dumpOutputs + (report.report.map { [("--report", $0)] } ?? []), textReport: !json.json)
        let progress = self.progress.reporter()
        var image: GuestMemoryImage
        var boot: BootResult? = nil
        // The outcome --fail-on looks at: the crashed guest's boot (a
        // vmcore file has none, so ok).
        var bootOutcome = "ok"
        var crashRecord = RunRecord()
        if let input {
            image = GuestMemoryImage(input: try ELFInput(path: input))
        } else {
            let r = try guest.boot(crashKernel: try ByteCount.parse(crashKernel).value, progress: progress)
            if case .terminated(let why) = r.outcome { throw CocomemError(.invalidScenario, "the guest died before it could crash into kdump: \(why)") }
            image = try CaptureView.image(from: r, seed: r.scenario.seed, transparentHugepages: thp == .always, slabOrder: slubOrder)
            bootOutcome = r.outcomeString
            boot = r
            crashRecord = r.recordAtTheCrash
        }
        if noVmcoreinfo { image.vmcoreinfo = nil }
        if memUsage {
            let u = try DumpTool.memUsage(image: image, makedumpfile: makedumpfile, threads: options.threads)
            print(json.json ? u.json.embedding(try scenarioFile()).serialized() : u.text, terminator: json.json ? "\n" : "")
            try failOn.check(bootOutcome)
            return
        }
        let sampling = sample.map { EstimateSampling(pagesPerStratum: $0, seed: guest.seed) }
        var result = try DumpTool.run(image: image, options: options, elf: elf, output: output, estimateOnly: estimate, sampling: sampling,
                                      elfDump: elfDump, force: force, progress: progress)
        result.record = crashRecord  // what --report/--trace draw (issue 14)
        result.makedumpfileCPU = DumpTool.makedumpfileCPU(result.report, compression: compression, calibration: try guest.calibration.load())
        let records = input == nil ? [("crashed guest", crashRecord)] : []
        print(json.json ? result.json.embedding(try scenarioFile()).serialized() : result.text + record.stripText(records, json: false), terminator: json.json ? "\n" : "")
        if report.report != nil {
            // What each level removes under each version: the filter alone, per range.
            let levels = Array(Set([0, 1, 2, 4, 8, 16, 31, d])).sorted()
            // dev differs from 1.7.9 only where VMCOREINFO names page.compound_info (7.1 and later).
            let names71 = image.vmcoreinfo?.contains("OFFSET(page.compound_info)=") == true
            let comparison = try image.levelComparison(levels: levels, versions: MakedumpfileVersion.allCases.filter { $0 != .dev || names71 })
            try report.write(result.htmlReport(boot: boot, levels: comparison, level: d, version: makedumpfile))
        }
        try record.write(records)
        try failOn.check(bootOutcome)
    }
}
