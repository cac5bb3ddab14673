import CZlib
import MemoryModel

/// The page compressors of the kdump-compressed format. The raw values are
/// the `status` / `page_desc.flags` bits of `diskdump_mod.h`.
public enum DumpCompression: UInt32, Sendable, CaseIterable {
    case none = 0
    /// `-c`: `compress2(..., Z_BEST_SPEED)`.
    case zlib = 0x1
    /// `-l`: lzo1x_1 (not built yet).
    case lzo = 0x2
    /// `-p`: snappy (not built yet).
    case snappy = 0x4
    /// `-z`: zstd level 1 (not built yet).
    case zstd = 0x20

    public var flag: String {
        switch self { case .none: "" ; case .zlib: "-c"; case .lzo: "-l"; case .snappy: "-p"; case .zstd: "-z" }
    }
}

/// Compresses one page the way makedumpfile's write loop does
/// (`write_kdump_pages_cyclic()`): the result is kept only when it is
/// shorter than the page; nil means "store raw".
public struct PageCompressor: Sendable {
    public let kind: DumpCompression
    public init(_ kind: DumpCompression) throws {
        guard kind == .none || kind == .zlib else {
            throw CocomemError(.unsupported, "compression \(kind.flag) is not built yet; use -c (zlib) or none")
        }
        self.kind = kind
    }

    public func compress(_ page: [UInt8]) -> [UInt8]? {
        switch kind {
        case .zlib:
            var out = [UInt8](repeating: 0, count: Int(compressBound(uLong(page.count))))
            var size = uLongf(out.count)
            let rc = out.withUnsafeMutableBufferPointer { o in
                page.withUnsafeBufferPointer { p in compress2(o.baseAddress, &size, p.baseAddress, uLong(p.count), Z_BEST_SPEED) }
            }
            guard rc == Z_OK, Int(size) < page.count else { return nil }
            return Array(out[0..<Int(size)])
        default:
            return nil
        }
    }
}
