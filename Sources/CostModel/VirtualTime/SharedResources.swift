/// How long actors waited for one shared resource, for reports and tests.
public struct ContentionStats: Sendable, Equatable {
    /// Times the resource was taken.
    public var acquisitions: UInt64 = 0
    /// Times a taker found it busy and waited.
    public var contended: UInt64 = 0
    /// Virtual time spent waiting, summed over takers, in picoseconds.
    public var waitPicoseconds: UInt64 = 0
    public init() {}
    mutating func record(requested t: UInt64, granted s: UInt64) {
        acquisitions &+= 1
        if s > t { contended &+= 1; waitPicoseconds &+= s - t }
    }
}

/// A spinlock taken in arrival order: the kernel's queued spinlock
/// (kernel/locking/qspinlock.c, an MCS queue: waiters are granted the lock
/// in the order they arrived). The lock is a timeline: it is free from
/// `freeAt` on. Requests must come in non-decreasing time, as the
/// `VirtualTimeScheduler` hands them out; then granting each at
/// `max(arrival, freeAt)` is exactly FIFO.
///
/// Used for `zone->lock` around `__accept_page()`'s `list_del()` and
/// `__free_pages_ok()` (mm/page_alloc.c) and for `unaccepted_memory_lock`
/// (drivers/firmware/efi/unaccepted_memory.c).
public struct QueuedSpinLock: Sendable, Equatable {
    public private(set) var freeAt: UInt64 = 0
    public private(set) var stats = ContentionStats()
    public init() {}

    /// Takes the lock at `t` for `hold` picoseconds; returns when the
    /// holder got it (it releases at that time plus `hold`).
    /// - Complexity: O(1).
    public mutating func acquire(at t: UInt64, hold: UInt64) -> UInt64 {
        let start = max(t, freeAt)
        stats.record(requested: t, granted: start)
        freeAt = start &+ hold
        return start
    }
}

/// A reader-writer lock that lets a writer in once the readers ahead of it
/// are done and holds later readers back behind the writer: the kernel's
/// queued rwlock (kernel/locking/qrwlock.c), which is what KVM's
/// `kvm->mmu_lock` is on x86 (`KVM_HAVE_MMU_RWLOCK`): TDP MMU faults take it
/// for read (`kvm_tdp_mmu_map()` under `read_lock()`), splits, zaps and
/// memory-attribute changes for write. Requests in non-decreasing time.
public struct ReaderWriterLock: Sendable, Equatable {
    /// When the last writer granted so far releases.
    public private(set) var writerFreeAt: UInt64 = 0
    /// When the last reader granted so far releases.
    public private(set) var readersFreeAt: UInt64 = 0
    public private(set) var readStats = ContentionStats()
    public private(set) var writeStats = ContentionStats()
    public init() {}

    /// `read_lock()` at `t` for `hold`: waits only for writers.
    /// - Complexity: O(1).
    public mutating func acquireRead(at t: UInt64, hold: UInt64) -> UInt64 {
        let start = max(t, writerFreeAt)
        readStats.record(requested: t, granted: start)
        readersFreeAt = max(readersFreeAt, start &+ hold)
        return start
    }

    /// `write_lock()` at `t` for `hold`: waits for every holder.
    /// - Complexity: O(1).
    public mutating func acquireWrite(at t: UInt64, hold: UInt64) -> UInt64 {
        let start = max(t, writerFreeAt, readersFreeAt)
        writeStats.record(requested: t, granted: start)
        writerFreeAt = start &+ hold
        return start
    }
}

/// `accepting_list` of drivers/firmware/efi/unaccepted_memory.c: the unit
/// ranges `accept_memory()` calls are accepting right now. A call whose
/// range overlaps one on the list, at `unit_size` granularity, drops
/// `unaccepted_memory_lock`, spins and retries until that one is done
/// ("Somebody else accepting the range. Or at least part of it."). Since
/// `accept_memory()` widens a unit-aligned end by one guard unit for
/// `load_unaligned_zeropad()`, two calls on adjacent 4 MiB blocks overlap
/// in that unit: concurrent accepters of consecutive blocks serialise.
///
/// Ranges are in units (`UInt64` unit indices, half-open). Requests in
/// non-decreasing time; entries that ended before a request are dropped.
public struct AcceptingList: Sendable, Equatable {
    struct Entry: Sendable, Equatable { var units: Range<UInt64>; var end: UInt64 }
    private var entries: [Entry] = []
    public private(set) var stats = ContentionStats()
    public init() {}

    /// The earliest time at or after `t` when no accept overlapping
    /// `units` is in flight: where a caller arriving at `t` gets past the
    /// list check. Records the wait.
    /// - Complexity: O(entries in flight), at most the number of actors.
    public mutating func clearTime(for units: Range<UInt64>, at t: UInt64) -> UInt64 {
        entries.removeAll { $0.end <= t }
        var s = t
        for e in entries where e.units.overlaps(units) { s = max(s, e.end) }
        stats.record(requested: t, granted: s)
        return s
    }

    /// `list_add(&range.list, &accepting_list)` for a call that accepts
    /// until `end`; it leaves the list (`list_del()`) then.
    /// - Complexity: O(1).
    public mutating func insert(_ units: Range<UInt64>, until end: UInt64) {
        guard !units.isEmpty else { return }
        entries.append(Entry(units: units, end: end))
    }

    /// Accepts still in flight at `t`.
    public func inFlight(at t: UInt64) -> Int { entries.filter { $0.end > t }.count }
}

/// Memory-write bandwidth shared by every vCPU zeroing pages (the TDX
/// module's `TDG.MEM.PAGE.ACCEPT` clears with MOVDIR64B, the host clears the
/// page it allocates): a server that moves `bytesPerSecond`, first come
/// first served. Its long-run effect is `PhaseClock`'s `bytes / bandwidth`
/// bound; this timeline gives when one transfer finishes when several
/// vCPUs zero at once.
public struct MemoryBandwidth: Sendable, Equatable {
    public let bytesPerSecond: Double
    public private(set) var busyUntil: UInt64 = 0
    public private(set) var stats = ContentionStats()
    public init(bytesPerSecond: Double) { self.bytesPerSecond = bytesPerSecond }

    /// Moves `bytes` starting no earlier than `t`; returns when it is done.
    /// - Complexity: O(1).
    public mutating func transfer(_ bytes: UInt64, at t: UInt64) -> UInt64 {
        let start = max(t, busyUntil)
        stats.record(requested: t, granted: start)
        busyUntil = start &+ UInt64((Double(bytes) / bytesPerSecond * 1e12).rounded())
        return busyUntil
    }
}
