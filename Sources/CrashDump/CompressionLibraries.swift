#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
public import Darwin
#endif
import MemoryModel

/// The optional page compressors' libraries (snappy, zstd), loaded by
/// soname with `dlopen` the first time a dump asks for one, so cocomem
/// builds and runs with only zlib present. liblzo2 is not needed by a dump
/// (`-l` is `LZO1X1Compressor`); it is loaded here as the reference that
/// compressor is tested against, byte for byte (`LZO1X1Tests`). Each library is loaded at most
/// once per process (a `static let`, which Swift initialises exactly once,
/// thread-safely) and never unloaded.
///
/// Only the C functions `PageCompressor` calls are looked up, each under the
/// signature of its header (`lzo/lzo1x.h` and `lzo/lzoconf.h` 2.10,
/// `snappy-c.h`, `zstd.h`).
package enum CompressionLibraries {
    /// A shared library to load: its soname and the Debian package that
    /// ships it, for the error when it is missing.
    package struct Soname: Sendable, Equatable {
        package var name: String
        package var debianPackage: String
        package init(_ name: String, debianPackage: String) {
            self.name = name
            self.debianPackage = debianPackage
        }
        package static let lzo = Soname("liblzo2.so.2", debianPackage: "liblzo2-2")
        package static let snappy = Soname("libsnappy.so.1", debianPackage: "libsnappy1v5")
        package static let zstd = Soname("libzstd.so.1", debianPackage: "libzstd1")
    }

    /// `liblzo2`: the reference `LZO1X1Compressor` is tested against.
    package struct LZO: @unchecked Sendable {
        /// `int __lzo_init_v2(unsigned, int, int, int, int, int, int, int, int, int)`,
        /// which the `lzo_init()` macro calls with the header's version and the sizes of its types.
        let initV2: @convention(c) (UInt32, Int32, Int32, Int32, Int32, Int32, Int32, Int32, Int32, Int32) -> Int32
        /// `int lzo1x_1_compress(const lzo_bytep src, lzo_uint src_len, lzo_bytep dst, lzo_uintp dst_len, lzo_voidp wrkmem)`.
        package let compress1X1: @convention(c) (UnsafePointer<UInt8>?, UInt, UnsafeMutablePointer<UInt8>?, UnsafeMutablePointer<UInt>?, UnsafeMutableRawPointer?) -> Int32

        /// `LZO_E_OK`.
        package static let ok: Int32 = 0
        /// `LZO1X_1_MEM_COMPRESS`: 16384 dictionary entries of one pointer each.
        package static let workMemoryBytes = 16384 * MemoryLayout<UnsafeRawPointer>.size

        /// `lzo_init()`: `LZO_VERSION` 0x20a0 (2.10) and the sizes of
        /// short, int, long, lzo_uint32_t, lzo_uint, the dictionary entry,
        /// char *, lzo_voidp and lzo_callback_t (six pointer-sized fields).
        package func initialize() -> Int32 {
            let pointer = Int32(MemoryLayout<UnsafeRawPointer>.size)
            return initV2(0x20a0, Int32(MemoryLayout<Int16>.size), Int32(MemoryLayout<Int32>.size), Int32(MemoryLayout<CLong>.size),
                          Int32(MemoryLayout<UInt32>.size), Int32(MemoryLayout<UInt>.size), pointer, pointer, pointer, 6 * pointer)
        }

        package static func load(_ soname: Soname = .lzo) throws -> LZO {
            let h = try open(soname, for: .lzo)
            return LZO(initV2: try symbol(h, "__lzo_init_v2", soname), compress1X1: try symbol(h, "lzo1x_1_compress", soname))
        }
        package static let shared = Result { try load() }
    }

    /// `libsnappy`'s C API.
    package struct Snappy: @unchecked Sendable {
        /// `snappy_status snappy_compress(const char *input, size_t input_length, char *compressed, size_t *compressed_length)`.
        let compress: @convention(c) (UnsafePointer<CChar>?, Int, UnsafeMutablePointer<CChar>?, UnsafeMutablePointer<Int>?) -> Int32
        /// `SNAPPY_OK`.
        static let ok: Int32 = 0

        package static func load(_ soname: Soname = .snappy) throws -> Snappy {
            let h = try open(soname, for: .snappy)
            return Snappy(compress: try symbol(h, "snappy_compress", soname))
        }
        static let shared = Result { try load() }
    }

    /// `libzstd`.
    package struct Zstd: @unchecked Sendable {
        /// `ZSTD_CCtx *ZSTD_createCCtx(void)`.
        let createCCtx: @convention(c) () -> OpaquePointer?
        /// `size_t ZSTD_freeCCtx(ZSTD_CCtx *cctx)`.
        let freeCCtx: @convention(c) (OpaquePointer?) -> Int
        /// `size_t ZSTD_compressCCtx(ZSTD_CCtx *cctx, void *dst, size_t dstCapacity, const void *src, size_t srcSize, int compressionLevel)`.
        let compressCCtx: @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?, Int, UnsafeRawPointer?, Int, Int32) -> Int
        /// `unsigned ZSTD_isError(size_t code)`.
        let isError: @convention(c) (Int) -> UInt32

        package static func load(_ soname: Soname = .zstd) throws -> Zstd {
            let h = try open(soname, for: .zstd)
            return Zstd(createCCtx: try symbol(h, "ZSTD_createCCtx", soname), freeCCtx: try symbol(h, "ZSTD_freeCCtx", soname),
                        compressCCtx: try symbol(h, "ZSTD_compressCCtx", soname), isError: try symbol(h, "ZSTD_isError", soname))
        }
        static let shared = Result { try load() }
    }

    /// Checks that the library `kind` needs can be loaded, loading it if
    /// it has not been (zlib is linked, lzo written in Swift: always present).
    package static func require(_ kind: DumpCompression) throws {
        switch kind {
        case .none, .zlib, .lzo: break
        case .snappy: _ = try Snappy.shared.get()
        case .zstd: _ = try Zstd.shared.get()
        }
    }

    static func open(_ soname: Soname, for kind: DumpCompression) throws -> UnsafeMutableRawPointer {
        guard let h = dlopen(soname.name, RTLD_NOW | RTLD_LOCAL) else {
            throw CocomemError(.unsupported, "\(kind.flag) (\(kind.name)) needs \(soname.name): apt-get install \(soname.debianPackage)")
        }
        return h
    }

    static func symbol<F>(_ handle: UnsafeMutableRawPointer, _ name: String, _ soname: Soname) throws -> F {
        guard let s = dlsym(handle, name) else {
            throw CocomemError(.unsupported, "\(soname.name) has no \(name); install a current \(soname.debianPackage)")
        }
        return unsafeBitCast(s, to: F.self)
    }
}
