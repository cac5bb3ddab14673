/// A fixed-width vector of event counts indexed by a dense enum's raw value:
/// the storage behind the operation, SEAMCALL and KVM counter tables. Adding
/// a recorded delta `k` times is what bulk replay needs.
public struct CountVector: Equatable, Sendable {
    @usableFromInline var storage: [UInt64]

    @inlinable public init(width: Int) { storage = [UInt64](repeating: 0, count: width) }

    /// The counts, by index.
    @inlinable public var values: [UInt64] { storage }

    @inlinable public subscript(_ i: Int) -> UInt64 {
        get { storage[i] }
        set { storage[i] = newValue }
    }

    @inlinable public mutating func bump(_ i: Int, _ n: UInt64 = 1) { storage[i] &+= n }

    /// Adds `other` `k` times.
    /// - Complexity: O(width).
    @inlinable public mutating func add(_ other: CountVector, times k: UInt64 = 1) {
        for i in storage.indices { storage[i] &+= other.storage[i] &* k }
    }

    /// - Complexity: O(width).
    @inlinable public static func - (a: CountVector, b: CountVector) -> CountVector {
        var r = a
        for i in r.storage.indices { r.storage[i] &-= b.storage[i] }
        return r
    }

    @inlinable public var isZero: Bool { storage.allSatisfy { $0 == 0 } }
}
