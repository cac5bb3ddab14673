public import CoCoGuest
public import CostModel
import MemoryModel

/// What a workload phase run as actors met, summed over its phases.
public struct WorkloadActorStats: Sendable, Equatable {
    /// `zone->lock` around `try_to_accept_memory_one()`'s `list_del()`, every zone.
    public var zoneLock = ContentionStats()
    /// `unaccepted_memory_lock` in `accept_memory()`.
    public var unacceptedLock = ContentionStats()
    /// `accept_memory()` calls that found an overlapping `accepting_list`
    /// entry (before 50e782a86c98: the lock held by another call) at least once.
    public var listWaits: UInt64 = 0
    /// Virtual time calls spent spinning on the list, summed, in picoseconds.
    public var listWaitPicoseconds: UInt64 = 0
    /// `cond_accept_memory()` calls that accepted (or found the list empty).
    public var acceptCalls: UInt64 = 0
    /// Blocks accepted and freed into the buddy allocator.
    public var blocksAccepted: UInt64 = 0
    /// Blocks accepted by the last actor in bulk, and events the scheduler handed out.
    public var replayedBlocks: UInt64 = 0
    public var events: UInt64 = 0
    /// Phases that ran as actors (others took `allocate()`'s least-loaded loop).
    public var phases: UInt64 = 0
    public init() {}
}

/// An allocating workload phase on several vCPUs as one actor per vCPU on
/// the seeded `VirtualTimeScheduler` (issue 17 §1, goal 1), with the
/// zone's state changing at the step times the kernel changes it:
///
/// - Each vCPU allocates its share of the phase's pages (the pages split
///   evenly, the remainder one each to the first). At each step, at its own
///   clock, it walks its zonelist as `get_page_from_freelist()` does (6.12+:
///   `cond_accept_memory()` for each zone it reaches, before the watermark
///   check; the model's policy per version is `blocksToAccept`), so **every
///   vCPU that finds the zone short accepts itself**: `cond_accept_memory()`
///   computes `to_accept` once, from `NR_FREE_PAGES - NR_UNACCEPTED` at its
///   entry, and a block another vCPU has taken off the list but not yet
///   freed is in neither, so concurrent callers each accept up to the
///   watermark: the overshoot of many allocators.
/// - `try_to_accept_memory_one()`: `zone->lock`, `list_del()` of the head
///   block, `NR_FREE_PAGES` and `NR_UNACCEPTED` down (`Zone.takeUnaccepted`),
///   unlock; `accept_page()` → `accept_memory()` at its lock steps
///   (`UnacceptedMemory.step`: `unaccepted_memory_lock`, `accepting_list`,
///   `arch_accept_memory()` unlocked); `__free_pages_ok()`: the block's pages
///   become free only then, at that step's time. Its own `zone->lock`
///   section is folded into the first one (`kernel.zone_lock_section` is
///   both, as in `ConcurrentAcceptance`).
/// - An allocation of pages is `rmqueue()` of at most one MAX_ORDER block's
///   worth (1024 pages) per step, then their first touch: the granularity at
///   which other vCPUs see a vCPU's allocations (a modelling choice; the
///   real allocator takes pages a per-CPU batch at a time, finer). It does
///   not take `zone->lock` (order-0 pages come from the per-CPU lists).
/// - A vCPU that finds no zone above its floor while blocks are in flight
///   waits until one is freed (the slow path's retry finds it); with none in
///   flight the actors stop and what is left goes to `allocate()`
///   (reclaim, the OOM stop), after every actor.
///
/// Bulk: once one actor is left and no lock is held past its clock nothing
/// can contend; its remaining calls accept their runs with
/// `UnacceptedMemory.acceptBlocks` and its allocations are taken whole, the
/// lock sections charged and counted without events. Tests hold this equal
/// to stepping every block (`WorkloadActorsTests`).
final class WorkloadActors {
    /// One `cond_accept_memory()` call in progress.
    struct AcceptCall {
        let zone: Int
        /// Blocks still asked for (`to_accept` in blocks, fixed at entry).
        var blocks: UInt64
        /// The vCPU's clock at entry: the allocation's stall starts there.
        let started: UInt64
    }

