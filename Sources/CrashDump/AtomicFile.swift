import Foundation
import MemoryModel

/// A file written where no reader can see it and put in place only by
/// `commit()`: an unnamed `O_TMPFILE` file in the target's directory,
/// linked into place at the end (`linkat()` of `/proc/self/fd/N`), so a run
/// that is killed, even by SIGKILL, leaves nothing behind. Where the
/// filesystem has no `O_TMPFILE`, a named `<dir>/.<name>.cocomem-<pid>.tmp`
/// is used instead and removed on an error or an interrupt (SIGINT,
/// SIGTERM, SIGHUP; a SIGKILL can leave it).
///
/// Only a regular file is ever replaced: a target that exists as anything
/// else (a device node, a FIFO, a directory, a symbolic link) is refused
/// when the file is created and again before it is put in place.
///
/// Writes go through `pwrite` at explicit offsets, so a format can fill
/// two regions (descriptors and page data) at once.
public final class AtomicFile {
    public let path: String
    /// The named temporary file, or nil for an unnamed `O_TMPFILE` one.
    let tempPath: String?
    let dir: String
    let fd: Int32
    private var committed = false

    public init(path: String) throws {
        self.path = path
        let url = URL(fileURLWithPath: path)
        let dir = url.deletingLastPathComponent().path
        self.dir = dir
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else {
            throw CocomemError(.io, "cannot write '\(path)': directory '\(dir)' does not exist")
        }
        try OutputPaths.refuseNonRegular(path)
        // An interrupt stops the write and exits (even where the shell started us with SIGINT ignored).
        InterruptCleanup.install()
        #if os(Linux)
        // An unnamed file is named at the end through /proc/self/fd: without /proc, use a named one.
        let unnamed = access("/proc/self/fd", F_OK) == 0 ? open(dir, Self.oTmpfile | O_WRONLY | O_CLOEXEC, 0o644) : -1
        #else
        let unnamed: Int32 = -1
        #endif
        if unnamed >= 0 {
            fd = unnamed
            tempPath = nil
        } else {
            // No O_TMPFILE here (EOPNOTSUPP, EISDIR on old kernels): a named temporary file.
            let t = dir + "/." + url.lastPathComponent + ".cocomem-\(getpid()).tmp"
            fd = open(t, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
            guard fd >= 0 else {
                throw CocomemError(.io, "cannot write '\(path)': \(String(cString: strerror(errno)))")
            }
            tempPath = t
            InterruptCleanup.register(t)
        }
    }

    #if os(Linux)
    /// `O_TMPFILE` (`__O_TMPFILE | O_DIRECTORY`), which Glibc's module does not export.
    static let oTmpfile: Int32 = 0o20000000 | O_DIRECTORY
    #endif

    /// Bytes written since writeback of this file was last started.
    private var writtenSinceWriteback: UInt64 = 0

    /// Bytes written between two starts of writeback (`startWriteback()`).
    static let writebackInterval: UInt64 = 32 << 20

    /// `sync_file_range(2)`, looked up once at run time: Swift's Glibc
    /// module does not export it. Nil where the C library lacks it.
    private static let syncFileRange: (@convention(c) (Int32, Int64, Int64, UInt32) -> Int32)? = {
        #if os(Linux)
        guard let handle = dlopen(nil, RTLD_NOW), let symbol = dlsym(handle, "sync_file_range") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (Int32, Int64, Int64, UInt32) -> Int32).self)
        #else
        return nil
        #endif
    }()

    /// Counts `count` bytes written and, every `writebackInterval` bytes,
    /// starts writeback of the file's dirty pages without waiting for it
    /// (`sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE)`). The `fsync`
    /// in `commit()` then waits only for the last few MiB instead of
    /// writing the whole file after the pipeline has finished: the disk
    /// works while the pipeline does. The bytes written are the same; where
    /// the call is missing or fails, `commit()`'s `fsync` does all of it.
    /// - Complexity: O(1) amortised; the kernel walks the dirty pages.
    private func wrote(_ count: UInt64) {
        writtenSinceWriteback += count
        guard writtenSinceWriteback >= Self.writebackInterval else { return }
        writtenSinceWriteback %= Self.writebackInterval
        if Self.syncFileRange?(fd, 0, 0, 2) == 0 { writebackStarts += 1 }   // 2: SYNC_FILE_RANGE_WRITE
    }

    /// How many times writeback was started early (for tests).
    package private(set) var writebackStarts = 0

    deinit {
        if !committed { close(fd); if let t = tempPath { unlink(t) } }
        if let t = tempPath { InterruptCleanup.unregister(t) }
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
        wrote(UInt64(bytes.count))
    }

    public func write(_ bytes: [UInt8], at offset: UInt64) throws {
        try bytes.withUnsafeBytes { try write($0, at: offset) }
    }

    /// Whether `sendfile` can copy into this file (false after it said
    /// EINVAL or ENOSYS: the caller writes from memory).
    private var canSendfile = true

    /// Copies `count` bytes of the file open as `source` from `sourceOffset`
    /// to `offset` of this file inside the kernel (`sendfile`, which since
    /// Linux 2.6.33 writes to any file): the bytes go from the source's page
    /// cache to this file's without passing through this process's memory
    /// (no mapping to fault in, no buffer). `copy_file_range` would do the
    /// same within one filesystem but says EXDEV between two (an input on
    /// disk, an output on tmpfs), and Swift's Glibc module does not export it.
    /// Returns the bytes copied, fewer where the source ends early (it was
    /// truncated), or nil where the kernel cannot copy into this file,
    /// before anything was copied.
    /// - Complexity: O(count) in the kernel, a system call per `writebackInterval`.
    func copy(from source: Int32, at sourceOffset: UInt64, count: UInt64, to offset: UInt64) throws -> UInt64? {
        guard canSendfile else { return nil }
        var done: UInt64 = 0
        while done < count {
            var inOff = off_t(sourceOffset + done)
            var n = -1
            if lseek(fd, off_t(offset + done), SEEK_SET) >= 0 {
                // At most an interval a call (Linux moves at most 2 GiB - 4 KiB), so writeback starts inside long copies.
                n = sendfile(fd, source, &inOff, Int(min(count - done, Self.writebackInterval)))
            }
            if n < 0 {
                if errno == EINTR { continue }
                if done == 0, errno == EINVAL || errno == ENOSYS { canSendfile = false; return nil }
                throw CocomemError(.io, "writing '\(path)' failed: \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }   // the source ended
            done += UInt64(n)
            wrote(UInt64(n))
        }
        return done
    }

    /// Sets the file's length; pages never written read as zeros.
    public func setSize(_ size: UInt64) throws {
        guard size <= UInt64(Int64.max), ftruncate(fd, off_t(size)) == 0 else {
            throw CocomemError(.io, "writing '\(path)' failed: \(String(cString: strerror(errno)))")
        }
    }

    /// Flushes the file and puts it in place: linked in as the target if
    /// there is none, else linked under a temporary name and renamed over
    /// the (regular) target.
    public func commit() throws {
        func fail(_ what: String) -> CocomemError {
            let e = String(cString: strerror(errno))
            if let t = tempPath { unlink(t) }
            return CocomemError(.io, "\(what) '\(path)' failed: \(e)")
        }
        guard fsync(fd) == 0 else { let e = fail("writing"); close(fd); committed = true; throw e }
        defer { committed = true }
        do { try OutputPaths.refuseNonRegular(path) } catch { close(fd); if let t = tempPath { unlink(t) }; throw error }
        var source = tempPath
        if source == nil {
            // Name the unnamed file: straight as the target when there is none.
            if linkat(AT_FDCWD, "/proc/self/fd/\(fd)", AT_FDCWD, path, AT_SYMLINK_FOLLOW) == 0 { close(fd); return }
            guard errno == EEXIST else { let e = fail("linking the finished dump to"); close(fd); throw e }
            let t = dir + "/." + URL(fileURLWithPath: path).lastPathComponent + ".cocomem-\(getpid()).tmp"
            unlink(t)
            guard linkat(AT_FDCWD, "/proc/self/fd/\(fd)", AT_FDCWD, t, AT_SYMLINK_FOLLOW) == 0 else {
                let e = fail("linking the finished dump to"); close(fd); throw e
            }
            source = t
        }
        guard close(fd) == 0 else { let e = fail("writing"); if let s = source { unlink(s) }; throw e }
        guard rename(source!, path) == 0 else {
            let e = String(cString: strerror(errno))
            unlink(source!)
            throw CocomemError(.io, "cannot rename the finished dump to '\(path)': \(e)")
        }
    }
}

/// Checks on the files a dump run writes, made before anything is written
/// (makedumpfile's `check_dump_file()` and more).
public enum OutputPaths {
    /// What a file that is not a regular one is, for errors (outputs and inputs).
    static func kind(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFIFO: return "a FIFO"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFDIR: return "a directory"
        case S_IFSOCK: return "a socket"
        case S_IFLNK: return "a symbolic link"
        default: return "not a regular file"
        }
    }

    /// Throws if `path` exists as anything but a regular file: a dump never
    /// replaces a device node, a FIFO, a directory or a symbolic link, even
    /// with `-f`.
    public static func refuseNonRegular(_ path: String) throws {
        var st = stat()
        guard lstat(path, &st) == 0 else { return }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw CocomemError(.io, "cannot write '\(path)': it is \(kind(st.st_mode)), and only a regular file is ever replaced (even with -f)")
        }
    }

    /// Checks every output before the run writes any: two outputs may not
    /// name one file, an output may not be one of the inputs, an existing
    /// non-regular file is never replaced, and an existing regular file is
    /// replaced only with `force`, as makedumpfile's `-f` (without it:
    /// "Can't open the dump file (PATH). File exists", its message).
    public static func check(outputs: [(option: String, path: String)], inputs: [String], force: Bool) throws {
        func identity(_ p: String) -> (dev_t, ino_t)? {
            var st = stat()
            return stat(p, &st) == 0 ? (st.st_dev, st.st_ino) : nil
        }
        func standardized(_ p: String) -> String { URL(fileURLWithPath: p).standardizedFileURL.path }
        func same(_ a: String, _ b: String) -> Bool {
            if let x = identity(a), let y = identity(b) { return x == y }
            return standardized(a) == standardized(b)
        }
        for (i, o) in outputs.enumerated() {
            for p in outputs[..<i] where same(p.path, o.path) {
                throw CocomemError(.invalidArgument, "\(p.option) and \(o.option) both name '\(o.path)': each output needs its own file")
            }
            for input in inputs where same(input, o.path) {
                throw CocomemError(.invalidArgument, "\(o.option) '\(o.path)' is the input vmcore: writing it would replace the file being read")
            }
            try refuseNonRegular(o.path)
            guard access(o.path, F_OK) == 0 else { continue }
            if !force {
                throw CocomemError(.io, "Can't open the dump file (\(o.path)). \(String(cString: strerror(EEXIST))) (give -f to overwrite it)")
            }
            guard access(o.path, W_OK) == 0 else {
                throw CocomemError(.io, "Can't open the dump file (\(o.path)). \(String(cString: strerror(errno)))")
            }
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
