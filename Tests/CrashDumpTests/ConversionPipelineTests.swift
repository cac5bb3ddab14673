@testable import CrashDump
import Foundation
import GuestKernel
import MemoryModel
import Simulation
import TestSupport
import Testing

/// The conversion pipeline of issue 19: batches compressed into reused slot
/// buffers on worker threads and written in order, and `-E` segments copied
/// by the kernel, give what a page-at-a-time conversion gives.
@Suite struct ConversionPipelineTests {
    /// One slot of the pipeline under test: which item it holds and its value.
    final class Box: @unchecked Sendable { var item = -1, value = 0 }

    /// Items reach `consume` in the order they were taken, each in the slot
    /// it was produced into, for any thread and slot count, with uneven
    /// work per item (seeded).
    @Test func pipelineKeepsTheOrder() throws {
        var rng = SplitMix64(seed: 19)
        for _ in 0..<40 {
            let threads = Int(rng.next() % 4) + 1, n = Int(rng.next() % 300)
            let slots = (0..<(threads == 1 ? 1 : threads + Int(rng.next() % 3) + 1)).map { _ in Box() }
            let work = (0..<n).map { _ in Int(rng.next() % 2000) }
            var i = 0
            var seen: [Int] = []
            try orderedPipeline(threads: threads, slots: slots, next: { () -> Int? in
                defer { i += 1 }
                return i < n ? i : nil
            }, produce: { _, item, box in
                var v = item
                for k in 0..<work[item] { v = v &* 31 &+ k }   // uneven work, so workers finish out of order
                box.item = item
                box.value = v
            }, consume: { item, box in
                #expect(box.item == item)
                seen.append(item)
            })
            #expect(seen == Array(0..<n), "threads \(threads), slots \(slots.count)")
        }
    }

    struct Stop: Error {}

    /// An error from `consume` stops the pipeline and is rethrown, with no
    /// item consumed after it and no worker left running.
    @Test func pipelineStopsOnAnError() throws {
        for threads in [1, 2, 3] {
            var i = 0, consumed = 0
            #expect(throws: Stop.self) {
                try orderedPipeline(threads: threads, slots: (0..<(threads + 2)).map { _ in Box() }, next: { () -> Int? in
                    defer { i += 1 }
                    return i < 1000 ? i : nil
                }, produce: { _, item, box in box.item = item }, consume: { item, _ in
                    if item == 10 { throw Stop() }
                    consumed += 1
                })
            }
            #expect(consumed == 10)
        }
    }

    func vmcore(_ dir: String) throws -> String {
        let img = try smallGuestImage(memory: 256 << 20, kernel: .v6_16, workload: .pageCache(96 << 20))
        try ELFVmcore.write(img, to: dir + "/vmcore")
        return dir + "/vmcore"
    }

    static func le64(_ d: Data, _ o: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(d[o + $1]) << (8 * UInt64($1)) } }
    static func le32(_ d: Data, _ o: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(d[o + $1]) << (8 * UInt32($1)) } }

    /// A converted file's descriptors and page data equal a page-at-a-time
    /// conversion of the same input: each dumpable page read alone, checked
    /// for zeros and compressed by a fresh compressor. Batches of 1024
    /// pages, one or three threads.
    @Test(arguments: [DumpCompression.zlib, .lzo])
    func batchedConversionEqualsPageByPage(compression: DumpCompression) throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let input = try ELFInput(path: try vmcore(dir))
        let image = GuestMemoryImage(input: input)
        for threads in [1, 3] {
            let w = try KdumpCompressedWriter(image: image, options: DumpOptions(dumpLevel: 1, compression: compression, makedumpfile: .v1_7_2, threads: threads))
            let out = dir + "/out\(threads)"
            try w.write(to: out)
            let file = try Data(contentsOf: URL(fileURLWithPath: out))
            let dataStart = w.descriptorOffset + 24 * w.filtered.dumpableCount
            var d = Int(w.descriptorOffset), pages = 0, zeros = 0, stored = 0
            var page = [UInt8](repeating: 0, count: 4096)
            for r in w.filtered.dumpable {
                for pfn in r {
                    page.withUnsafeMutableBytes { input.read(paddr: pfn * 4096, into: $0) }
                    let offset = Self.le64(file, d), size = Int(Self.le32(file, d + 8)), flags = Self.le32(file, d + 12)
                    if page.allSatisfy({ $0 == 0 }) {
                        #expect(offset == dataStart && size == 4096 && flags == 0, "zero page \(pfn)")
                        zeros += 1
                    } else {
                        let expected = try PageCompressor(compression).compress(page)
                        #expect(flags == (expected == nil ? 0 : compression.rawValue), "page \(pfn)")
                        #expect(Array(file[Int(offset)..<(Int(offset) + size)]) == (expected ?? page), "page \(pfn)")
                        stored += 1
                    }
                    d += 24
                    pages += 1
                }
            }
            #expect(UInt64(d) == dataStart)
            #expect(pages > 2 * KdumpCompressedWriter.batchPages && zeros > 0 && stored > 0)
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: dir + "/out1")) == Data(contentsOf: URL(fileURLWithPath: dir + "/out3")))
    }

    /// `-E` of an input file, whose segments the kernel copies (`sendfile`):
    /// every PT_LOAD's data equals the input's memory read page by page.
    @Test func elfCopyEqualsTheInputsMemory() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let input = try ELFInput(path: try vmcore(dir))
        let w = try ELFDumpWriter(image: GuestMemoryImage(input: input), options: DumpOptions(dumpLevel: 1, compression: .none, makedumpfile: .v1_7_2, threads: 2))
        try w.write(to: dir + "/out")
        let file = try Data(contentsOf: URL(fileURLWithPath: dir + "/out"))
        let phoff = Int(Self.le64(file, 32)), phnum = Int(file[56]) | Int(file[57]) << 8
        var checked: UInt64 = 0
        for i in 0..<phnum {
            let p = phoff + 56 * i
            guard Self.le32(file, p) == ELFProgramHeader.load else { continue }
            let offset = Int(Self.le64(file, p + 8)), paddr = Self.le64(file, p + 24), filesz = Int(Self.le64(file, p + 32))
            var memory = [UInt8](repeating: 0xaa, count: filesz)
            memory.withUnsafeMutableBytes { input.read(paddr: paddr, into: $0) }
            #expect(Array(file[offset..<(offset + filesz)]) == memory, "PT_LOAD \(i) at \(hex(paddr))")
            checked += UInt64(filesz)
        }
        #expect(checked > 64 << 20)
    }

    /// `-E` of a file that shrank after it was opened: the copy comes up
    /// short, the write fails with an error and leaves no file.
    @Test func elfWriteOfAShrunkFileFails() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = try vmcore(dir)
        let input = try ELFInput(path: path)
        let w = try ELFDumpWriter(image: GuestMemoryImage(input: input), options: DumpOptions(dumpLevel: 0, compression: .none, threads: 2))
        let l = try #require(input.segments.max { $0.offset < $1.offset })
        #expect(truncate(path, off_t(l.offset + l.filesz / 2)) == 0)
        #expect(throws: CocomemError.self) { try w.write(to: dir + "/out") }
        #expect(!FileManager.default.fileExists(atPath: dir + "/out"))
    }
}
