@testable import CrashDump
import Foundation
import GuestKernel
import MemoryModel
import Simulation
import TestSupport
import Testing

/// The input file's mapping (issue 19): pages are read from it without a
/// copy, give the same dump as reads into a buffer, and a file truncated
/// under it is an error, never a SIGBUS that kills the process.
@Suite struct InputMappingTests {
    func vmcore(_ dir: String) throws -> String {
        let img = try smallGuestImage(memory: 256 << 20, structures: false)
        try ELFVmcore.write(img, to: dir + "/vmcore")
        return dir + "/vmcore"
    }

    /// A mapped range is the file's bytes at the PT_LOAD's offset, and equals what `read` copies.
    @Test func mappedBytesAreTheFileBytes() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let f = try ELFInput(path: try vmcore(dir))
        let file = try Data(contentsOf: URL(fileURLWithPath: f.path))
        let l = try #require(f.segments.first { $0.filesz >= 3 * 4096 })
        let m = try #require(f.mapped(paddr: l.paddr + 4096, count: 2 * 4096))
        #expect(Array(m) == Array(file[Int(l.offset + 4096)..<Int(l.offset + 3 * 4096)]))
        var copy = [UInt8](repeating: 0xaa, count: 2 * 4096)
        copy.withUnsafeMutableBytes { f.read(paddr: l.paddr + 4096, into: $0) }
        #expect(copy == Array(m))
        // Past the file data of the PT_LOAD (its zero-filled tail or beyond) nothing is mapped.
        #expect(f.mapped(paddr: l.paddr + l.memsz - 4096, count: 8192) == nil)
        try f.checkReads()
    }

    /// A truncation after the mapping was handed out: the access reads zeros
    /// (the SIGBUS handler's zero page) and `checkReads` reports it.
    @Test func truncationUnderTheMappingIsAnError() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = try vmcore(dir)
        let f = try ELFInput(path: path)
        let l = try #require(f.segments.max { $0.offset < $1.offset })
        let m = try #require(f.mapped(paddr: l.paddr, count: 4096))
        #expect(truncate(path, off_t(l.offset)) == 0)
        var sum = 0
        for i in stride(from: 0, to: 4096, by: 64) { sum += Int(m[i]) }
        #expect(sum == 0)
        #expect(f.mapped(paddr: l.paddr, count: 4096) == nil)   // the file shrank: no more mapped reads
        #expect(throws: CocomemError.self) { try f.checkReads() }
    }

    /// Minor page faults of the calling thread so far (`RUSAGE_THREAD`, 1 in
    /// <sys/resource.h>, only under _GNU_SOURCE: other tests' threads do not count).
    func threadFaults() -> Int {
        var u = rusage()
        getrusage(__rusage_who_t(1), &u)
        return u.ru_minflt
    }

    /// A populated range (`MADV_POPULATE_READ`) reads the file's bytes
    /// without a page fault; a range of one fault-around window or less is
    /// left to fault in.
    @Test func populatedBytesAreTheFileBytesWithoutFaults() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let f = try ELFInput(path: try vmcore(dir))
        let file = try Data(contentsOf: URL(fileURLWithPath: f.path))
        let pages = 64
        let l = try #require(f.segments.first { $0.filesz >= UInt64(pages + 1) * 4096 })
        let m = try #require(f.mapped(paddr: l.paddr + 4096, count: pages * 4096))
        #expect(!f.populate(UnsafeRawBufferPointer(rebasing: m[0..<(ELFInput.faultAroundPages * 4096)])))
        // An older kernel (before 5.14) answers EINVAL: the pages then fault in as before.
        let populated = f.populate(m)
        let before = threadFaults()
        var sum = 0
        for i in stride(from: 0, to: m.count, by: 4096) { sum &+= Int(m[i]) }
        if populated { #expect(threadFaults() == before) }
        #expect(Array(m) == Array(file[Int(l.offset + 4096)..<Int(l.offset + UInt64(pages + 1) * 4096)]))
        f.doneWith(m)
        try f.checkReads()
        _ = sum
    }

    /// A truncation under a range about to be populated: the call fails
    /// (EFAULT, no SIGBUS), the access reads zeros through the SIGBUS guard,
    /// and `checkReads` reports it, as without the call.
    @Test func populateOfATruncatedRangeIsAnError() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = try vmcore(dir)
        let f = try ELFInput(path: path)
        let l = try #require(f.segments.max { $0.offset < $1.offset })
        let count = 4 * ELFInput.faultAroundPages * 4096
        #expect(l.filesz >= UInt64(count))
        let m = try #require(f.mapped(paddr: l.paddr, count: count))
        #expect(truncate(path, off_t(l.offset)) == 0)
        #expect(!f.populate(m))
        var sum = 0
        for i in stride(from: 0, to: count, by: 512) { sum += Int(m[i]) }
        #expect(sum == 0)
        #expect(throws: CocomemError.self) { try f.checkReads() }
    }

    /// A file that shrank before the write: the pages are read with `pread`,
    /// the short read is reported, and no dump is left.
    @Test func writeOfAShrunkFileFails() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = try vmcore(dir)
        let f = try ELFInput(path: path)
        let l = try #require(f.segments.max { $0.offset < $1.offset })
        #expect(truncate(path, off_t(l.offset + 4096)) == 0)
        let w = try KdumpCompressedWriter(image: GuestMemoryImage(input: f), options: DumpOptions(dumpLevel: 1, compression: .zlib, threads: 2))
        #expect(throws: CocomemError.self) { try w.write(to: dir + "/out") }
        #expect(!FileManager.default.fileExists(atPath: dir + "/out"))
    }

    /// The struct-page walk gives the memmap pages it read back to the
    /// input mapping a window at a time, and nothing it read stays mapped
    /// once it returns (issue 19: cocomem's max RSS grew by the guest's
    /// memmap, 1/64 of its memory, left mapped). Measured on the mapping's
    /// own `Rss:` in /proc/self/smaps at every release and after the walk;
    /// a conversion leaves the mapping as empty. The walk's result does not
    /// depend on the releases.
    @Test func theWalkAndTheBatchesKeepNothingMapped() throws {
        let img = try smallGuestImage(memory: 768 << 20, kernel: .v6_16, workload: .touch(64 << 20))
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try ELFVmcore.write(img, to: dir + "/vmcore")
        let input = try ELFInput(path: dir + "/vmcore")
        let file = GuestMemoryImage(input: input)
        // Without /proc/self/smaps (not Linux) there is nothing to measure.
        guard input.mappedResidentBytes() != nil else { return }
        let f = MakedumpfileFilter(version: .v1_7_8, dumpLevel: 31, vmcoreinfo: img.vmcoreinfo!)
        var atRelease: [UInt64] = []
        let walked = try file.walkInput(f, released: { atRelease.append(input.mappedResidentBytes() ?? .max) })
        // 2 MiB of struct pages per present section, released a window at a time.
        let memmap = UInt64(img.kernel!.presentSections.count) * (2 << 20)
        #expect(atRelease.count >= Int(memmap / MappingRelease.window) - 1, "\(atRelease.count) releases for \(memmap) bytes of memmap")
        // At a release: the page tables and mem_section roots read, fault-around neighbours; never the memmap read so far.
        #expect(atRelease.allSatisfy { $0 <= MappingRelease.window }, "\(atRelease)")
        #expect(input.mappedResidentBytes() == 0)
        #expect(try file.walkInput(f) == walked)
        #expect(walked == img.filter(f))
        // A conversion: the walk, then every batch read from the mapping and dropped behind it.
        let w = try KdumpCompressedWriter(image: file, options: DumpOptions(dumpLevel: 31, compression: .lzo, makedumpfile: .v1_7_8, threads: 2))
        #expect(input.mappedResidentBytes() == 0)
        _ = try w.write(to: dir + "/out")
        // Left: the few page-table and init_uts_ns pages the header's utsname read, with their fault-around neighbours.
        #expect(input.mappedResidentBytes()! <= MappingRelease.window, "\(input.mappedResidentBytes()!) bytes mapped after the conversion")
    }
}
