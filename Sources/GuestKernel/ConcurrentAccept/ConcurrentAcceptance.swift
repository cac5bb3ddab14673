public import CoCoGuest
public import CostModel
import MemoryModel

/// One vCPU's call of `cond_accept_memory()` (mm/page_alloc.c), starting
/// at that vCPU's clock: it loops
/// `try_to_accept_memory_one()` up to `blocks` times, each taking the head
/// block of `zone->unaccepted_pages` and accepting it, and stops early
/// when the list is empty.
public struct AcceptRequest: Sendable, Equatable {
    public var vcpu: Int
    /// `to_accept / MAX_ORDER_NR_PAGES`, rounded up: the blocks it asks for.
    public var blocks: UInt64
    public init(vcpu: Int, blocks: UInt64) { self.vcpu = vcpu; self.blocks = blocks }
}

/// What the actors met on their way, summed over them.
public struct ConcurrentAcceptStats: Sendable, Equatable {
    /// `zone->lock` around `__accept_page()`'s `list_del()` and the free.
    public var zoneLock = ContentionStats()
    /// `unaccepted_memory_lock` in `accept_memory()`.
    public var unacceptedLock = ContentionStats()
    /// `accept_memory()` calls that found an overlapping `accepting_list`
    /// entry (before 50e782a86c98: the lock held by another call) at least once.
    public var listWaits: UInt64 = 0
    /// Times a call looked at the list and had to go back to `retry:`.
    public var listRetries: UInt64 = 0
    /// Virtual time calls spent spinning on the list, summed, in picoseconds.
    public var listWaitPicoseconds: UInt64 = 0
    /// Blocks accepted and freed into the buddy allocator.
    public var blocksAccepted: UInt64 = 0
    public init() {}
}

/// Several vCPUs running `cond_accept_memory()` on one zone at once, as
/// actors on the seeded `VirtualTimeScheduler`, each `accept_memory()` call
/// taken at its real lock steps (`UnacceptedMemory.step`):
///
/// 1. `try_to_accept_memory_one()`: `zone->lock`, `list_del()` of the head
///    block (which block a vCPU gets depends on who got the lock first),
///    `NR_UNACCEPTED`; `__free_pages_ok()`'s later section under the same
///    lock is folded into this one (`kernel.zone_lock_section` is the cost of
///    both, per block).
/// 2. `accept_memory(block, 4 MiB)`: `unaccepted_memory_lock`, the
///    `accepting_list` walk (an overlapping entry sends the call back to
///    `retry:`), `list_add()`, unlock; `arch_accept_memory()` with the lock
///    dropped; the lock again for `bitmap_clear()`, the next run and
///    `list_del()`. Each section costs `kernel.unaccepted_lock_section`.
///
/// A lock asked for at `t` is granted at `max(t, freeAt)` (queued spinlocks
/// are FIFO and the scheduler hands out requests in time order), and the
/// work under it runs at an event at that grant time, so every
/// `accepting_list` check sees the list exactly as it is then. A call that
/// meets an overlapping entry spins: it is parked and re-checks when any
/// call leaves the list (the moment its spinning could first succeed); the
/// time in between is spin time on its vCPU (`PhaseClock.spin`).
///
/// Bulk: once one actor is left and neither lock is held past its clock,
/// nothing can contend any more; its remaining blocks are accepted with
/// `UnacceptedMemory.acceptBlocks` (which replays uniform stretches) and
/// the lock sections charged and counted without events. Tests hold this
/// equal to stepping every block.
public struct ConcurrentAcceptance {
    enum Stage {
        case take
        case retry(AcceptMemoryCall)
        case accepting(AcceptMemoryCall)
        case clearing(AcceptMemoryCall)
        case parked(AcceptMemoryCall, since: UInt64)
        case done
    }

    struct Actor {
        let vcpu: Int
        var left: UInt64
        var stage: Stage = .take
        /// The lock for the next section was granted later than asked: the
        /// section runs at the event at the grant time without asking again.
        var holdsGrant = false
        /// The current call has already counted one list wait.
        var waited = false
    }

