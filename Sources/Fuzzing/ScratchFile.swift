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
    /// Written over the previous input and then cut to `data.count` (not
    /// opened with `O_TRUNC`): the pages of the common length stay
    /// allocated, so the next input of about the same size (a mutated
    /// 188 KB vmcore) costs a copy, not the freeing and allocating of its
    /// tmpfs pages (the elf fuzzer spent about a tenth of its time there).
    func holding(_ data: [UInt8], slot: String) throws -> String {
        lock.lock()
        defer { lock.unlock() }
        let path = directory + "/" + slot
        func failed() -> CocomemError { CocomemError(.io, "cannot write scratch file '\(path)': \(String(cString: strerror(errno)))") }
        let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw failed() }
        defer { close(fd) }
        var done = 0
        while done < data.count {
            let n = data.withUnsafeBytes { pwrite(fd, $0.baseAddress! + done, data.count - done, off_t(done)) }
            guard n > 0 else { throw failed() }
            done += n
        }
        guard ftruncate(fd, off_t(data.count)) == 0 else { throw failed() }
        return path
    }
}
