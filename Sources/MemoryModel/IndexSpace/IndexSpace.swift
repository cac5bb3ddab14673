/// A position in one of the model's index spaces: a guest frame, a host
/// frame, a guest physical address, a 2 MiB region of guest frames, ...
///
/// Each space is its own type so that a guest frame number cannot be used
/// where a host frame number (or a 2M region index, or a byte address) is
/// meant; the seed 004 reviewers spent months on exactly that bug class.
/// Conversions between spaces are written once, in this module, and called
/// at the layer boundary where the real system converts (memslot and
/// guest_memfd for GFN to PFN, `>> PMD_SHIFT` for a 2M index).
///
/// `value` is the raw number, for formatting and for the few places that
/// really need arithmetic the space does not express.
public protocol IndexSpace: Hashable, Comparable, Strideable, Sendable, CustomStringConvertible where Stride == Int {
    /// The raw number of this position.
    var value: UInt64 { get }
    /// The position whose raw number is `value`.
    init(_ value: UInt64)
}

extension IndexSpace {
    @inlinable public static func < (a: Self, b: Self) -> Bool { a.value < b.value }
    @inlinable public func distance(to other: Self) -> Int { Int(bitPattern: UInt(other.value &- value)) }
    @inlinable public func advanced(by n: Int) -> Self { Self(value &+ UInt64(bitPattern: Int64(n))) }
    /// The position `n` steps further.
    @inlinable public static func + (a: Self, n: UInt64) -> Self { Self(a.value + n) }
    /// The position `n` steps back.
    @inlinable public static func - (a: Self, n: UInt64) -> Self { Self(a.value - n) }
    /// How many steps `b` lies before `a` (`a` must not be below `b`).
    @inlinable public static func - (a: Self, b: Self) -> UInt64 { a.value - b.value }
    /// The first position and the one past the last of a space, for
    /// maps that cover every key.
    @inlinable public static var lowest: Self { Self(0) }
    @inlinable public static var highest: Self { Self(UInt64.max) }
    public var description: String { hex(value) }
}

extension Range where Bound: IndexSpace {
    /// Number of positions in the range.
    /// - Complexity: O(1).
    @inlinable public var length: UInt64 { upperBound.value - lowerBound.value }
    /// The range's raw numbers.
    @inlinable public var raw: Range<UInt64> { lowerBound.value..<upperBound.value }
    /// The range of positions whose raw numbers are `raw`.
    @inlinable public init(raw: Range<UInt64>) { self = Bound(raw.lowerBound)..<Bound(raw.upperBound) }
    /// `count` positions starting at `start`.
    @inlinable public init(start: Bound, count: UInt64) { self = start..<(start + count) }
}
