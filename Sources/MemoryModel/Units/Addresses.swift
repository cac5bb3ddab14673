/// Page sizes of the x86 paging hierarchy as TDX and SNP name them.
/// The raw value is the TDX/Linux level encoding (0 = 4K, 1 = 2M, 2 = 1G),
/// as in `TDX_PS_4K`/`TDX_PS_2M`/`TDX_PS_1G` and SNP's `RMP_PG_SIZE_*`.
public enum PageLevel: Int, Comparable, CaseIterable, Sendable, CustomStringConvertible {
    case size4K = 0
    case size2M = 1
    case size1G = 2

    @inlinable public var bytes: UInt64 { 1 << shift }
    @inlinable public var shift: UInt64 { 12 + 9 * UInt64(rawValue) }
    /// Number of 4 KiB pages covered.
    @inlinable public var pages: UInt64 { 1 << (9 * UInt64(rawValue)) }
    public var smaller: PageLevel? { PageLevel(rawValue: rawValue - 1) }
    public var larger: PageLevel? { PageLevel(rawValue: rawValue + 1) }
    public static func < (a: PageLevel, b: PageLevel) -> Bool { a.rawValue < b.rawValue }
    public var description: String { ["4K", "2M", "1G"][rawValue] }
}

/// A guest physical address (GPA). Private/shared bits are not part of it.
public struct GuestPhysicalAddress: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var value: UInt64
    @inlinable public init(_ value: UInt64) { self.value = value }
    @inlinable public var frame: GuestFrameNumber { GuestFrameNumber(value >> 12) }
    @inlinable public func isAligned(to level: PageLevel) -> Bool { value & (level.bytes - 1) == 0 }
    @inlinable public static func < (a: Self, b: Self) -> Bool { a.value < b.value }
    @inlinable public static func + (a: Self, b: ByteCount) -> Self { Self(a.value + b.value) }
    public var description: String { hex16(value) }
}

public typealias GPA = GuestPhysicalAddress

/// A guest frame number: a GPA shifted right by 12.
public struct GuestFrameNumber: Hashable, Comparable, Sendable {
    public var value: UInt64
    @inlinable public init(_ value: UInt64) { self.value = value }
    @inlinable public var address: GuestPhysicalAddress { GuestPhysicalAddress(value << 12) }
    @inlinable public static func < (a: Self, b: Self) -> Bool { a.value < b.value }
}

/// A host frame number: what the host backs a guest frame with. Converting
/// a GFN to an HFN happens only in the host layer.
public struct HostFrameNumber: Hashable, Comparable, Sendable {
    public var value: UInt64
    @inlinable public init(_ value: UInt64) { self.value = value }
    @inlinable public static func < (a: Self, b: Self) -> Bool { a.value < b.value }
}

/// `0x%016llx`, the way the kernel prints physical addresses.
public func hex16(_ v: UInt64) -> String {
    let s = String(v, radix: 16)
    return "0x" + String(repeating: "0", count: max(0, 16 - s.count)) + s
}

/// `0x%llx`.
public func hex(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }
