import Foundation

/// Work items taken in order from `next`, each processed by one of
/// `threads` worker threads into one of a few reusable slots, and handed
/// to `consume` on the calling thread in the order they were taken: the
/// shape of makedumpfile's threaded write (`write_kdump_pages_parallel_cyclic()`:
/// threads compress pages into a ring of `page_data` buffers, one writer
/// writes them in PFN order), with whole batches instead of pages.
///
/// A worker takes a free slot and the next item together, under one lock,
/// so the oldest unconsumed item always holds a slot and the ring cannot
/// deadlock; workers run ahead of the writer by at most `slots.count`
/// items, which bounds the memory. With one thread there is no thread at
/// all: each item is produced and consumed in turn on the caller's thread
/// in slot 0. If `consume` throws, the workers stop after the items they
/// hold and the error is rethrown once they have.
///
/// - Parameters:
///   - produce: called with the worker's index (0..<threads), the item and
///     the slot the worker owns until `consume` has run for it.
/// - Complexity: O(items) lock round trips; no allocation per item.
func orderedPipeline<Item, Slot>(threads: Int, slots: [Slot], next: @escaping () -> Item?,
                                 produce: @escaping (Int, Item, Slot) -> Void,
                                 consume: (Item, Slot) throws -> Void) throws {
    precondition(!slots.isEmpty)
    if threads <= 1 {
        while let item = next() {
            produce(0, item, slots[0])
            try consume(item, slots[0])
        }
        return
    }
    let ring = PipelineRing<Item>(slots: slots.count, workers: threads)
    // Each slot is used by one thread at a time (the ring hands it over);
    // `next` only ever runs under the ring's lock.
    nonisolated(unsafe) let next = next, produce = produce, slots = slots
    for w in 0..<threads {
        let t = Thread {
            ring.work({ item, slot in produce(w, item, slots[slot]) }, next: { next() })
        }
        t.stackSize = 1 << 20
        t.start()
    }
    do {
        while let (item, slot) = ring.nextReady() {
            try consume(item, slots[slot])
            ring.release(slot)
        }
    } catch {
        ring.cancel()
        ring.waitForWorkers()
        throw error
    }
    ring.waitForWorkers()
}

/// The shared state of `orderedPipeline`: free slots, finished items by
/// sequence number, and whether the items or the run have ended.
final class PipelineRing<Item>: @unchecked Sendable {
    private let cond = NSCondition()
    private var free: [Int]
    private var ready: [Int: (Item, Int)] = [:]
    private var taken = 0, consumed = 0
    private var exhausted = false, cancelled = false
    private var running: Int

    init(slots: Int, workers: Int) {
        free = Array((0..<slots).reversed())
        running = workers
    }

    /// A worker's loop: a free slot and the next item, taken together; the
    /// item produced into the slot; its result published by sequence number.
    func work(_ produce: (Item, Int) -> Void, next: () -> Item?) {
        while true {
            cond.lock()
            while free.isEmpty && !cancelled && !exhausted { cond.wait() }
            guard !cancelled, !exhausted, let item = next() else {
                exhausted = true
                running -= 1
                cond.broadcast()
                cond.unlock()
                return
            }
            let slot = free.removeLast(), seq = taken
            taken += 1
            cond.unlock()
            produce(item, slot)
            cond.lock()
            ready[seq] = (item, slot)
            cond.broadcast()
            cond.unlock()
        }
    }

    /// The next item in sequence once it is produced, or nil when all are consumed.
    func nextReady() -> (Item, Int)? {
        cond.lock(); defer { cond.unlock() }
        while true {
            if let r = ready.removeValue(forKey: consumed) { consumed += 1; return r }
            if exhausted && consumed == taken { return nil }
            cond.wait()
        }
    }

    func release(_ slot: Int) {
        cond.lock(); free.append(slot); cond.broadcast(); cond.unlock()
    }

    func cancel() {
        cond.lock(); cancelled = true; cond.broadcast(); cond.unlock()
    }

    func waitForWorkers() {
        cond.lock(); while running > 0 { cond.wait() }; cond.unlock()
    }
}
