import CostModel
import CrashDump
import Firmware
import Foundation
import MemoryModel
import Simulation
import Testing
import TestSupport

/// Issue 15's promise, sampled: seeded random byte flips and truncations of
/// a small valid ELF vmcore, EFI map, calibration file and calls file, each
/// read by its parser (the vmcore also converted at `-d 31` to a temporary
/// file, kdump-compressed or, one in three, `-E`). Every outcome is a success or a `CocomemError`; a trap would end
/// the test process. Time per input is bounded by the design (every loop is
/// over a count checked against the file or a stated limit), not by a clock.
@Suite(.serialized) struct MutationTests {
    /// Flips 1-8 random bytes (biased to the first `hot` bytes, where the
    /// headers are) or truncates, with the seeded generator.
    static func mutate(_ input: [UInt8], hot: Int, rng: inout SplitMix64) -> [UInt8] {
        var b = input
        if rng.next() % 4 == 0 {
            return Array(b.prefix(Int(rng.next() % UInt64(max(1, b.count)))))
        }
        for _ in 0..<(1 + rng.next() % 8) {
            let range = rng.next() % 3 == 0 ? b.count : min(hot, b.count)
            let i = Int(rng.next() % UInt64(range))
            if rng.next() % 2 == 0 { b[i] ^= UInt8(1 << (rng.next() % 8)) } else { b[i] = UInt8(truncatingIfNeeded: rng.next()) }
        }
        return b
    }

    /// Runs `body`; a `CocomemError` is an accepted outcome, anything else an issue.
    static func outcome(_ what: String, _ body: () throws -> Void) -> Bool {
        do { try body(); return true } catch is CocomemError { return false } catch {
            Issue.record("\(what): not a CocomemError: \(error)")
            return false
        }
    }

    @Test func vmcoreMutations() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: try smallVmcoreFile(in: dir))))
        // The unmutated file converts at -d 31 (FileMemMap found and read every struct page of its PT_LOADs).
        let clean = try DumpTool.run(image: GuestMemoryImage(input: try ELFInput(path: dir + "/small.vmcore")), options: DumpOptions(dumpLevel: 31),
                                     elf: nil, output: dir + "/out", estimateOnly: false, force: true)
        #expect(clean.report.totalPages > 0)
        var rng = SplitMix64(seed: 15)
        var ok = 0, refused = 0
        for i in 0..<24 {
            let m = Self.mutate(original, hot: 16384, rng: &rng)
            let path = dir + "/m\(i)"
            try Data(m).write(to: URL(fileURLWithPath: path))
            let fine = Self.outcome("vmcore mutation \(i)") {
                let image = GuestMemoryImage(input: try ELFInput(path: path))
                // Every third one as makedumpfile -E instead.
                _ = try DumpTool.run(image: image, options: DumpOptions(dumpLevel: 31, compression: i % 3 == 2 ? .none : .zlib), elf: nil,
                                     output: dir + "/out", estimateOnly: false, elfDump: i % 3 == 2, force: true)
            }
            if fine { ok += 1 } else { refused += 1 }
            try? FileManager.default.removeItem(atPath: path)
        }
        #expect(ok + refused == 24)
        #expect(ok > 0 && refused > 0, "\(ok) converted, \(refused) refused: the mutations should reach both")
    }

    @Test func mapMutations() throws {
        let text = Array(try Q35Layout(memory: 63 << 30).efiMap(highType: .unaccepted).kernelFormat().utf8)
        let json = Array(#"[{"type":"Conventional","start":0,"end":"0x40000000"},{"type_id":15,"start":"0x100000000","end":"0x140000000"}]"#.utf8)
        var rng = SplitMix64(seed: 15)
        for i in 0..<300 {
            let m = Self.mutate(i % 2 == 0 ? text : json, hot: 4096, rng: &rng)
            _ = Self.outcome("map mutation \(i)") {
                let map = try AcceptTool.parseMap(String(decoding: m, as: UTF8.self))
                _ = try AcceptTool.run(map: map, calls: [(0x1_0000_0000, 0x20_0000)], calibration: Calibration.builtIn())
            }
        }
    }

    @Test func callsMutations() throws {
        let calls = Array("0x100000000 0x200000\r\n# a comment\n4294967296,2097152\n0x100400000\t0x1000\n".utf8)
        let map = try Q35Layout(memory: 8 << 30).efiMap(highType: .unaccepted)
        var rng = SplitMix64(seed: 15)
        for i in 0..<300 {
            let m = Self.mutate(calls, hot: calls.count, rng: &rng)
            _ = Self.outcome("calls mutation \(i)") {
                _ = try AcceptTool.run(map: map, calls: AcceptTool.parseCalls(String(decoding: m, as: UTF8.self)), calibration: Calibration.builtIn())
            }
        }
    }

    @Test func calibrationMutations() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../Sources/CostModel/Resources/calibration.json").standardized.path
        let original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var rng = SplitMix64(seed: 15)
        for i in 0..<300 {
            let m = Self.mutate(original, hot: original.count, rng: &rng)
            try Data(m).write(to: URL(fileURLWithPath: dir + "/c.json"))
            _ = Self.outcome("calibration mutation \(i)") {
                _ = CostTable(try Calibration.load(path: dir + "/c.json"))
            }
        }
    }
}
