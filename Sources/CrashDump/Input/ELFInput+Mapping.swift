import Foundation

/// A read-only private mapping of a whole input file, as makedumpfile maps
/// `/proc/vmcore` or its copy (`mmap_dump_file()`/`read_with_mmap()`), so
/// pages are compressed or checked straight from the page cache without a
/// copy into a buffer.
///
/// A file truncated under a mapping makes an access past its new end raise
/// SIGBUS. Two guards answer it: `stillWhole()` (an `fstat` before each
/// batch) sends a batch of a file that has shrunk to the `pread` path, which
/// reports the short read as an error; and, for a truncation between that
/// check and the access, a SIGBUS handler (`MappedRegions`) replaces the
/// faulting page of a registered mapping with a zero page and marks the
/// mapping as damaged, so the access reads zeros and `ELFInput.checkReads()`
/// fails the dump with an error instead of the process dying. A SIGBUS
/// anywhere else is left to the default action.
struct FileMapping {
    let base: UnsafeRawPointer
    let length: Int
    /// The slot in `MappedRegions`.
    let slot: Int

    /// Maps `length` bytes of `fd`; nil where the file cannot be mapped
    /// (the `pread` path is then used) or every guard slot is taken.
    init?(fd: Int32, length: UInt64) {
        guard length > 0, length <= UInt64(Int.max) else { return nil }
        let p = mmap(nil, Int(length), PROT_READ, MAP_PRIVATE, fd, 0)
        guard let p, p != MAP_FAILED else { return nil }
        guard let slot = MappedRegions.register(base: UInt(bitPattern: p), length: UInt(length)) else {
            munmap(p, Int(length))
            return nil
        }
        // Pages are read once, front to back, by each worker.
        _ = madvise(p, Int(length), MADV_SEQUENTIAL)
        base = UnsafeRawPointer(p)
        self.length = Int(length)
        self.slot = slot
    }

    /// Whether an access hit a truncated part (and read zeros).
    var damaged: Bool { MappedRegions.damaged(slot) }

    func unmap() {
        MappedRegions.unregister(slot)
        munmap(UnsafeMutableRawPointer(mutating: base), length)
    }
}

/// The live input mappings, for the SIGBUS handler: fixed slots of (base,
/// length, damaged) words, written by registering code under a lock and
/// read by the handler without one (word stores are atomic on the 64-bit
/// targets this runs on; a slot's length is cleared before it is reused).
enum MappedRegions {
    static let slots = 64
    /// slots × (base, length, damaged).
    nonisolated(unsafe) static let words: UnsafeMutablePointer<UInt> = {
        let p = UnsafeMutablePointer<UInt>.allocate(capacity: 3 * slots)
        p.initialize(repeating: 0, count: 3 * slots)
        return p
    }()
    static let lock = NSLock()
    nonisolated(unsafe) static var installed = false
    /// The SIGBUS action before ours (the Swift runtime's backtracer, or the
    /// default), given back any SIGBUS that is not an input mapping's.
    nonisolated(unsafe) static var previous = sigaction()

    static func register(base: UInt, length: UInt) -> Int? {
        lock.lock(); defer { lock.unlock() }
        install()
        for s in 0..<slots where words[3 * s + 1] == 0 {
            words[3 * s + 2] = 0
            words[3 * s] = base
            words[3 * s + 1] = length
            return s
        }
        return nil
    }

    static func unregister(_ s: Int) {
        lock.lock(); defer { lock.unlock() }
        words[3 * s + 1] = 0
        words[3 * s] = 0
    }

    static func damaged(_ s: Int) -> Bool { words[3 * s + 2] != 0 }

    /// Installs the SIGBUS handler once (called under `lock`).
    private static func install() {
        guard !installed else { return }
        installed = true
        var sa = sigaction()
        sa.__sigaction_handler.sa_sigaction = { _, info, _ in MappedRegions.handle(info) }
        sa.sa_flags = SA_SIGINFO
        sigemptyset(&sa.sa_mask)
        sigaction(SIGBUS, &sa, &previous)
    }

    /// The handler: only `mmap` and word stores, no allocation or lock.
    static func handle(_ info: UnsafeMutablePointer<siginfo_t>?) {
        let addr = UInt(bitPattern: info?.pointee._sifields._sigfault.si_addr)
        for s in 0..<slots {
            let b = words[3 * s], l = words[3 * s + 1]
            guard l != 0, addr >= b, addr - b < l else { continue }
            let page = addr & ~UInt(4095)
            // A zero page over the truncated one: the access is retried and reads zeros.
            if mmap(UnsafeMutableRawPointer(bitPattern: page), 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != MAP_FAILED {
                words[3 * s + 2] = 1
                return
            }
        }
        // Not an input mapping: the previous action takes it (raised now, delivered on return).
        sigaction(SIGBUS, &previous, nil)
        raise(SIGBUS)
    }
}
