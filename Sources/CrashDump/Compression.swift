import CZlib
import MemoryModel

/// The page compressors of the kdump-compressed format. The raw values are
/// the `status` / `page_desc.flags` bits of `diskdump_mod.h`.
public enum DumpCompression: UInt32, Sendable, CaseIterable {
    case none = 0
    /// `-c`: `compress2(..., Z_BEST_SPEED)`.
    case zlib = 0x1
    /// `-l`: `lzo1x_1_compress()`, liblzo2 2.10's bytes written by
    /// `LZO1X1Compressor` (no library needed).
    case lzo = 0x2
    /// `-p`: `snappy_compress()`.
    case snappy = 0x4
    /// `-z`: `ZSTD_compressCCtx(..., 1)`.
    case zstd = 0x20

    public var flag: String {
        switch self { case .none: "" ; case .zlib: "-c"; case .lzo: "-l"; case .snappy: "-p"; case .zstd: "-z" }
    }
    public var name: String {
        switch self { case .none: "none"; case .zlib: "zlib"; case .lzo: "lzo"; case .snappy: "snappy"; case .zstd: "zstd" }
    }
}

/// Compresses pages the way makedumpfile's write loop does
/// (`write_kdump_pages_cyclic()`, `compress_page()` in the parallel path):
/// one page at a time, the result kept only when it is shorter than the
/// page; nil means "store raw".
///
/// One compressor keeps its library state between pages (a reset z_stream,
/// the lzo dictionary, a zstd context) so a page costs only its own
/// compression; the output is the same bytes `compress2()` and friends give
/// on a fresh state. lzo is `LZO1X1Compressor`, liblzo2's
/// `lzo1x_1_compress()` written in Swift without its per-call dictionary
/// clear (byte-identical: `LZO1X1Tests` compare it with the library).
/// Not thread-safe: make one per thread.
public final class PageCompressor {
    public let kind: DumpCompression
    private var zstream = z_stream()
    private var zlibReady = false
    private var lzo: LZO1X1Compressor?
    private var zstdContext: OpaquePointer?
    private var snappy: CompressionLibraries.Snappy?
    private var zstd: CompressionLibraries.Zstd?
    private var out: [UInt8]

    /// Throws when the library `kind` needs is not installed
    /// (`CompressionLibraries`: snappy and zstd), naming the package to install.
    public init(_ kind: DumpCompression) throws {
        self.kind = kind
        out = [UInt8](repeating: 0, count: 4096 + 4096 / 16 + 4096)
        switch kind {
        case .none: break
        case .snappy:
            snappy = try CompressionLibraries.Snappy.shared.get()
        case .zlib:
            guard deflateInit_(&zstream, Z_BEST_SPEED, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
                throw CocomemError(.io, "zlib: deflateInit failed")
            }
            zlibReady = true
        case .lzo:
            lzo = LZO1X1Compressor()
        case .zstd:
            let lib = try CompressionLibraries.Zstd.shared.get()
            guard let c = lib.createCCtx() else { throw CocomemError(.io, "zstd: cannot create a context") }
            zstd = lib
            zstdContext = c
        }
    }

    deinit {
        if zlibReady { deflateEnd(&zstream) }
        if let c = zstdContext { _ = zstd?.freeCCtx(c) }
    }

    /// The stored form of one page: its compressed bytes if shorter than
    /// the page, else nil.
    public func compress(_ page: UnsafeRawBufferPointer) -> [UInt8]? {
        compressedCount(page).map { Array(out[0..<$0]) }
    }

    /// Compresses one page into the compressor's own buffer and hands the
    /// bytes to `body`; nil (and no call) when the page is stored raw.
    public func withCompressed<R>(_ page: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R? {
        guard let n = compressedCount(page) else { return nil }
        return try out.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
    }

    /// Bytes a page's compressed form may take before it is known to be
    /// stored raw: the largest output any of the four libraries writes for a
    /// 4 KiB page (lzo's `n + n/16 + 64 + 3`, snappy's `32 + n + n/6`, zlib's
    /// and zstd's bounds are smaller), with room to spare. A destination
    /// handed to `compress(_:into:)` must have this many bytes.
    public static let outputCapacity = 4096 + 4096 / 16 + 4096

    /// The compressed length of one page when shorter than the page, else
    /// nil; the bytes stay in the compressor's buffer (nothing allocated).
    public func compressedCount(_ page: UnsafeRawBufferPointer) -> Int? {
        out.withUnsafeMutableBytes { o in compress(page, into: o.baseAddress!) }
    }

    /// Compresses one page straight into `dst` (at least `outputCapacity`
    /// bytes: a batch buffer's free tail, so the compressed bytes are never
    /// copied) and returns their length when shorter than the page, else nil
    /// (`dst` then holds garbage the caller overwrites with the raw page).
    public func compress(_ page: UnsafeRawBufferPointer, into dst: UnsafeMutableRawPointer) -> Int? {
        let n = page.count
        let capacity = Self.outputCapacity
        var size = 0
        let d = dst.assumingMemoryBound(to: UInt8.self)
        let src = page.baseAddress!.assumingMemoryBound(to: UInt8.self)
        let ok: Bool
        switch kind {
        case .none:
            return nil
        case .zlib:
            guard deflateReset(&zstream) == Z_OK else { return nil }
            zstream.next_in = UnsafeMutablePointer(mutating: src); zstream.avail_in = UInt32(n)
            zstream.next_out = d; zstream.avail_out = UInt32(capacity)
            ok = deflate(&zstream, Z_FINISH) == Z_STREAM_END
            size = Int(zstream.total_out)
        case .lzo:
            size = lzo!.compress(src, count: n, into: d)
            ok = true
        case .snappy:
            var len = capacity
            let rc = snappy!.compress(UnsafeRawPointer(src).assumingMemoryBound(to: CChar.self), n, dst.assumingMemoryBound(to: CChar.self), &len)
            size = len
            ok = rc == CompressionLibraries.Snappy.ok
        case .zstd:
            let r = zstd!.compressCCtx(zstdContext, d, capacity, src, n, 1)
            size = r
            ok = zstd!.isError(r) == 0
        }
        guard ok, size < n else { return nil }
        return size
    }

    public func compress(_ page: [UInt8]) -> [UInt8]? {
        page.withUnsafeBytes { compress($0) }
    }
}
