import Foundation

/// Anonymous memory aligned to 2 MiB and marked `MADV_HUGEPAGE`, for the
/// write pipeline's batch slots: with transparent huge pages in `madvise`
/// mode (`/sys/kernel/mm/transparent_hugepage/enabled`), the first write to
/// each 2 MiB of it is one fault that maps a huge page, instead of one fault
/// per 4 KiB page touched (about 730 per slot in a `-l -d 31` run, 2900 in
/// all; docs/PERFORMANCE.md, session 14). Where the kernel has no huge page
/// free, or THP is off, the region faults in 4 KiB pages as any mapping does.
struct HugePageBuffer {
    static let hugePageSize = 2 << 20
    /// The 2 MiB-aligned start of the usable bytes.
    let base: UnsafeMutableRawPointer
    /// The usable length: the requested count rounded up to 2 MiB.
    let length: Int

    /// Maps at least `byteCount` bytes; nil when the mapping fails.
    init?(byteCount: Int) {
        let h = Self.hugePageSize
        guard byteCount > 0, byteCount <= Int.max - 2 * h else { return nil }
        let length = (byteCount + h - 1) / h * h
        // Map one huge page more than needed and trim the unaligned ends.
        guard let raw = mmap(nil, length + h, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), raw != MAP_FAILED else { return nil }
        let start = UInt(bitPattern: raw), aligned = (start + UInt(h) - 1) & ~UInt(h - 1)
        let head = Int(aligned - start), tail = h - head
        if head > 0 { munmap(raw, head) }
        if tail > 0 { munmap(raw + head + length, tail) }
        base = raw + head
        self.length = length
        // Advice only: without THP the region stays in 4 KiB pages.
        _ = madvise(base, length, MADV_HUGEPAGE)
    }

    func unmap() { munmap(base, length) }
}
