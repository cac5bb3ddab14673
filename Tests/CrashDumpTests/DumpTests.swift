import CostModel
import CrashDump
import Foundation
import GuestKernel
import MemoryModel
import Reports
import Simulation
import TestSupport
import Testing

@Suite struct DumpTests {
    @Test func captureViewHasEveryClassWhereTheSimulationPutIt() throws {
        let img = try smallGuestImage()
        var byClass: [PageClass: UInt64] = [:]
        img.forEachRun { byClass[$1, default: 0] += UInt64($0.count) }
        #expect(byClass[.unaccepted, default: 0] > (512 << 20) >> 12)
        #expect(byClass[.memmap, default: 0] > 0 && byClass[.kernelText, default: 0] > 0)
        #expect(byClass[.pageCache, default: 0] >= (64 << 20) >> 12)
        // [0, 1 MiB) is not in any PT_LOAD, nor the crash kernel.
        #expect(img.loads.allSatisfy { $0.start >= 1 << 20 })
        #expect(img.ramPages < (1 << 30) >> 12 - (64 << 20) >> 12)
    }

    /// The size formula equals the written file to the byte, at every level
    /// and with every compressor, and the estimate's report equals the write's.
    @Test(arguments: [(0, DumpCompression.zlib), (1, .zlib), (31, .zlib), (31, .lzo), (31, .snappy), (31, .zstd), (17, .none)])
    func estimateEqualsWrittenSize(level: Int, compression: DumpCompression) throws {
        let img = try smallGuestImage(memory: 512 << 20)
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let w = try KdumpCompressedWriter(image: img, options: DumpOptions(dumpLevel: level, compression: compression, threads: 2))
        let report = try w.write(to: dir + "/dump")
        let size = try FileManager.default.attributesOfItem(atPath: dir + "/dump")[.size] as! UInt64
        let estimate = try w.estimate()
        #expect(size == estimate.fileSize)
        #expect(report == estimate)
        #expect(level & 1 == 0 || report.zeroPages > 0)
    }

    /// A sampled estimate: with a sample at least as large as every stratum
    /// it is the exact estimate (so the strata hold every memmap page once);
    /// with a small one it compresses only the sample, stays within its 95%
    /// margin of the exact size, and repeats to the byte with the same seed.
    @Test(arguments: [DumpCompression.zlib, .lzo])
    func sampledEstimateBracketsTheExactSize(compression: DumpCompression) throws {
        let img = try smallGuestImage(memory: 2 << 30, kernel: .v6_16, workload: .touch(64 << 20))
        let w = try KdumpCompressedWriter(image: img, options: DumpOptions(dumpLevel: 31, compression: compression, threads: 2))
        let exact = try w.estimate()
        let whole = try w.estimate(sampling: EstimateSampling(pagesPerStratum: 1 << 20, seed: 1))
        #expect(whole == exact)
        let sampled = try w.estimate(sampling: EstimateSampling(pagesPerStratum: 256, seed: 1))
        #expect(sampled.sampledPages > 0 && sampled.sampledPages < sampled.sampledPopulation)
        #expect(sampled.fileSizeMargin > 0)
        let error = sampled.fileSize > exact.fileSize ? sampled.fileSize - exact.fileSize : exact.fileSize - sampled.fileSize
        #expect(error <= sampled.fileSizeMargin, "sampled \(sampled.fileSize) ± \(sampled.fileSizeMargin), exact \(exact.fileSize)")
        #expect(sampled.dumpablePages == exact.dumpablePages && sampled.zeroPages == exact.zeroPages)
        #expect(try w.estimate(sampling: EstimateSampling(pagesPerStratum: 256, seed: 1)) == sampled)
    }

    /// Compressing on several threads writes the same bytes as on one.
    @Test func threadCountDoesNotChangeTheFile() throws {
        let img = try smallGuestImage(memory: 512 << 20)
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for t in [1, 3] {
            try KdumpCompressedWriter(image: img, options: DumpOptions(dumpLevel: 31, compression: .zlib, threads: t)).write(to: dir + "/t\(t)")
        }
        let a = try Data(contentsOf: URL(fileURLWithPath: dir + "/t1")), b = try Data(contentsOf: URL(fileURLWithPath: dir + "/t3"))
        #expect(a == b)
    }

    @Test func elfReadsBackTheGuestPages() throws {
        let img = try smallGuestImage()
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try ELFVmcore.write(img, to: dir + "/vmcore")
        let data = try Data(contentsOf: URL(fileURLWithPath: dir + "/vmcore"))
        #expect(UInt64(data.count) == ELFVmcore.fileSize(img))
        // Find each PT_LOAD and compare a spread of pages with the image.
        let phnum = Int(data[56]) | Int(data[57]) << 8
        var checked = 0
        for i in 1..<phnum {
            let ph = 64 + i * 56
            func u64(_ o: Int) -> UInt64 { data[(ph + o)..<(ph + o + 8)].enumerated().reduce(0) { $0 | UInt64($1.1) << (8 * $1.0) } }
            let off = u64(8), paddr = u64(24), size = u64(32)
            var pfn = paddr >> 12
            while pfn < (paddr + size) >> 12 {
                let at = Int(off + (pfn << 12) - paddr)
                #expect(Array(data[at..<(at + 4096)]) == img.page(GuestFrameNumber(pfn)))
                checked += 1
                pfn += 997
            }
        }
        #expect(checked > 100)
    }

