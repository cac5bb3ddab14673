public import CostModel
public import CrashDump
import GuestKernel
public import MemoryModel

/// `cocomem dump`: writes the capture kernel's vmcore and/or a
/// kdump-compressed file from a booted guest, or estimates its size.
public enum DumpTool {
    public struct Result: Sendable {
        public var report: DumpReport
        public var maxMapnr: UInt64
        public var elfBytes: UInt64?
        public var written: [String]
        /// The crashed guest's record (`BootResult.recordAtTheCrash`), set
        /// by whoever booted it; empty for an input vmcore file.
        public var record = RunRecord()
        /// How long makedumpfile itself would spend on this dump, in CPU
        /// seconds on one thread (`MakedumpfileCost`): the model's value and
        /// the ends of the calibration runs' range; nil when not asked or
        /// the compressor was not calibrated.
        public var makedumpfileCPU: (value: Double, low: Double, high: Double)? = nil
    }

    /// makedumpfile's CPU seconds for a dump of `report` under the
    /// calibration's `makedumpfile` model (issue 17 §3): the value and the
    /// ends of the calibration runs' range; nil if the file has no model or
    /// the compressor was not calibrated.
    public static func makedumpfileCPU(_ r: DumpReport, compression: DumpCompression, calibration: Calibration) -> (value: Double, low: Double, high: Double)? {
        guard let m = calibration.makedumpfile else { return nil }
        let name = r.isELF ? "none" : "\(compression)"
        let stored = r.totalPages - r.excluded
        guard let v = m.cpuSeconds(totalPages: r.totalPages, storedPages: stored, compressor: name),
              let lo = m.cpuSeconds(totalPages: r.totalPages, storedPages: stored, compressor: name, end: .low),
              let hi = m.cpuSeconds(totalPages: r.totalPages, storedPages: stored, compressor: name, end: .high) else { return nil }
        return (v, lo, hi)
    }

    /// `makedumpfile --mem-usage`: the page counts a `-d 31` dump would
    /// exclude, by kind, and what would remain (`print_mem_usage()`).
    public struct MemUsage: Sendable {
        public var report: DumpReport
        /// `pfn_original - pfn_excluded`.
        public var kernelData: UInt64 { report.totalPages - report.excluded }
    }

    /// The hint an exact estimate of a simulated guest shows when it will
    /// take long (`ProgressTask.slowHint`): the exact estimate compresses
    /// every memmap page (2 M at 512 GiB), the sampled one a few thousand
    /// per stratum, with the 95% margin in the report (docs/PERFORMANCE.md).
    public static let sampledEstimateHint =
        "note: an exact estimate compresses every memmap page; --sample 4096 sizes the dump in a fraction of the time, with a 95% margin"

    /// Counts what `makedumpfile --mem-usage` reports for the guest: the
    /// filter at level 31 and zero-page detection on what it keeps (the
    /// same counts as a `-d 31` dump's report), without compressing.
    public static func memUsage(image: GuestMemoryImage, makedumpfile: MakedumpfileVersion, threads: Int) throws -> MemUsage {
        let options = DumpOptions(dumpLevel: 31, compression: .none, makedumpfile: makedumpfile, threads: threads)
        return MemUsage(report: try KdumpCompressedWriter(image: image, options: options).estimate())
    }

    /// Writes what is asked (`elf`, `output`) and reports; with
    /// `estimateOnly` nothing is written. The report of a written dump
    /// comes from the write itself; only when no dump is written is the
    /// size estimated (`estimate(sampling:)`, exact when `sampling` is nil),
    /// so no page is read or compressed twice. `elfDump` writes
    /// makedumpfile's `-E` ELF dump instead of the kdump-compressed file.
    ///
    /// Before anything is written, the outputs are checked
    /// (`OutputPaths.check`): not one file twice, not the input, never a
    /// non-regular file, and an existing file only with `force` (makedumpfile's `-f`).
    ///
    /// `progress`, if given, is told each file written and the pages an
    /// exact estimate compresses; an exact estimate of a simulated guest
    /// carries the sampled estimate as its hint (`sampledEstimateHint`).
    public static func run(image: GuestMemoryImage, options: DumpOptions, elf: String?, output: String?, estimateOnly: Bool,
                           sampling: EstimateSampling? = nil, elfDump: Bool = false, force: Bool = false,
                           progress: (any ProgressReporter)? = nil) throws -> Result {
        if !estimateOnly {
            var outputs: [(option: String, path: String)] = []
            if let elf, image.input == nil { outputs.append(("--elf", elf)) }
            if let output { outputs.append(("-o", output)) }
            try OutputPaths.check(outputs: outputs, inputs: image.input.map { [$0.path] } ?? [], force: force)
        }
        let estimate: () throws -> DumpReport, write: (String) throws -> DumpReport
        if elfDump {
            guard sampling == nil else { throw CocomemError(.invalidArgument, "--sample applies to the kdump-compressed estimate; -E sizes are exact") }
            let writer = try ELFDumpWriter(image: image, options: options)
            (estimate, write) = ({ writer.estimate() }, { try writer.write(to: $0, progress: progress) })
        } else {
            let writer = try KdumpCompressedWriter(image: image, options: options)
            guard sampling == nil || (estimateOnly && image.input == nil) else {
                throw CocomemError(.invalidArgument, "--sample applies to --estimate of a simulated guest (a written file and an input file are sized exactly)")
            }
            let hint = sampling == nil && image.input == nil && image.kernel != nil ? sampledEstimateHint : nil
            (estimate, write) = ({ try writer.estimate(sampling: sampling, progress: progress, slowHint: hint) },
                                 { try writer.write(to: $0, progress: progress) })
        }
        var written: [String] = []
        if !estimateOnly, let elf, image.input == nil { try ELFVmcore.write(image, to: elf, progress: progress); written.append(elf) }
        let report: DumpReport
        if !estimateOnly, let output {
            report = try write(output)
            written.append(output)
        } else {
            report = try estimate()
            try image.input?.checkReads()
        }
        return Result(report: report, maxMapnr: image.maxMapnr, elfBytes: image.input?.fileSize ?? ELFVmcore.fileSize(image), written: written)
    }
}
