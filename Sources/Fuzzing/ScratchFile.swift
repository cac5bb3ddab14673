import Foundation
import MemoryModel

/// Where a fuzz input that cocomem reads from a file (a vmcore, a
/// calibration) is put so the file reader itself runs, and where a dump is
/// written: a directory of this process's own, in `/dev/shm` (memory, so a
/// million inputs never touch the disk) when it is there, else in the
/// temporary directory. Removed when the process exits normally.
final class ScratchFile: @unchecked Sendable {
    static let shared = ScratchFile()

    let directory: String
    private let lock = NSLock()

    private init() {
        var isDir: ObjCBool = false
        let base = FileManager.default.fileExists(atPath: "/dev/shm", isDirectory: &isDir) && isDir.boolValue
            && access("/dev/shm", W_OK) == 0 ? "/dev/shm/" : NSTemporaryDirectory()
        directory = base + "cocomem-fuzz-\(getpid())"
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        atexit { try? FileManager.default.removeItem(atPath: ScratchFile.shared.directory) }
    }

    /// Replaces the contents of scratch file `slot` with `data`; returns its path.
    func holding(_ data: [UInt8], slot: String) throws -> String {
        lock.lock()
        defer { lock.unlock() }
        let path = directory + "/" + slot
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw CocomemError(.io, "cannot write scratch file '\(path)': \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var done = 0
        while done < data.count {
            let n = data.withUnsafeBytes { write(fd, $0.baseAddress! + done, data.count - done) }
            guard n > 0 else { throw CocomemError(.io, "cannot write scratch file '\(path)': \(String(cString: strerror(errno)))") }
            done += n
        }
        return path
    }
}
