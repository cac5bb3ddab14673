/// A half-open range of guest physical addresses `[start, end)`.
public struct AddressRange: Hashable, Sendable, CustomStringConvertible {
    public var start: UInt64
    public var end: UInt64

    @inlinable public init(start: UInt64, end: UInt64) {
        self.start = start
        self.end = max(start, end)
    }
    @inlinable public init(start: UInt64, size: UInt64) { self.init(start: start, end: start + size) }

    @inlinable public var size: UInt64 { end - start }
    @inlinable public var isEmpty: Bool { end <= start }
    @inlinable public func contains(_ a: UInt64) -> Bool { a >= start && a < end }
    @inlinable public func overlaps(_ o: AddressRange) -> Bool { start < o.end && o.start < end }
    @inlinable public func clamped(to o: AddressRange) -> AddressRange {
        AddressRange(start: max(start, o.start), end: min(end, o.end))
    }
    public var description: String { "[\(hex16(start))-\(hex16(end))]" }
}

extension Array where Element == AddressRange {
    /// The parts of these ranges outside every range in `cuts`, in order:
    /// RAM minus reservations, RAM minus placed kexec segments, RAM minus
    /// what the capture kernel leaves out.
    /// - Complexity: O((count + cuts) log cuts) for sorted input, O(count × cuts) at worst.
    public func subtracting(_ cuts: [AddressRange]) -> [AddressRange] {
        map { $0.start..<$0.end }.subtracting(cuts.map { $0.start..<$0.end }).map { AddressRange(start: $0.lowerBound, end: $0.upperBound) }
    }
}

extension Array where Element == Range<UInt64> {
    /// The parts of these ranges outside every range in `cuts`, in order
    /// (for address and PFN ranges alike).
    /// - Complexity: O((count + cuts) log cuts) for sorted input, O(count × cuts) at worst.
    public func subtracting(_ cuts: [Range<UInt64>]) -> [Range<UInt64>] {
        let sortedCuts = cuts.filter { !$0.isEmpty }.sorted { $0.lowerBound < $1.lowerBound }
        var out: [Range<UInt64>] = []
        for r in self where !r.isEmpty {
            var s = r.lowerBound
            for c in sortedCuts where c.lowerBound < r.upperBound && s < c.upperBound {
                if c.lowerBound > s { out.append(s..<c.lowerBound) }
                s = Swift.max(s, c.upperBound)
            }
            if s < r.upperBound { out.append(s..<r.upperBound) }
        }
        return out
    }
}

@inlinable public func alignDown(_ v: UInt64, _ a: UInt64) -> UInt64 { v & ~(a - 1) }
@inlinable public func alignUp(_ v: UInt64, _ a: UInt64) -> UInt64 { (v &+ a &- 1) & ~(a - 1) }
@inlinable public func divRoundUp(_ v: UInt64, _ d: UInt64) -> UInt64 { v / d + (v % d == 0 ? 0 : 1) }
