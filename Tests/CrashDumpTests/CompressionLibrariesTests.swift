import CrashDump
import MemoryModel
import Testing

/// lzo, snappy and zstd are loaded with dlopen when a dump asks for them;
/// a missing library is one clear error naming the package to install.
@Suite struct CompressionLibrariesTests {
    @Test func missingLibraryNamesThePackage() {
        let absent = CompressionLibraries.Soname("liblzo2.so.999-cocomem-test", debianPackage: "liblzo2-2")
        #expect(throws: CocomemError(.unsupported, "-l (lzo) needs liblzo2.so.999-cocomem-test: apt-get install liblzo2-2")) {
            try CompressionLibraries.LZO.load(absent)
        }
        #expect(throws: CocomemError(.unsupported, "-p (snappy) needs libsnappy.so.0-cocomem-test: apt-get install libsnappy1v5")) {
            try CompressionLibraries.Snappy.load(.init("libsnappy.so.0-cocomem-test", debianPackage: "libsnappy1v5"))
        }
        #expect(throws: CocomemError(.unsupported, "-z (zstd) needs libzstd.so.0-cocomem-test: apt-get install libzstd1")) {
            try CompressionLibraries.Zstd.load(.init("libzstd.so.0-cocomem-test", debianPackage: "libzstd1"))
        }
    }

    /// A library that loads but lacks a symbol is an error too, not a trap.
    @Test func missingSymbolIsAnError() {
        #expect(throws: CocomemError.self) {
            try CompressionLibraries.Zstd.load(.init("libz.so.1", debianPackage: "zlib1g"))
        }
    }

    /// The installed libraries load, and every compressor round-trips its setup.
    @Test(arguments: DumpCompression.allCases) func installedLibrariesLoad(_ kind: DumpCompression) throws {
        try CompressionLibraries.require(kind)
        let c = try PageCompressor(kind)
        let page = [UInt8](repeating: 0, count: 4096)
        #expect((c.compress(page) == nil) == (kind == .none))
    }
}
