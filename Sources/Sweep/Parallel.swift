import Foundation

/// Slots filled by index from several threads; each slot is written once,
/// by the worker that took its index.
final class Slots<T>: @unchecked Sendable {
    private var items: [T?]
    private var next = 0
    private let lock = NSLock()

    init(count: Int) { items = Array(repeating: nil, count: count) }

    /// The next index no worker has taken, or nil.
    func take() -> Int? {
        lock.lock(); defer { lock.unlock() }
        guard next < items.count else { return nil }
        next += 1
        return next - 1
    }

    func put(_ i: Int, _ v: T) {
        lock.lock(); defer { lock.unlock() }
        items[i] = v
    }

    var all: [T] { items.map { $0! } }
}

/// `body(i)` for every i in 0..<count on `jobs` threads, the results in
/// index order whatever the threads' timing: the same output for any `jobs`.
package func parallelMap<T: Sendable>(_ count: Int, jobs: Int, _ body: @escaping @Sendable (Int) -> T) -> [T] {
    let slots = Slots<T>(count: count)
    let workers = max(1, min(jobs, count))
    if workers == 1 {
        for i in 0..<count { slots.put(i, body(i)) }
    } else {
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            while let i = slots.take() { slots.put(i, body(i)) }
        }
    }
    return slots.all
}
