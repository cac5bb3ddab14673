import CrashDump
import Foundation
import MemoryModel
public import Simulation

extension DumpTool.Result {
    /// makedumpfile's `print_report()` layout.
    public var text: String {
        let r = report
        let remaining = r.totalPages - r.excluded
        var o = ""
        o += "Original pages  : \(hex16(r.totalPages))\n"
        o += "  Excluded pages   : \(hex16(r.excluded))\n"
        if r.isELF { o += "     in ELF format : \(hex16(r.elfExcludedPages))\n" }
        o += "    Pages filled with zero  : \(hex16(r.zeroPages))\n"
        o += "    Non-private cache pages : \(hex16(r.cachePages))\n"
        o += "    Private cache pages     : \(hex16(r.privateCachePages))\n"
        o += "    User process data pages : \(hex16(r.userPages))\n"
        o += "    Free pages              : \(hex16(r.freePages))\n"
        o += "    Hwpoison pages          : \(hex16(r.hwpoisonPages))\n"
        o += "    Offline pages           : \(hex16(r.offlinePages))\n"
        o += "  Remaining pages  : \(hex16(remaining))\n"
        if r.isELF { o += "     in ELF format : \(hex16(r.totalPages - r.elfExcludedPages))\n" }
        let kept = r.isELF ? r.totalPages - r.elfExcludedPages : remaining
        let pct = r.totalPages == 0 ? 0 : Double(kept) * 100 / Double(r.totalPages)
        o += "  (The number of pages is reduced to \(Int(pct))%.)\n"
        o += "Memory Hole     : \(hex16(maxMapnr - r.totalPages))\n"
        o += "--------------------------------------------------\n"
        o += "Total pages     : \(hex16(maxMapnr))\n\n"
        o += "Write bytes     : \(r.fileSize)\n"
        if r.sampledPages > 0 {
            o += "Estimate margin : ±\(r.fileSizeMargin) bytes at 95% (\(r.sampledPages) of \(r.sampledPopulation) memmap pages compressed)\n"
        }
        if let e = elfBytes { o += "ELF vmcore bytes: \(e)\n" }
        if let t = makedumpfileCPU {
            o += "makedumpfile CPU: \(format3(t.value)) s on one thread (\(format3(t.low))-\(format3(t.high)) s over the calibration runs; cocomem's model of makedumpfile 1.7.2)\n"
        }
        for w in written { o += "wrote \(w)\n" }
        return o
    }

    public var json: JSON {
        var classes: [(String, JSON)] = []
        for c in PageClass.allCases { classes.append((c.description, .uint(report.pagesByClass[c] ?? 0))) }
        return .object([
            ("total_pages", .uint(report.totalPages)), ("max_mapnr", .uint(maxMapnr)),
            ("excluded", .object([("zero", .uint(report.zeroPages)), ("cache", .uint(report.cachePages)),
                                  ("private_cache", .uint(report.privateCachePages)), ("user", .uint(report.userPages)),
                                  ("free", .uint(report.freePages)), ("offline", .uint(report.offlinePages)),
                                  ("hwpoison", .uint(report.hwpoisonPages))])),
            ("dumpable_pages", .uint(report.dumpablePages)),
            ("format", .string(report.isELF ? "elf" : "kdump-compressed")),
            ("dump_bytes", .uint(report.fileSize)),
            ("dump_bytes_exact", .bool(report.sampledPages == 0)),
            ("dump_bytes_margin95", .uint(report.fileSizeMargin)),
            ("elf_excluded", report.isELF ? .uint(report.elfExcludedPages) : .null),
            ("sampled_pages", .uint(report.sampledPages)), ("sampled_population", .uint(report.sampledPopulation)),
            ("elf_bytes", elfBytes.map { .uint($0) } ?? .null),
            ("pages_by_class", .object(classes)),
            ("makedumpfile_cpu_s", makedumpfileCPU.map { .object([("value", .double($0.value)), ("low", .double($0.low)), ("high", .double($0.high))]) } ?? .null),
            ("written", .array(written.map { .string($0) })),
        ])
    }
}

extension DumpTool.MemUsage {
    public var text: String {
        let r = report
        func col(_ v: UInt64) -> String { String(v).padding(toLength: 16, withPad: " ", startingAt: 0) }
        var o = "\nTYPE\t\tPAGES\t\t\tEXCLUDABLE\tDESCRIPTION\n"
        o += "----------------------------------------------------------------------\n"
        o += "ZERO\t\t\(col(r.zeroPages))\tyes\t\tPages filled with zero\n"
        o += "NON_PRI_CACHE\t\(col(r.cachePages))\tyes\t\tCache pages without private flag\n"
        o += "PRI_CACHE\t\(col(r.privateCachePages))\tyes\t\tCache pages with private flag\n"
        o += "USER\t\t\(col(r.userPages))\tyes\t\tUser process pages\n"
        o += "FREE\t\t\(col(r.freePages))\tyes\t\tFree pages\n"
        o += "KERN_DATA\t\(col(kernelData))\tno\t\tDumpable kernel data \n\n"
        o += "page size:\t\t\(col(4096))\n"
        o += "Total pages on system:\t\(col(r.totalPages))\n"
        o += "Total size on system:\t\(col(r.totalPages * 4096)) Byte\n"
        return o
    }

    public var json: JSON {
        .object([("zero", .uint(report.zeroPages)), ("non_pri_cache", .uint(report.cachePages)),
                 ("pri_cache", .uint(report.privateCachePages)), ("user", .uint(report.userPages)),
                 ("free", .uint(report.freePages)), ("kern_data", .uint(kernelData)),
                 ("page_size", .uint(4096)), ("total_pages", .uint(report.totalPages))])
    }
}
