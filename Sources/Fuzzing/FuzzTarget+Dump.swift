import CostModel
import CrashDump
import Foundation
import MemoryModel
import Simulation

extension FuzzTarget {
    /// The calibration file as `--calibration FILE` reads it (from a file:
    /// the size check and the reader are the CLI's), then the cost table;
    /// every value of an accepted file is inside `Calibration.Limits`.
    static func calibration(_ data: [UInt8]) throws {
        let c = try Calibration.load(path: try ScratchFile.shared.holding(data, slot: "calibration"))
        for op in c.ops {
            guard Calibration.Limits.nanoseconds.contains(op.nanoseconds), Calibration.Limits.nanoseconds.contains(op.serialNanoseconds),
                  Calibration.Limits.bytes.contains(Double(op.bytesWritten)) else {
                violated("calibration accepted an operation outside the limits: \(op)")
            }
        }
        guard Calibration.Limits.gibPerSecond.contains(c.coreWriteGiBPerSecond), Calibration.Limits.gibPerSecond.contains(c.sharedWriteGiBPerSecond) else {
            violated("calibration accepted write rates \(c.coreWriteGiBPerSecond), \(c.sharedWriteGiBPerSecond) GiB/s")
        }
        _ = CostTable(c)
    }

    /// The ELF vmcore as `dump --input FILE` reads it: headers, notes,
    /// VMCOREINFO, then the filter's walk of the struct pages through the
    /// file's own page tables (`-d 31`) or zero-page detection alone (`-d 1`,
    /// which needs no VMCOREINFO), and the exact size of the dump —
    /// kdump-compressed uncompressed or with zlib, or `-E` — computed without
    /// writing (`--estimate`). The input's length picks the level and format
    /// (`count % 6`), so every input always runs the same way. The report's
    /// counts are consistent.
    static func elf(_ data: [UInt8]) throws {
        let input = try ELFInput(path: try ScratchFile.shared.holding(data, slot: "vmcore"))
        let image = GuestMemoryImage(input: input)
        let variant = data.count % 6
        let options = DumpOptions(dumpLevel: variant < 3 ? 31 : 1, compression: variant % 3 == 1 ? .zlib : .none, threads: 1)
        let r = try DumpTool.run(image: image, options: options, elf: nil, output: nil, estimateOnly: true, elfDump: variant % 3 == 2)
        checkReport(r.report, image: image, what: "vmcore")
    }

    /// The pages a dump counts: the dumpable and the zero pages are pages of
    /// the PT_LOADs. The exclusion counts may pass the PT_LOADs' pages: as
    /// makedumpfile's `exclude_range()`, a free block's whole `1 << order`
    /// is counted even where it reaches past a PT_LOAD or overlaps an
    /// excluded block (the elf fuzzer's first finding was this invariant,
    /// wrongly written as `excluded <= total`).
    static func checkReport(_ r: DumpReport, image: GuestMemoryImage, what: String) {
        guard r.totalPages == image.ramPages, r.dumpablePages <= r.totalPages, r.zeroPages <= r.totalPages else {
            violated("\(what): report of \(r.totalPages) pages (\(image.ramPages) in the PT_LOADs), \(r.dumpablePages) dumpable, \(r.zeroPages) zero")
        }
    }
}