    enum Stage {
        case allocate
        case take(AcceptCall)
        case retry(AcceptCall, AcceptMemoryCall)
        case accepting(AcceptCall, AcceptMemoryCall)
        case clearing(AcceptCall, AcceptMemoryCall)
        case parked(AcceptCall, AcceptMemoryCall, since: UInt64)
        /// No zone above its floor, blocks in flight: waits for a free.
        case waitingForFree(since: UInt64)
        /// Nothing to accept and nothing to take: the rest goes to `allocate()`.
        case stopped
        case done

        var isAccepting: Bool {
            switch self {
            case .take, .retry, .accepting, .clearing, .parked: true
            default: false
            }
        }
    }

    struct Actor {
        let vcpu: Int
        var left: UInt64
        var stage: Stage = .allocate
        var holdsGrant = false
        var waited = false
    }

    let kernel: GuestKernel
    let memory: UnacceptedMemory
    let order: [Int]
    let highest: Int
    let use: PageUse
    let touch: Bool
    let stepEverything: Bool
    var actors: [Actor]
    var scheduler: VirtualTimeScheduler
    var zoneLocks: [Int: QueuedSpinLock] = [:]
    var unacceptedLock = QueuedSpinLock()
    var stats = WorkloadActorStats()
    var failure: AcceptOutcome = .ok
    var fullyAcceptedAt: Double? = nil

    /// The largest allocation an actor makes in one step.
    static let takeGranularity = Zone.blockPages

    init(kernel: GuestKernel, memory: UnacceptedMemory, shares: [(vcpu: Int, pages: UInt64)], order: [Int],
         highest: Int, use: PageUse, touch: Bool, seed: UInt64, stepEverything: Bool) {
        self.kernel = kernel
        self.memory = memory
        self.order = order
        self.highest = highest
        self.use = use
        self.touch = touch
        self.stepEverything = stepEverything
        actors = shares.map { Actor(vcpu: $0.vcpu, left: $0.pages) }
        scheduler = VirtualTimeScheduler(actors: max(1, shares.count), seed: seed)
        for z in order { zoneLocks[z] = QueuedSpinLock() }
    }

    var costs: CostTable { kernel.costs }
    var zoneHold: UInt64 { costs.vcpuPicoseconds[Op.kernelZoneLockSection.index] }
    var listHold: UInt64 { costs.vcpuPicoseconds[Op.kernelUnacceptedLockSection.index] }

    /// Runs every actor until each is done or stopped, or an accept fails.
    /// Returns the pages left over (stopped actors' shares).
    func run(clock: inout PhaseClock) -> UInt64 {
        for i in actors.indices {
            if actors[i].left == 0 { actors[i].stage = .done; continue }
            scheduler.schedule(i, at: clock.vcpuPicoseconds[actors[i].vcpu])
        }
        while failure == .ok, let (i, t) = scheduler.next() {
            stats.events &+= 1
            step(i, at: t, clock: &clock)
        }
        for z in order.sorted() { if let l = zoneLocks[z] { stats.zoneLock.add(l.stats) } }
        stats.unacceptedLock.add(unacceptedLock.stats)
        return actors.reduce(0) { $0 + $1.left }
    }

    /// The floor `__zone_watermark_ok()` keeps in zone `zi`: min plus
    /// `lowmem_reserve[highest_zoneidx]`, as `allocate()` has it.
    func floor(_ zi: Int) -> UInt64 {
        kernel.watermarksReady ? kernel.zones[zi].watermarkMin + kernel.zones[zi].lowmemReserve[highest] : 0
    }

    /// Asks for a lock at `t`; true when the section runs now.
    func lockGranted(_ i: Int, zone: Int?, at t: UInt64) -> Bool {
        if actors[i].holdsGrant { actors[i].holdsGrant = false; return true }
        let s: UInt64
        if let zone { s = zoneLocks[zone, default: QueuedSpinLock()].acquire(at: t, hold: zoneHold) }
        else { s = unacceptedLock.acquire(at: t, hold: listHold) }
        if s == t { return true }
        actors[i].holdsGrant = true
        scheduler.schedule(i, at: s)
        return false
    }

