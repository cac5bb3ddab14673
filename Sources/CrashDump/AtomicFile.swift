import Foundation
import MemoryModel

/// A file written under a temporary name in the target directory and
/// renamed over the target only by `commit()`. Anything that stops the
/// write early (an error, a full disk) removes the temporary file, so no
/// half-written dump is ever left under the target name.
///
/// Writes go through `pwrite` at explicit offsets, so a format can fill
/// two regions (descriptors and page data) at once.
public final class AtomicFile {
    public let path: String
    let tempPath: String
    let fd: Int32
    private var committed = false

    /// Creates `<dir>/.<name>.cocomem-<pid>.tmp`.
    public init(path: String) throws {
        self.path = path
        let url = URL(fileURLWithPath: path)
        let dir = url.deletingLastPathComponent().path
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else {
            throw CocomemError(.io, "cannot write '\(path)': directory '\(dir)' does not exist")
        }
        tempPath = dir + "/." + url.lastPathComponent + ".cocomem-\(getpid()).tmp"
        fd = open(tempPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else {
            throw CocomemError(.io, "cannot write '\(path)': \(String(cString: strerror(errno)))")
        }
        InterruptCleanup.register(tempPath)
    }

    deinit {
        if !committed { close(fd); unlink(tempPath) }
        InterruptCleanup.unregister(tempPath)
    }

    /// Writes all of `bytes` at `offset`.
    public func write(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws {
        var done = 0
        while done < bytes.count {
            let n = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                throw CocomemError(.io, "writing '\(path)' failed: \(String(cString: strerror(errno)))")
            }
            done += n
        }
    }

    public func write(_ bytes: [UInt8], at offset: UInt64) throws {
        try bytes.withUnsafeBytes { try write($0, at: offset) }
    }

    /// Sets the file's length; pages never written read as zeros.
    public func setSize(_ size: UInt64) throws {
        guard ftruncate(fd, off_t(size)) == 0 else {
            throw CocomemError(.io, "writing '\(path)' failed: \(String(cString: strerror(errno)))")
        }
    }

    /// Flushes, closes and renames the file over the target.
    public func commit() throws {
        guard fsync(fd) == 0, close(fd) == 0 else {
            let e = String(cString: strerror(errno))
            unlink(tempPath); committed = true
            throw CocomemError(.io, "writing '\(path)' failed: \(e)")
        }
        committed = true
        guard rename(tempPath, path) == 0 else {
            let e = String(cString: strerror(errno))
            unlink(tempPath)
            throw CocomemError(.io, "cannot rename the finished dump to '\(path)': \(e)")
        }
    }
}

/// Removes unfinished temporary files when the process is interrupted
/// (SIGINT, SIGTERM, SIGHUP), so an interrupt leaves no partial file.
/// The handler only calls `unlink` and `_exit`, which are async-signal-safe;
/// the paths are kept as C strings allocated outside the handler.
public enum InterruptCleanup {
    nonisolated(unsafe) static var paths: [UnsafeMutablePointer<CChar>] = []
    nonisolated(unsafe) static var installed = false

    static func register(_ path: String) {
        install()
        paths.append(strdup(path))
    }

    static func unregister(_ path: String) {
        if let i = paths.firstIndex(where: { String(cString: $0) == path }) { free(paths.remove(at: i)) }
    }

    static func install() {
        guard !installed else { return }
        installed = true
        for sig in [SIGINT, SIGTERM, SIGHUP] {
            signal(sig) { s in
                for p in InterruptCleanup.paths { unlink(p) }
                _exit(128 + s)
            }
        }
    }
}

/// Appends little-endian fields to a byte array.
struct ByteWriter {
    var bytes: [UInt8] = []
    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func zeros(_ n: Int) { bytes += [UInt8](repeating: 0, count: n) }
    mutating func pad(to alignment: Int) { while bytes.count % alignment != 0 { bytes.append(0) } }
    mutating func raw(_ b: [UInt8]) { bytes += b }
}
