import CrashDump
import Foundation
import MemoryModel
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
}