    func step(_ i: Int, at t: UInt64, clock: inout PhaseClock) {
        let v = actors[i].vcpu
        clock.spin(vcpu: v, until: t)
        switch actors[i].stage {
        case .done, .stopped, .parked, .waitingForFree:
            return
        case .allocate:
            guard actors[i].left > 0 else { actors[i].stage = .done; return }
            if canRunAlone(i, at: t) { runAlone(i, clock: &clock); return }
            guard allocateStep(i, clock: &clock) else { return }
        case .take(var call):
            guard lockGranted(i, zone: call.zone, at: t) else { return }
            clock.charge(.kernelZoneLockSection, vcpu: v, costs: costs)
            guard let head = kernel.zones[call.zone].takeUnaccepted(1).first else {
                endCall(i, call, clock: &clock)
                break
            }
            let m = memory.beginAcceptMemory(start: head.first.address.value, size: 4 << 20, vcpu: v)
            actors[i].waited = false
            if case .done(let o) = m.phase {
                if o != .ok { failure = o; return }
                call.blocks -= 1
                finishBlock(i, call, clock: &clock)
            } else {
                actors[i].stage = .retry(call, m)
            }
        case .retry(let call, var m):
            guard lockGranted(i, zone: nil, at: t) else { return }
            clock.charge(.kernelUnacceptedLockSection, vcpu: v, costs: costs)
            switch memory.step(&m, clock: &clock) {
            case .spun:
                if !actors[i].waited { actors[i].waited = true; stats.listWaits &+= 1 }
                actors[i].stage = .parked(call, m, since: clock.vcpuPicoseconds[v])
                return
            case .nothingToAccept:
                wakeParked(at: clock.vcpuPicoseconds[v])
                var c = call; c.blocks -= 1
                finishBlock(i, c, clock: &clock)
            default:
                actors[i].stage = .accepting(call, m)
            }
        case .accepting(let call, var m):
            if case .accepted(_, let o) = memory.step(&m, clock: &clock), o != .ok { failure = o; return }
            actors[i].stage = .clearing(call, m)
        case .clearing(let call, var m):
            guard lockGranted(i, zone: nil, at: t) else { return }
            clock.charge(.kernelUnacceptedLockSection, vcpu: v, costs: costs)
            memory.step(&m, clock: &clock)
            if m.isDone {
                wakeParked(at: clock.vcpuPicoseconds[v])
                var c = call; c.blocks -= 1
                finishBlock(i, c, clock: &clock)
            } else {
                actors[i].stage = .accepting(call, m)
            }
        }
        if case .done = actors[i].stage { return }
        if case .stopped = actors[i].stage { return }
        if case .waitingForFree = actors[i].stage { return }
        scheduler.schedule(i, at: clock.vcpuPicoseconds[v])
    }

    /// One pass of `get_page_from_freelist()` over the zonelist at the
    /// actor's clock: a zone short of accepted pages starts a
    /// `cond_accept_memory()` call (its first block is taken at once);
    /// else up to one block's worth of pages from the first zone above its
    /// floor. False when the actor was not re-queued (it waits or stopped).
    func allocateStep(_ i: Int, clock: inout PhaseClock) -> Bool {
        let v = actors[i].vcpu
        for zi in order {
            let k = kernel.blocksToAccept(zone: kernel.zones[zi])
            if k > 0 {
                stats.acceptCalls &+= 1
                actors[i].stage = .take(AcceptCall(zone: zi, blocks: k, started: clock.vcpuPicoseconds[v]))
                return true
            }
            let f = floor(zi)
            guard kernel.zones[zi].acceptedFree > f else { continue }
            let step = kernel.pagesUntilAccept(zone: zi, floor: f)
            let g = Self.takeGranularity
            // Never stop exactly at the trigger: one page more or less there
            // would change what `blocksToAccept` asks for next.
            let piece = step <= g ? step : (step == g + 1 ? g - 1 : g)
            let take = min(actors[i].left, piece)
            let o = kernel.handOut(take, zone: zi, use: use, touch: touch, vcpu: v, clock: &clock)
            if o != .ok { failure = o; return false }
            actors[i].left -= take
            return true
        }
        if actors.contains(where: { $0.stage.isAccepting }) {
            actors[i].stage = .waitingForFree(since: clock.vcpuPicoseconds[v])
        } else {
            actors[i].stage = .stopped
        }
        return false
    }

    /// `__free_pages_ok()` of the block just accepted: its pages are free
    /// now. The call goes on with its next block, or returns.
    func finishBlock(_ i: Int, _ call: AcceptCall, clock: inout PhaseClock) {
        kernel.zones[call.zone].freePages += Zone.blockPages
        stats.blocksAccepted &+= 1
        wakeWaiting(at: clock.vcpuPicoseconds[actors[i].vcpu])
        if call.blocks == 0 { endCall(i, call, clock: &clock) } else { actors[i].stage = .take(call) }
    }