    /// A missing directory, a target that cannot be replaced, and a level
    /// that needs struct pages are clear errors; a failed write leaves no
    /// temporary file behind.
    /// A truncated, corrupt or foreign file given to the converter is a
    /// clear error naming what is wrong, never a trap.
    @Test func badInputFilesAreRejectedWithTheReason() throws {
        let img = try smallGuestImage(memory: 256 << 20, structures: false)
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try ELFVmcore.write(img, to: dir + "/vmcore")
        let good = try Data(contentsOf: URL(fileURLWithPath: dir + "/vmcore"))
        func reason(_ bytes: Data) -> String {
            let p = dir + "/bad"
            _ = FileManager.default.createFile(atPath: p, contents: bytes)
            do { _ = try ELFInput(path: p); return "accepted" } catch let e as CocomemError { return e.message } catch { return "\(error)" }
        }
        func patched(_ f: (inout Data) -> Void) -> Data { var d = good; f(&d); return d }
        let noteOffset = Int(good[72]) | Int(good[73]) << 8 | Int(good[74]) << 16
        #expect(reason(good.prefix(40)) .contains("shorter than an ELF header"))
        #expect(reason(Data("not a vmcore at all, just some text that is long enough to pass the size check........".utf8)).contains("no ELF magic"))
        #expect(reason(patched { $0[4] = 1 }).contains("ELFCLASS32"))
        #expect(reason(patched { $0[5] = 2 }).contains("big-endian"))
        #expect(reason(patched { $0[16] = 2 }).contains("not ET_CORE"))
        #expect(reason(patched { $0[18] = 183 }).contains("not EM_X86_64"))
        #expect(reason(good.prefix(100)).contains("program headers"))
        #expect(reason(good.prefix(good.count - 4096)).contains("truncated"))
        #expect(reason(patched { $0[noteOffset + 4] = 0xff; $0[noteOffset + 5] = 0xff; $0[noteOffset + 6] = 0xff }).contains("corrupt PT_NOTE"))
        #expect(reason(good) == "accepted")
        #expect(throws: CocomemError.self) { try ELFInput(path: dir + "/does-not-exist") }
        // Levels that need the struct page walk are refused on an input file.
        let input = GuestMemoryImage(input: try ELFInput(path: dir + "/vmcore"))
        #expect(throws: CocomemError.self) { try KdumpCompressedWriter(image: input, options: DumpOptions(dumpLevel: 31)) }
    }

    /// `--mem-usage` counts exactly what a -d 31 dump's report counts, in
    /// makedumpfile's table; 1.7.8 moves the unaccepted blocks into FREE.
    @Test func memUsageMatchesADumpAtLevel31() throws {
        // 2 GiB on 6.16 still has unaccepted blocks after boot. The dump's
        // report is its estimate (held equal to the written file above).
        let img = try smallGuestImage(memory: 2 << 30, kernel: .v6_16, workload: .touch(32 << 20))
        let written = try KdumpCompressedWriter(image: img, options: DumpOptions(dumpLevel: 31, compression: .lzo, threads: 2)).estimate()
        let u = try DumpTool.memUsage(image: img, makedumpfile: .v1_7_8, threads: 2)
        #expect(u.report.zeroPages == written.zeroPages && u.report.freePages == written.freePages && u.report.userPages == written.userPages)
        #expect(u.report.cachePages == written.cachePages && u.report.totalPages == written.totalPages)
        #expect(u.kernelData == written.dumpablePages - written.zeroPages)
        #expect(u.text.contains("FREE\t\t\(String(u.report.freePages).padding(toLength: 16, withPad: " ", startingAt: 0))\tyes\t\tFree pages\n"))
        let old = try DumpTool.memUsage(image: img, makedumpfile: .v1_7_7, threads: 2)
        #expect(old.report.freePages < u.report.freePages)
        #expect(old.report.totalPages == u.report.totalPages)
    }

    @Test func unwritableTargetIsAClearErrorAndLeavesNothing() throws {
        let img = try smallGuestImage(memory: 512 << 20)
        #expect(throws: CocomemError.self) { try ELFVmcore.write(img, to: "/nonexistent-dir/vmcore") }
        #expect(throws: CocomemError.self) { try KdumpCompressedWriter(image: img, options: DumpOptions(dumpLevel: 32)) }
        let bare = try smallGuestImage(memory: 512 << 20, structures: false)
        #expect(throws: CocomemError.self) { try KdumpCompressedWriter(image: bare, options: DumpOptions(dumpLevel: 31)) }
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // The target is a non-empty directory: the final rename fails.
        try FileManager.default.createDirectory(atPath: dir + "/vmcore/x", withIntermediateDirectories: true)
        #expect(throws: CocomemError.self) {
            try KdumpCompressedWriter(image: img, options: DumpOptions(dumpLevel: 1, compression: .zlib)).write(to: dir + "/vmcore")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["vmcore"])
    }
}
