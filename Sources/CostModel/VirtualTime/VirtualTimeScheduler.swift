import MemoryModel

/// A deterministic discrete-event scheduler in virtual time.
///
/// Each actor (a vCPU, or a host thread where one matters) has its own
/// clock in picoseconds. The scheduler hands out the actor whose next event
/// is earliest; actors whose events fall at the same picosecond are ordered
/// by a priority drawn from a seeded `SplitMix64` when the event is queued,
/// then by queueing order. The same seed therefore gives the same
/// interleaving, and the same bytes, whatever the host's core count: nothing
/// here reads a wall clock or a thread.
///
/// The real counterpart is the machine itself: vCPUs run at once and meet
/// only at shared resources (`QueuedSpinLock`, `ReaderWriterLock`,
/// `AcceptingList`), which serialise as the kernel's and
/// KVM's locks do. An actor that must wait is re-queued at the time it can
/// go on.
public struct VirtualTimeScheduler: Sendable {
    /// One pending event: `actor` runs its next step at `time`.
    struct Event: Sendable {
        var time: UInt64
        var priority: UInt64
        var sequence: UInt64
        var actor: Int
        func precedes(_ o: Event) -> Bool {
            if time != o.time { return time < o.time }
            if priority != o.priority { return priority < o.priority }
            return sequence < o.sequence
        }
    }

    private var heap: [Event] = []
    private var random: SplitMix64
    private var sequence: UInt64 = 0
    /// Each actor's clock: the time of its last event handed out.
    public private(set) var clocks: [UInt64]
    /// Events handed out so far.
    public private(set) var steps: UInt64 = 0

    /// `actors` actors, all idle at time 0 and none queued yet.
    public init(actors: Int, seed: UInt64) {
        clocks = Array(repeating: 0, count: max(1, actors))
        random = SplitMix64(seed: seed)
    }

    public var actors: Int { clocks.count }
    public var isEmpty: Bool { heap.isEmpty }

    /// Queues `actor`'s next step at `time` (never earlier than its clock).
    /// - Complexity: O(log pending events).
    public mutating func schedule(_ actor: Int, at time: UInt64) {
        let e = Event(time: max(time, clocks[actor]), priority: random.next(), sequence: sequence, actor: actor)
        sequence &+= 1
        heap.append(e)
        siftUp(heap.count - 1)
    }

    /// The earliest pending event, removed: the actor that runs next and
    /// the time it runs at (its clock moves there).
    /// - Complexity: O(log pending events).
    public mutating func next() -> (actor: Int, time: UInt64)? {
        guard let first = heap.first else { return nil }
        let last = heap.removeLast()
        if !heap.isEmpty { heap[0] = last; siftDown(0) }
        clocks[first.actor] = max(clocks[first.actor], first.time)
        steps &+= 1
        return (first.actor, first.time)
    }

    /// When the earliest pending event runs (nil: none pending).
    /// - Complexity: O(1).
    package var nextTime: UInt64? { heap.first?.time }

    /// Accounts for `n` events an actor ran inline instead of through the
    /// queue (a replay in bulk while every other pending event lies later):
    /// the random stream and the queueing sequence move on as if each had
    /// been queued, so later ties are broken as stepping breaks them, and
    /// the actor's clock moves to `time`. `SplitMix64` adds a constant per
    /// draw, so skipping `n` draws is one multiply-add.
    /// - Complexity: O(1).
    package mutating func ranInline(_ actor: Int, events n: UInt64, until time: UInt64) {
        guard n > 0 else { return }
        random.state &+= n &* 0x9E37_79B9_7F4A_7C15
        sequence &+= n
        steps &+= n
        clocks[actor] = max(clocks[actor], time)
    }

    private mutating func siftUp(_ i0: Int) {
        var i = i0
        while i > 0 {
            let p = (i - 1) / 2
            guard heap[i].precedes(heap[p]) else { return }
            heap.swapAt(i, p)
            i = p
        }
    }

    private mutating func siftDown(_ i0: Int) {
        var i = i0
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < heap.count, heap[l].precedes(heap[m]) { m = l }
            if r < heap.count, heap[r].precedes(heap[m]) { m = r }
            if m == i { return }
            heap.swapAt(i, m)
            i = m
        }
    }
}