    public let memory: UnacceptedMemory
    public let costs: CostTable
    /// Step every block even when one actor is left (tests).
    public var stepEverything = false
    public private(set) var stats = ConcurrentAcceptStats()
    /// Blocks accepted in bulk (not stepped) and events handed out.
    public private(set) var replayedBlocks: UInt64 = 0
    public private(set) var events: UInt64 = 0

    var zoneLock = QueuedSpinLock()
    var unacceptedLock = QueuedSpinLock()
    var actors: [Actor] = []
    var scheduler: VirtualTimeScheduler
    var failure: AcceptOutcome = .ok

    public init(memory: UnacceptedMemory, costs: CostTable, seed: UInt64) {
        self.memory = memory
        self.costs = costs
        scheduler = VirtualTimeScheduler(actors: 1, seed: seed)
        self.seed = seed
    }
    let seed: UInt64

    var zoneHold: UInt64 { costs.vcpuPicoseconds[Op.kernelZoneLockSection.index] }
    var listHold: UInt64 { costs.vcpuPicoseconds[Op.kernelUnacceptedLockSection.index] }

    /// Runs `requests` (one per vCPU) against `zone` until every actor is
    /// done or one `arch_accept_memory()` fails (the guest is gone then).
    /// Each actor's time is its vCPU's clock in `clock`.
    /// - Complexity: O(events · log vCPUs) stepped, plus the bulk tail's
    ///   `acceptBlocks`; events are about 5 per block while two or more
    ///   actors remain.
    public mutating func run(_ requests: [AcceptRequest], zone: inout Zone, clock: inout PhaseClock) -> AcceptOutcome {
        precondition(Set(requests.map(\.vcpu)).count == requests.count, "one cond_accept_memory() per vCPU at a time")
        actors = requests.map { Actor(vcpu: $0.vcpu, left: $0.blocks) }
        scheduler = VirtualTimeScheduler(actors: max(1, requests.count), seed: seed)
        for (i, r) in requests.enumerated() {
            if r.blocks == 0 { actors[i].stage = .done; continue }
            scheduler.schedule(i, at: clock.vcpuPicoseconds[r.vcpu])
        }
        while failure == .ok, let (i, t) = scheduler.next() {
            events &+= 1
            stepActor(i, at: t, zone: &zone, clock: &clock)
        }
        stats.zoneLock = zoneLock.stats
        stats.unacceptedLock = unacceptedLock.stats
        return failure
    }

    /// Asks for `lock` at `t`; true when the section may run now (granted
    /// at `t`, or this is the event at the grant), false when the actor was
    /// re-queued at the grant.
    mutating func lockGranted(_ i: Int, _ zoneSide: Bool, at t: UInt64) -> Bool {
        if actors[i].holdsGrant { actors[i].holdsGrant = false; return true }
        let s = zoneSide ? zoneLock.acquire(at: t, hold: zoneHold) : unacceptedLock.acquire(at: t, hold: listHold)
        if s == t { return true }
        actors[i].holdsGrant = true
        scheduler.schedule(i, at: s)
        return false
    }

    mutating func stepActor(_ i: Int, at t: UInt64, zone: inout Zone, clock: inout PhaseClock) {
        let v = actors[i].vcpu
        clock.spin(vcpu: v, until: t)
        switch actors[i].stage {
        case .done, .parked:
            return
        case .take:
            // `while (to_accept > 0)`: done asking.
            guard actors[i].left > 0 else { actors[i].stage = .done; return }
            if canReplay(i, at: t) { replay(i, zone: &zone, clock: &clock); return }
            guard lockGranted(i, true, at: t) else { return }
            clock.charge(.kernelZoneLockSection, vcpu: v, costs: costs)
            guard let head = zone.takeUnaccepted(1).first else { actors[i].stage = .done; return }
            let call = memory.beginAcceptMemory(start: head.first.address.value, size: 4 << 20, vcpu: v)
            actors[i].waited = false
            if case .done(let o) = call.phase {
                // Outside the table (nothing to do) or the bitmap read faulted.
                if o != .ok { failure = o; return }
                finishBlock(i, zone: &zone)
            } else {
                actors[i].stage = .retry(call)
            }
        case .retry(var call):
            guard lockGranted(i, false, at: t) else { return }
            clock.charge(.kernelUnacceptedLockSection, vcpu: v, costs: costs)
            let step = memory.step(&call, clock: &clock)
            switch step {
            case .spun:
                stats.listRetries &+= 1
                if !actors[i].waited { actors[i].waited = true; stats.listWaits &+= 1 }
                actors[i].stage = .parked(call, since: clock.vcpuPicoseconds[v])
                return
            case .nothingToAccept:
                wakeParked(at: clock.vcpuPicoseconds[v])
                finishBlock(i, zone: &zone)
            default:
                actors[i].stage = .accepting(call)
            }
        case .accepting(var call):
            if case .accepted(_, let o) = memory.step(&call, clock: &clock), o != .ok { failure = o; return }
            actors[i].stage = .clearing(call)
        case .clearing(var call):
            guard lockGranted(i, false, at: t) else { return }
            clock.charge(.kernelUnacceptedLockSection, vcpu: v, costs: costs)
            memory.step(&call, clock: &clock)
            if call.isDone {
                wakeParked(at: clock.vcpuPicoseconds[v])
                finishBlock(i, zone: &zone)
            } else {
                actors[i].stage = .accepting(call)
            }
        }
        scheduler.schedule(i, at: clock.vcpuPicoseconds[v])
    }

