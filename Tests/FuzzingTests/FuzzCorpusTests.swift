import Foundation
import Fuzzing
import MemoryModel
import Testing

/// The fuzzers' inputs, run by the normal suite through the same
/// `FuzzTarget.run` the libFuzzer executables call (docs/RELIABILITY.md,
/// "Fuzzing"): every committed seed is accepted, and every minimised input a
/// fuzzer found (`Tests/Fixtures/fuzz-regressions/TARGET/`) is refused with
/// a `CocomemError` — before its fix each one trapped, hung or blew up, which
/// would end or stall this process.
@Suite(.serialized) struct FuzzCorpusTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized

    /// The files of `dir/TARGET/`, by target, sorted by name.
    static func inputs(under dir: String) throws -> [(FuzzTarget, String, [UInt8])] {
        var out: [(FuzzTarget, String, [UInt8])] = []
        for t in FuzzTarget.allCases {
            let d = root.appendingPathComponent(dir).appendingPathComponent(t.rawValue)
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: d.path) else { continue }
            for n in names.sorted() where !n.hasPrefix(".") {
                out.append((t, n, [UInt8](try Data(contentsOf: d.appendingPathComponent(n)))))
            }
        }
        return out
    }

    @Test func everySeedIsAccepted() throws {
        let seeds = try Self.inputs(under: "Fuzz/corpus")
        #expect(Set(seeds.map(\.0)) == Set(FuzzTarget.allCases), "every target has a seed corpus")
        for (t, name, bytes) in seeds {
            #expect(throws: Never.self, "\(t.rawValue)/\(name)") { try t.run(bytes) }
        }
    }

    @Test func everyFuzzerFindingIsRefused() throws {
        let found = try Self.inputs(under: "Tests/Fixtures/fuzz-regressions")
        for (t, name, bytes) in found {
            #expect(throws: CocomemError.self, "\(t.rawValue)/\(name)") { try t.run(bytes) }
        }
    }

    /// The tiny vmcore the `elf` seed is: valid, and walked at `-d 31`
    /// (struct pages found through its page tables exclude pages). The seed
    /// is padded with zeros after its last PT_LOAD to a length the `elf`
    /// target runs at `-d 31` (`count % 6 == 0`).
    /// `COCOMEM_WRITE_FUZZ_CORPUS=1 swift test --filter FuzzCorpusTests`
    /// rewrites `Fuzz/corpus/elf/tiny.vmcore` from it.
    @Test func tinyVmcoreIsAValidSeed() throws {
        var bytes = try FuzzTarget.tinyVmcore()
        // 384 KiB since the NUMA VMCOREINFO (session 17): node_data and the node's pglist_data pages are kept.
        #expect(bytes.count < 512 << 10, "\(bytes.count) bytes: the seed should stay small")
        bytes += [UInt8](repeating: 0, count: (6 - bytes.count % 6) % 6)
        try FuzzTarget.elf.run(bytes)
        if ProcessInfo.processInfo.environment["COCOMEM_WRITE_FUZZ_CORPUS"] == "1" {
            try Data(bytes).write(to: Self.root.appendingPathComponent("Fuzz/corpus/elf/tiny.vmcore"))
        }
    }
}
