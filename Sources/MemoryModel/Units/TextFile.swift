import Foundation

/// Reads a small text input (a memory map, a calls file, a calibration
/// file) whole, after checking what it is: a regular file (a FIFO or a
/// device would block or never end) of at most `maxBytes` bytes (its size is
/// checked before anything is read, so a huge file is refused, not loaded),
/// in UTF-8.
///
/// - Throws: `CocomemError(.io)` naming `what`, the path and the reason.
public func readTextFile(_ path: String, what: String, maxBytes: Int) throws -> String {
    let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
    guard fd >= 0 else { throw CocomemError(.io, "cannot read \(what) '\(path)': \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var st = stat()
    guard fstat(fd, &st) == 0 else { throw CocomemError(.io, "cannot read \(what) '\(path)': \(String(cString: strerror(errno)))") }
    guard (st.st_mode & S_IFMT) == S_IFREG else {
        throw CocomemError(.io, "cannot read \(what) '\(path)': not a regular file")
    }
    guard st.st_size <= maxBytes else {
        throw CocomemError(.io, "cannot read \(what) '\(path)': \(st.st_size) bytes, more than the \(maxBytes)-byte limit for one")
    }
    var bytes = [UInt8](repeating: 0, count: Int(st.st_size))
    var done = 0
    while done < bytes.count {
        let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + done, $0.count - done) }
        if n < 0, errno == EINTR { continue }
        guard n > 0 else { break }
        done += n
    }
    guard let text = String(bytes: bytes[..<done], encoding: .utf8) else {
        throw CocomemError(.io, "cannot read \(what) '\(path)': not UTF-8 text")
    }
    return text
}