    /// `cond_accept_memory()` returns: the allocation's stall is its time on
    /// the vCPU since entry (lock and list waits included).
    func endCall(_ i: Int, _ call: AcceptCall, clock: inout PhaseClock) {
        let v = actors[i].vcpu
        kernel.allocationStalls.stall(picoseconds: clock.vcpuPicoseconds[v] - call.started)
        kernel.onAcceptBatch?(clock)
        actors[i].stage = .allocate
        // A call that found the list empty frees nothing: whoever waits for
        // a free looks again now (and stops if no one accepts any more).
        wakeWaiting(at: clock.vcpuPicoseconds[v])
        noteFullyAccepted(clock.vcpuPicoseconds[v])
    }

    /// The last block freed with none left on any list: memory is fully accepted then.
    func noteFullyAccepted(_ t: UInt64) {
        guard fullyAcceptedAt == nil, kernel.zones.allSatisfy({ !$0.hasUnaccepted }),
              !actors.contains(where: { $0.stage.isAccepting }) else { return }
        fullyAcceptedAt = Double(t) / 1e12
    }

    /// Pages were freed (or a call returned) at `t`: actors waiting for a
    /// free walk their zonelist again from then.
    func wakeWaiting(at t: UInt64) {
        for j in actors.indices {
            guard case .waitingForFree = actors[j].stage else { continue }
            actors[j].stage = .allocate
            scheduler.schedule(j, at: t)
        }
    }

    /// A call left `accepting_list` at `t`: every spinning call re-checks from then.
    func wakeParked(at t: UInt64) {
        for j in actors.indices {
            guard case .parked(let call, let m, let since) = actors[j].stage else { continue }
            stats.listWaitPicoseconds &+= t - since
            actors[j].stage = .retry(call, m)
            scheduler.schedule(j, at: t)
        }
    }

    /// One actor left, between steps, no lock held past `t`.
    func canRunAlone(_ i: Int, at t: UInt64) -> Bool {
        guard !stepEverything, !actors[i].holdsGrant, t >= unacceptedLock.freeAt,
              zoneLocks.values.allSatisfy({ t >= $0.freeAt }) else { return false }
        return actors.indices.allSatisfy { j in
            if j == i { return true }
            switch actors[j].stage {
            case .done, .stopped: return true
            default: return false
            }
        }
    }

    /// The last actor's remaining work in bulk: the same calls, blocks,
    /// allocations and lock takes as stepping them, none of which can wait.
    func runAlone(_ i: Int, clock: inout PhaseClock) {
        let v = actors[i].vcpu
        var zoneTakes: [Int: UInt64] = [:]
        var listTakes: UInt64 = 0
        defer {
            for (z, n) in zoneTakes { zoneLocks[z, default: QueuedSpinLock()].recordUncontended(n, lastReleasedAt: clock.vcpuPicoseconds[v]) }
            unacceptedLock.recordUncontended(listTakes, lastReleasedAt: clock.vcpuPicoseconds[v])
        }
        outer: while actors[i].left > 0 {
            for zi in order {
                let k = kernel.blocksToAccept(zone: kernel.zones[zi])
                if k > 0 {
                    stats.acceptCalls &+= 1
                    let started = clock.vcpuPicoseconds[v]
                    var got: UInt64 = 0
                    for run in kernel.zones[zi].takeUnaccepted(k) {
                        let arch0 = memory.archCalls
                        let o = memory.acceptBlocks(firstBlockAddress: run.first.address.value, count: run.count, vcpu: v, clock: &clock)
                        if o != .ok { failure = o; return }
                        let lists = run.count + (memory.archCalls - arch0)
                        clock.charge(.kernelZoneLockSection, run.count, vcpu: v, costs: costs)
                        clock.charge(.kernelUnacceptedLockSection, lists, vcpu: v, costs: costs)
                        zoneTakes[zi, default: 0] += run.count
                        listTakes += lists
                        kernel.zones[zi].freePages += run.count * Zone.blockPages
                        stats.blocksAccepted &+= run.count
                        stats.replayedBlocks &+= run.count
                        got += run.count
                    }
                    // Stepping takes the lock once more and finds the list empty.
                    if got < k {
                        clock.charge(.kernelZoneLockSection, vcpu: v, costs: costs)
                        zoneTakes[zi, default: 0] += 1
                    }
                    endCall(i, AcceptCall(zone: zi, blocks: 0, started: started), clock: &clock)
                    continue outer
                }
                let f = floor(zi)
                guard kernel.zones[zi].acceptedFree > f else { continue }
                let take = min(actors[i].left, kernel.pagesUntilAccept(zone: zi, floor: f))
                let o = kernel.handOut(take, zone: zi, use: use, touch: touch, vcpu: v, clock: &clock)
                if o != .ok { failure = o; return }
                actors[i].left -= take
                continue outer
            }
            actors[i].stage = .stopped
            return
        }
        actors[i].stage = .done
    }
}

