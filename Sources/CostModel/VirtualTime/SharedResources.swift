/// How long actors waited for one shared resource, for reports and tests.
public struct ContentionStats: Sendable, Equatable {
    /// Times the resource was taken.
    public var acquisitions: UInt64 = 0
    /// Times a taker found it busy and waited.
    public var contended: UInt64 = 0
    /// Virtual time spent waiting, summed over takers, in picoseconds.
    public var waitPicoseconds: UInt64 = 0
    public init() {}
    package mutating func record(requested t: UInt64, granted s: UInt64) {
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

    /// What `n` calls of `acquire` record when none of them waits, the last
    /// one releasing at `lastReleasedAt`: a holder replayed in bulk because
    /// nobody else takes the lock meanwhile (`ConcurrentAcceptance`).
    /// - Complexity: O(1).
    package mutating func recordUncontended(_ n: UInt64, lastReleasedAt: UInt64) {
        guard n > 0 else { return }
        stats.acquisitions &+= n
        freeAt = max(freeAt, lastReleasedAt)
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
/// `load_unaligned_zeropad()`, calls on adjacent 4 MiB blocks overlap in
/// that unit: of concurrent accepters of consecutive blocks, every other
/// one spins.
///
/// Each entry is a unit range and the virtual time it was on the list. A
/// call arriving at `t` that accepts for `d` gets on the list at the
/// earliest `s >= t` such that `[s, s + d)` meets no overlapping entry: the
/// retry loop has no queue, so whoever re-checks when the range is clear
/// gets in. Ranges are unit indices, half-open. Entries that ended before
/// an arrival are dropped, so arrivals must come in non-decreasing time
/// (the least-loaded vCPU's clock, or the scheduler's order).
public struct AcceptingList: Sendable, Equatable {
    struct Entry: Sendable, Equatable { var units: Range<UInt64>; var start: UInt64; var end: UInt64 }
    private var entries: [Entry] = []
    public private(set) var stats = ContentionStats()
    public init() {}

    /// Places a call on `units` arriving at `t` that accepts for `d`
    /// picoseconds; returns when it got on the list (it leaves at that
    /// time plus `d`). Records the wait.
    /// - Complexity: O(e²) in the entries in flight, at most the number of vCPUs.
    public mutating func place(_ units: Range<UInt64>, arrival t: UInt64, duration d: UInt64) -> UInt64 {
        entries.removeAll { $0.end <= t }
        let blocking = entries.filter { $0.units.overlaps(units) }
        var s = t
        // The earliest start among t and the blocking entries' ends whose window is clear.
        for candidate in ([t] + blocking.map(\.end).filter { $0 > t }).sorted() {
            let e = candidate &+ d
            if !blocking.contains(where: { $0.start < e && candidate < $0.end }) { s = candidate; break }
            s = candidate
        }
        stats.record(requested: t, granted: s)
        if !units.isEmpty { entries.append(Entry(units: units, start: s, end: s &+ d)) }
        return s
    }

    /// Accepts on the list at `t`.
    public func inFlight(at t: UInt64) -> Int { entries.filter { $0.start <= t && t < $0.end }.count }
}

/// The shared resources of one phase, on that phase's time base (each
/// `PhaseClock` starts at 0, so the timelines travel with it). Memory-write
/// bandwidth is not a timeline here: `PhaseClock.seconds` bounds a phase by
/// `bytes / bandwidth`, which is where it matters for acceptance (the
/// accept-90g plateau).
public struct SharedTimelines: Sendable, Equatable {
    /// `zone->lock`, per zone index.
    public var zoneLocks: [QueuedSpinLock] = []
    /// `accepting_list`.
    public var acceptingList = AcceptingList()
    /// `unaccepted_memory_lock` held across `arch_accept_memory()`: kernels
    /// before 50e782a86c98 (6.5.0–6.5.8), which have no accepting list.
    public var unacceptedMemoryLock = QueuedSpinLock()
    public init() {}

    /// `zone->lock` of zone `i`.
    public mutating func acquireZoneLock(_ i: Int, at t: UInt64, hold: UInt64) -> UInt64 {
        while zoneLocks.count <= i { zoneLocks.append(QueuedSpinLock()) }
        return zoneLocks[i].acquire(at: t, hold: hold)
    }
}

/// A TDX module shared/exclusive lock: `acquire_sharex_lock_sh()` and
/// `acquire_sharex_lock_ex()` (intel/tdx-module, src/common/helpers and
/// the `sharex_lock_t` users: `tdcs.epoch_tracking.epoch_lock`,
/// `tdcs.executions_ctl_fields.secure_ept_lock`). The module never waits:
/// a try that meets an incompatible holder fails, and the SEAMCALL returns
/// TDX_OPERAND_BUSY to the host (or, for TDH.VP.ENTER's epoch section,
/// fails the entry), which retries. A shared try fails only while an
/// exclusive holder is in; an exclusive try fails while anyone is in.
/// Tries must come in non-decreasing time (the scheduler's order); holds
/// are known when taken.
public struct ShareExclusiveTryLock: Sendable, Equatable {
    /// When the last shared holder granted so far releases.
    public private(set) var sharedFreeAt: UInt64 = 0
    /// When the exclusive holder releases.
    public private(set) var exclusiveFreeAt: UInt64 = 0
    /// Successful tries, shared and exclusive.
    public private(set) var sharedAcquisitions: UInt64 = 0
    public private(set) var exclusiveAcquisitions: UInt64 = 0
    /// Tries that failed (TDX_OPERAND_BUSY), shared and exclusive.
    public private(set) var sharedBusy: UInt64 = 0
    public private(set) var exclusiveBusy: UInt64 = 0
    public init() {}

    /// Tries the lock shared at `t` for `hold`; false is BUSY.
    /// - Complexity: O(1).
    public mutating func tryShared(at t: UInt64, hold: UInt64) -> Bool {
        if exclusiveFreeAt > t { sharedBusy &+= 1; return false }
        sharedAcquisitions &+= 1
        sharedFreeAt = max(sharedFreeAt, t &+ hold)
        return true
    }

    /// Tries the lock exclusive at `t` for `hold`; false is BUSY.
    /// - Complexity: O(1).
    public mutating func tryExclusive(at t: UInt64, hold: UInt64) -> Bool {
        if exclusiveFreeAt > t || sharedFreeAt > t { exclusiveBusy &+= 1; return false }
        exclusiveAcquisitions &+= 1
        exclusiveFreeAt = t &+ hold
        return true
    }
}
