@testable import CrashDump
import Foundation
import GuestKernel
import MemoryModel
import Simulation
import Testing
import TestSupport

/// Issue 15, ELF vmcore input: each test mutates a small valid vmcore the
/// way a corrupt or hostile file would, and expects one `CocomemError`
/// naming the field, never a trap, a hang or a huge allocation.
@Suite struct HostileInputTests {
    /// Offset of program header `i`'s field at `field` (ELF64: 56-byte entries after e_phoff).
    static func phdrField(_ b: [UInt8], _ i: Int, _ field: Int) -> Int {
        let phoff = Int(ELFInput.le64(b, 32))
        return phoff + i * 56 + field
    }
    static func put64(_ b: inout [UInt8], _ at: Int, _ v: UInt64) {
        for k in 0..<8 { b[at + k] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(k))) }
    }
    /// Index of the first PT_LOAD.
    static func firstLoad(_ b: [UInt8]) -> Int {
        let phnum = Int(ELFInput.le16(b, 56))
        return (0..<phnum).first { ELFInput.le32(b, phdrField(b, $0, 0)) == 1 }!
    }

    func mutated(_ f: (inout [UInt8]) -> Void) throws -> (dir: String, path: String) {
        let dir = try tempDir()
        let src = try smallVmcoreFile(in: dir)
        var b = [UInt8](try Data(contentsOf: URL(fileURLWithPath: src)))
        f(&b)
        try Data(b).write(to: URL(fileURLWithPath: dir + "/mutated"))
        return (dir, dir + "/mutated")
    }

    func expectError(_ path: String, level: Int = 31, containing: String) {
        do {
            let image = GuestMemoryImage(input: try ELFInput(path: path))
            let out = (path as NSString).deletingLastPathComponent + "/out"
            _ = try DumpTool.run(image: image, options: DumpOptions(dumpLevel: level), elf: nil, output: out, estimateOnly: false, force: true)
            Issue.record("no error; wanted one containing '\(containing)'")
        } catch let e as CocomemError {
            #expect(e.message.contains(containing), "\(e.message)")
        } catch {
            Issue.record("not a CocomemError: \(error)")
        }
    }

    /// One flipped high bit in a PT_LOAD's `p_memsz` (zero-filled past
    /// `p_filesz`, as makedumpfile reads it) asked for a bitmap per PFN up
    /// to 2^62 bytes: refused, naming the PT_LOAD and the limit.
    @Test func hugeMemszIsRefused() throws {
        let (dir, path) = try mutated { b in
            let at = Self.phdrField(b, Self.firstLoad(b), 40)
            Self.put64(&b, at, ELFInput.le64(b, at) | 1 << 50)
        }
        defer { try? FileManager.default.removeItem(atPath: dir) }
        expectError(path, level: 1, containing: "p_memsz")
        expectError(path, level: 1, containing: "TiB")
    }

    /// A 4 KiB PT_LOAD at 64 TiB in a small file: its bitmaps would take 2 GiB.
    @Test func loadAt64TiBIsRefused() throws {
        let (dir, path) = try mutated { b in Self.put64(&b, Self.phdrField(b, Self.firstLoad(b), 24), 64 << 40) }
        defer { try? FileManager.default.removeItem(atPath: dir) }
        expectError(path, level: 1, containing: "may address at most 8 TiB")
    }

    /// `LENGTH(mem_section)` negative or beyond NR_SECTION_ROOTS: refused by name.
    @Test func sectionRootsAreBounded() throws {
        for bad in ["-204", "9999999"] {
            let (dir, path) = try mutated { b in
                let key = Array("LENGTH(mem_section)=2048\n".utf8)
                let at = (0..<(b.count - key.count)).first { b[$0..<($0 + key.count)].elementsEqual(key) }!
                let repl = Array("LENGTH(mem_section)=\(bad)".utf8)
                // Same length: shift the rest of the line over the newline only when shorter.
                b.replaceSubrange(at..<(at + key.count - 1), with: repl + [UInt8](repeating: 0x20, count: max(0, key.count - 1 - repl.count)))
            }
            defer { try? FileManager.default.removeItem(atPath: dir) }
            expectError(path, containing: "LENGTH(mem_section)")
        }
    }

    /// A free page whose order (`private`) is 200 and a `LENGTH(zone.free_area)`
    /// of 100: no shift past 63 (which made 0 pages and an underflow).
    @Test func freePageOrdersOutOfRangeAreKept() throws {
        let info = try smallGuestImage(memory: 256 << 20, kernel: .v6_16).vmcoreinfo!
        let patched = info.replacingOccurrences(of: "LENGTH(zone.free_area)=11", with: "LENGTH(zone.free_area)=100")
        let f = MakedumpfileFilter(version: .v1_7_8, dumpLevel: 31, vmcoreinfo: patched)
        var p = StructPage()
        p.mapcount = UInt32(truncatingIfNeeded: f.buddy!)
        p.privateValue = 200
        #expect(f.decide(p, next: nil, pfn: 0) == .keep)
        var u = StructPage()
        u.mapcount = UInt32(truncatingIfNeeded: f.unaccepted!)
        #expect(f.decide(u, next: nil, pfn: 0) == .keep)
    }

    /// VMCOREINFO with CRLF line ends (a note copied through a Windows
    /// tool) reads the same numbers as with LF.
    @Test func vmcoreinfoWithCRLF() throws {
        let info = try smallGuestImage(memory: 256 << 20, kernel: .v6_16).vmcoreinfo!
        let crlf = VmcoreinfoNumbers(text: info.replacingOccurrences(of: "\n", with: "\r\n"))
        #expect(crlf == VmcoreinfoNumbers(text: info))
        #expect(crlf.symbols["mem_section"] != nil)
    }

    /// A hand-made ET_CORE file: one empty PT_NOTE, then PT_LOADs of
    /// `(paddr, memsz, fill byte)` with their data back to back.
    static func elf(_ loads: [(UInt64, UInt64, UInt8)]) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 64)
        b[0..<4] = [0x7f, 0x45, 0x4c, 0x46]; b[4] = 2; b[5] = 1; b[6] = 1
        b[16] = 4; b[18] = 62
        let phnum = loads.count + 1
        put64(&b, 32, 64); b[54] = 56; b[56] = UInt8(phnum & 0xff); b[57] = UInt8(phnum >> 8)
        var data = UInt64(64 + 56 * phnum)
        var ph = [UInt8](repeating: 0, count: 56 * phnum)
        ph[0] = 4; put64(&ph, 8, data)   // PT_NOTE, empty
        for (i, l) in loads.enumerated() {
            let o = 56 * (i + 1)
            ph[o] = 1; put64(&ph, o + 8, data); put64(&ph, o + 24, l.0); put64(&ph, o + 32, l.1); put64(&ph, o + 40, l.1)
            data += l.1
        }
        return b + ph + loads.flatMap { [UInt8](repeating: $0.2, count: Int($0.1)) }
    }

    /// Overlapping PT_LOADs: every byte comes from the first in file order
    /// that holds it; holes read as zeros. Found by binary search over
    /// pieces, so 60000 one-page PT_LOADs convert in linear time.
    @Test func readsPickTheFirstPTLoadAndScale() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data(Self.elf([(0x2000, 0x1000, 0xaa), (0x1000, 0x3000, 0xbb), (0x6000, 0x1000, 0xcc)])).write(to: URL(fileURLWithPath: dir + "/o"))
        let f = try ELFInput(path: dir + "/o")
        var buf = [UInt8](repeating: 0xff, count: 0x6000)
        buf.withUnsafeMutableBytes { f.read(paddr: 0x1000, into: $0) }
        #expect(buf[0] == 0xbb && buf[0xfff] == 0xbb && buf[0x1000] == 0xaa && buf[0x1fff] == 0xaa && buf[0x2000] == 0xbb)
        #expect(buf[0x3000] == 0 && buf[0x4fff] == 0 && buf[0x5000] == 0xcc)
        let many = (0..<60000).map { (UInt64($0) * 0x2000, UInt64(0x1000), UInt8(1)) }
        try Data(Self.elf(many)).write(to: URL(fileURLWithPath: dir + "/many"))
        let image = GuestMemoryImage(input: try ELFInput(path: dir + "/many"))
        let r = try DumpTool.run(image: image, options: DumpOptions(dumpLevel: 1), elf: nil, output: dir + "/out", estimateOnly: false)
        #expect(r.report.totalPages == 60000)
    }

    /// A FIFO as the input hung in open(); it is refused as not a regular file.
    @Test func fifoInputIsRefused() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(mkfifo(dir + "/fifo", 0o600) == 0)
        #expect { _ = try ELFInput(path: dir + "/fifo") } throws: { ($0 as? CocomemError)?.message.contains("a FIFO, not a regular file") == true }
    }

    /// Outputs: a device node is never replaced (even with force), an output
    /// may not be the input nor another output, and an existing dump file
    /// needs force, with makedumpfile's message.
    @Test func dangerousOutputsAreRefused() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func message(_ outputs: [(String, String)], inputs: [String] = [], force: Bool = false) -> String? {
            do { try OutputPaths.check(outputs: outputs.map { (option: $0.0, path: $0.1) }, inputs: inputs, force: force); return nil }
            catch { return (error as? CocomemError)?.message ?? "\(error)" }
        }
        #expect(message([("-o", "/dev/null")], force: true)?.contains("character device") == true)
        #expect(message([("--elf", dir + "/a"), ("-o", dir + "/./a")])?.contains("both name") == true)
        _ = FileManager.default.createFile(atPath: dir + "/in", contents: Data("x".utf8))
        #expect(message([("-o", dir + "/in")], inputs: [dir + "/in"], force: true)?.contains("is the input vmcore") == true)
        #expect(message([("-o", dir + "/in")]) == "Can't open the dump file (\(dir)/in). File exists (give -f to overwrite it)")
        #expect(message([("-o", dir + "/in")], force: true) == nil)
        #expect(message([("-o", dir + "/new")]) == nil)
        // AtomicFile itself refuses a non-regular target.
        #expect(mkfifo(dir + "/fifo", 0o600) == 0)
        #expect(throws: CocomemError.self) { _ = try AtomicFile(path: dir + "/fifo") }
    }

    /// While a dump is being written the target directory has no entry for
    /// it (an unnamed O_TMPFILE file), so a SIGKILL leaves nothing; commit
    /// links it in, and an abandoned file vanishes.
    @Test func writesLeaveNoNamedTemporaryFile() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            let f = try AtomicFile(path: dir + "/dump")
            try f.write([1, 2, 3], at: 0)
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir).isEmpty)
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).isEmpty)
        let f = try AtomicFile(path: dir + "/dump")
        try f.write([1, 2, 3], at: 0)
        try f.commit()
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["dump"])
        #expect(try Data(contentsOf: URL(fileURLWithPath: dir + "/dump")) == Data([1, 2, 3]))
        // Replacing an existing regular file goes through a rename.
        let g = try AtomicFile(path: dir + "/dump")
        try g.write([4], at: 0)
        try g.commit()
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["dump"])
        #expect(try Data(contentsOf: URL(fileURLWithPath: dir + "/dump")) == Data([4]))
    }

    /// Writeback starts every `writebackInterval` bytes written, through
    /// `pwrite` and `sendfile` alike, so `commit()`'s `fsync` waits for the
    /// tail only (docs/PERFORMANCE.md, session 17); the bytes are the same.
    @Test func writebackStartsEveryIntervalWritten() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let interval = Int(AtomicFile.writebackInterval)
        var bytes = [UInt8](repeating: 0, count: interval + interval / 2)
        for i in stride(from: 0, to: bytes.count, by: 4096) { bytes[i] = UInt8(truncatingIfNeeded: i >> 12) }
        try Data(bytes).write(to: URL(fileURLWithPath: dir + "/source"))
        let f = try AtomicFile(path: dir + "/dump")
        try f.write(bytes, at: 0)
        #expect(f.writebackStarts == 1)   // 1.5 intervals: one start, half an interval counted
        let source = open(dir + "/source", O_RDONLY)
        defer { close(source) }
        let copied = try f.copy(from: source, at: 0, count: UInt64(bytes.count), to: UInt64(bytes.count))
        #expect(copied == UInt64(bytes.count))
        #expect(f.writebackStarts == 3)   // 3 intervals in all
        try f.commit()
        let back = try Data(contentsOf: URL(fileURLWithPath: dir + "/dump"))
        #expect(back == Data(bytes + bytes))
    }
}