extension ContentionStats {
    /// Adds another resource's figures (several zones' locks as one).
    mutating func add(_ o: ContentionStats) {
        acquisitions &+= o.acquisitions
        contended &+= o.contended
        waitPicoseconds &+= o.waitPicoseconds
    }
}

extension GuestKernel {
    /// A workload phase's allocation of `n` pages on the vCPUs of `node`
    /// (every vCPU without one): as actors (`WorkloadActors`) when
    /// `KernelConfig.workloadActors` is on, more than one vCPU allocates
    /// and a zone of the zonelist still has unaccepted memory; otherwise
    /// `allocate()`'s least-loaded loop, unchanged (one vCPU has nothing to
    /// contend with; without unaccepted memory nothing is accepted).
    /// Leftovers of actors that found nothing to take go to `allocate()`
    /// (reclaim, the OOM stop), which also wakes kswapd at the end as it does.
    /// - Complexity: O(blocks accepted · events per block · log vCPUs)
    ///   while two or more actors allocate, plus `allocate()`'s.
    func allocateWorkload(pages n: UInt64, use: PageUse, touch: Bool, clock: inout PhaseClock,
                          fullyAcceptedAt: inout Double?, node preferred: Int?) -> (UInt64, AcceptOutcome) {
        let nodeCPUs = preferred.map { numa.cpusOfNode[$0] } ?? []
        let cpus = nodeCPUs.isEmpty ? Array(0..<vcpus) : nodeCPUs
        let order = zonelist(node: preferred ?? 0)
        guard config.workloadActors, cpus.count > 1, n > 0, watermarksReady, let memory = unaccepted,
              unacceptedInBuddy.isEmpty, order.contains(where: { zones[$0].hasUnaccepted }) else {
            return allocate(pages: n, use: use, touch: touch, clock: &clock, fullyAcceptedAt: &fullyAcceptedAt, node: preferred)
        }
        let k = UInt64(cpus.count)
        let shares = cpus.enumerated().map { (vcpu: $0.element, pages: n / k + (UInt64($0.offset) < n % k ? 1 : 0)) }
        let highest = use == .kernel ? ZoneKind.allCases.firstIndex(of: .normal)! : ZoneKind.movableIndex
        let driver = WorkloadActors(kernel: self, memory: memory, shares: shares, order: order, highest: highest,
                                    use: use, touch: touch, seed: actorSeed, stepEverything: actorsStepEverything)
        let rest = driver.run(clock: &clock)
        var s = driver.stats
        s.phases = 1
        workloadActorStats.merge(s)
        acceptingListWaits += s.listWaits
        acceptingListWaitPicoseconds += s.listWaitPicoseconds
        if fullyAcceptedAt == nil { fullyAcceptedAt = driver.fullyAcceptedAt }
        if driver.failure != .ok { return (n - rest, driver.failure) }
        let (got, o) = allocate(pages: rest, use: use, touch: touch, clock: &clock, fullyAcceptedAt: &fullyAcceptedAt, node: preferred)
        return (n - rest + got, o)
    }
}

extension WorkloadActorStats {
    mutating func merge(_ o: WorkloadActorStats) {
        zoneLock.add(o.zoneLock)
        unacceptedLock.add(o.unacceptedLock)
        listWaits &+= o.listWaits
        listWaitPicoseconds &+= o.listWaitPicoseconds
        acceptCalls &+= o.acceptCalls
        blocksAccepted &+= o.blocksAccepted
        replayedBlocks &+= o.replayedBlocks
        events &+= o.events
        phases &+= o.phases
    }
}