    /// `__free_pages_ok()` of the accepted block: into the buddy lists.
    mutating func finishBlock(_ i: Int, zone: inout Zone) {
        zone.freePages += Zone.blockPages
        actors[i].left -= 1
        stats.blocksAccepted &+= 1
        actors[i].stage = .take
    }

    /// A call left `accepting_list` (or dropped the lock held across its
    /// accept) at `t`: every spinning call re-checks from then.
    mutating func wakeParked(at t: UInt64) {
        for j in actors.indices {
            guard case .parked(let call, let since) = actors[j].stage else { continue }
            stats.listWaitPicoseconds &+= t - since
            actors[j].stage = .retry(call)
            scheduler.schedule(j, at: t)
        }
    }

    /// One actor left, between blocks, and neither lock held past `t`: no
    /// one can make it wait any more.
    func canReplay(_ i: Int, at t: UInt64) -> Bool {
        guard !stepEverything, !actors[i].holdsGrant, t >= zoneLock.freeAt, t >= unacceptedLock.freeAt else { return false }
        return actors.indices.allSatisfy { j in
            if j == i { return true }
            if case .done = actors[j].stage { return true }
            return false
        }
    }

    /// The last actor's remaining blocks in bulk: the same operations and
    /// lock takes as stepping them, none of which can wait.
    mutating func replay(_ i: Int, zone: inout Zone, clock: inout PhaseClock) {
        let v = actors[i].vcpu
        var zoneTakes: UInt64 = 0, listTakes: UInt64 = 0
        defer {
            zoneLock.recordUncontended(zoneTakes, lastReleasedAt: clock.vcpuPicoseconds[v])
            unacceptedLock.recordUncontended(listTakes, lastReleasedAt: clock.vcpuPicoseconds[v])
            actors[i].stage = .done
        }
        while actors[i].left > 0 {
            let runs = zone.takeUnaccepted(actors[i].left)
            guard !runs.isEmpty else { break }
            for run in runs {
                let arch0 = memory.archCalls
                let o = memory.acceptBlocks(firstBlockAddress: run.first.address.value, count: run.count, vcpu: v, clock: &clock)
                if o != .ok { failure = o; return }
                // Per block: one zone->lock section; per call one list section
                // at retry: and one per run it accepted.
                let lists = run.count + (memory.archCalls - arch0)
                clock.charge(.kernelZoneLockSection, run.count, vcpu: v, costs: costs)
                clock.charge(.kernelUnacceptedLockSection, lists, vcpu: v, costs: costs)
                zoneTakes += run.count
                listTakes += lists
                zone.freePages += run.count * Zone.blockPages
                actors[i].left -= run.count
                stats.blocksAccepted &+= run.count
                replayedBlocks &+= run.count
            }
        }
        // Stepping would take the zone lock once more and find the list empty.
        if actors[i].left > 0 {
            clock.charge(.kernelZoneLockSection, vcpu: v, costs: costs)
            zoneTakes += 1
        }
    }
}
