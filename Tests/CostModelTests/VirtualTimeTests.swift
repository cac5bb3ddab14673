import CostModel
import MemoryModel
import Testing

@Suite struct VirtualTimeTests {
    /// Runs `actors` actors that each take `lock` `rounds` times, working
    /// `work[a]` picoseconds between takes and holding it `hold`; returns
    /// the order of grants and each actor's finish time.
    func run(actors: Int, rounds: Int, hold: UInt64, work: [UInt64], seed: UInt64) -> ([Int], [UInt64], QueuedSpinLock) {
        var s = VirtualTimeScheduler(actors: actors, seed: seed)
        var lock = QueuedSpinLock()
        var left = Array(repeating: rounds, count: actors)
        var order: [Int] = []
        var finish = Array(repeating: UInt64(0), count: actors)
        for a in 0..<actors { s.schedule(a, at: work[a]) }
        while let (a, t) = s.next() {
            let start = lock.acquire(at: t, hold: hold)
            order.append(a)
            left[a] -= 1
            let released = start + hold
            finish[a] = released
            if left[a] > 0 { s.schedule(a, at: released + work[a]) }
        }
        return (order, finish, lock)
    }

    @Test func sameSeedSameInterleaving() {
        for seed in UInt64(0)..<20 {
            let work = Array(repeating: UInt64(1000), count: 6)  // every step ties
            let a = run(actors: 6, rounds: 5, hold: 300, work: work, seed: seed)
            let b = run(actors: 6, rounds: 5, hold: 300, work: work, seed: seed)
            #expect(a.0 == b.0 && a.1 == b.1)
        }
        let orders = Set((UInt64(0)..<20).map { run(actors: 6, rounds: 1, hold: 300, work: Array(repeating: 1000, count: 6), seed: $0).0 })
        #expect(orders.count > 1, "ties are broken by the seed, not by actor index")
    }

    /// The scheduler against a reference: every event, sorted by time
    /// (ties in any order), handed out in that order.
    @Test func schedulerHandsOutInTimeOrder() {
        var rng = SplitMix64(seed: 42)
        for _ in 0..<50 {
            let n = Int(rng.next() % 8) + 1
            var s = VirtualTimeScheduler(actors: n, seed: rng.next())
            var times: [UInt64] = []
            for a in 0..<n { let t = rng.next() % 100; s.schedule(a, at: t); times.append(t) }
            var out: [UInt64] = []
            while let (_, t) = s.next() { out.append(t) }
            #expect(out == times.sorted())
        }
    }

    /// A lock held `hold` by `n` actors that work `w` between takes: when
    /// `n * hold >= hold + w` the lock is saturated and the run lasts
    /// `w + n * rounds * hold`; otherwise nobody waits after the first round.
    @Test func spinLockSerialisesAsAQueue() {
        var rng = SplitMix64(seed: 7)
        for _ in 0..<40 {
            let n = Int(rng.next() % 8) + 1, rounds = Int(rng.next() % 5) + 1
            let hold = rng.next() % 500 + 1, w = rng.next() % 2000
            let (order, finish, lock) = run(actors: n, rounds: rounds, hold: hold, work: Array(repeating: w, count: n), seed: rng.next())
            #expect(order.count == n * rounds)
            #expect(lock.stats.acquisitions == UInt64(n * rounds))
            let end = finish.max()!
            if UInt64(n) * hold >= hold + w {
                #expect(end == w + UInt64(n * rounds) * hold)
            } else {
                #expect(end == UInt64(rounds) * (w + hold) + UInt64(n - 1) * hold)
            }
        }
    }

    @Test func readersShareWritersExclude() {
        var l = ReaderWriterLock()
        #expect(l.acquireRead(at: 0, hold: 100) == 0)
        #expect(l.acquireRead(at: 10, hold: 100) == 10)
        #expect(l.acquireWrite(at: 20, hold: 50) == 110)
        #expect(l.acquireRead(at: 30, hold: 10) == 160)
        #expect(l.readStats.contended == 1 && l.writeStats.contended == 1)
    }

    /// Blocks k and k+1 overlap in k's guard unit; k+2 does not meet k.
    @Test func acceptingListWaitsForOverlapOnly() {
        var list = AcceptingList()
        let block = { (k: UInt64) in (2 * k)..<(2 * k + 3) }
        #expect(list.place(block(0), arrival: 0, duration: 1000) == 0)
        // k+1 spins until k is done; k+2, arriving as early, gets in beside k.
        #expect(list.place(block(1), arrival: 0, duration: 1000) == 1000)
        #expect(list.place(block(2), arrival: 0, duration: 1000) == 0)
        #expect(list.place(block(3), arrival: 0, duration: 1000) == 1000)
        #expect(list.stats.contended == 2 && list.stats.waitPicoseconds == 2000)
        #expect(list.inFlight(at: 500) == 2)
        // A short call fits in a gap before a later one.
        #expect(list.place(block(5), arrival: 100, duration: 10) == 100)
    }

    /// Against a reference: n accepters of consecutive blocks, all arriving
    /// at 0 with the same duration, finish in two waves: even blocks first.
    @Test func consecutiveAcceptersAlternate() {
        var rng = SplitMix64(seed: 3)
        for _ in 0..<20 {
            let n = Int(rng.next() % 64) + 1, d = rng.next() % 1000 + 1
            var list = AcceptingList()
            var starts: [UInt64] = []
            for k in 0..<UInt64(n) { starts.append(list.place((2 * k)..<(2 * k + 3), arrival: 0, duration: d)) }
            #expect(starts == (0..<n).map { $0 % 2 == 0 ? 0 : d })
        }
    }

    /// A holder replayed in bulk records what its uncontended takes would:
    /// the same acquisitions, no wait, the lock free from its last release.
    @Test func uncontendedTakesRecordAsAcquires() {
        var rng = SplitMix64(seed: 9)
        for _ in 0..<20 {
            let n = rng.next() % 50 + 1, hold = rng.next() % 100 + 1, gap = rng.next() % 100
            var stepped = QueuedSpinLock(), bulk = QueuedSpinLock()
            var t: UInt64 = 0
            for _ in 0..<n { t = stepped.acquire(at: t, hold: hold) + hold + gap }
            bulk.recordUncontended(n, lastReleasedAt: stepped.freeAt)
            #expect(bulk == stepped)
        }
    }
}
