/// Page sizes of the x86 paging hierarchy as TDX and SNP name them.
/// The raw value is the TDX/Linux level encoding (0 = 4K, 1 = 2M, 2 = 1G),
/// as in `TDX_PS_4K`/`TDX_PS_2M`/`TDX_PS_1G` and SNP's `RMP_PG_SIZE_*`.
public enum PageLevel: Int, Comparable, CaseIterable, Sendable, CustomStringConvertible {
    case size4K = 0
    case size2M = 1
    case size1G = 2

    /// `PAGE_SHIFT`: log2 of a 4 KiB page.
    public static let pageShift: UInt64 = 12
    /// Bits of frame number each paging level adds (`PTRS_PER_PTE` = 512).
    public static let levelBits: UInt64 = 9

    @inlinable public var bytes: UInt64 { 1 << shift }
    /// `PAGE_SHIFT`, `PMD_SHIFT`, `PUD_SHIFT`.
    @inlinable public var shift: UInt64 { Self.pageShift + frameShift }
    /// log2 of the number of 4 KiB frames covered (0, 9, 18).
    @inlinable public var frameShift: UInt64 { Self.levelBits * UInt64(rawValue) }
    /// Number of 4 KiB pages covered.
    @inlinable public var pages: UInt64 { 1 << frameShift }
    public var smaller: PageLevel? { PageLevel(rawValue: rawValue - 1) }
    public var larger: PageLevel? { PageLevel(rawValue: rawValue + 1) }
    public static func < (a: PageLevel, b: PageLevel) -> Bool { a.rawValue < b.rawValue }
    public var description: String { ["4K", "2M", "1G"][rawValue] }
}

// MARK: - Guest physical space

/// A guest physical address (GPA). Private/shared bits are not part of it.
public struct GuestPhysicalAddress: IndexSpace {
    public var value: UInt64
    @inlinable public init(_ value: UInt64) { self.value = value }
    /// The frame holding this address (`gpa_to_gfn()`).
    @inlinable public var frame: GuestFrameNumber { GuestFrameNumber(value >> PageLevel.pageShift) }
    @inlinable public func isAligned(to level: PageLevel) -> Bool { value & (level.bytes - 1) == 0 }
    @inlinable public static func + (a: Self, b: ByteCount) -> Self { Self(a.value + b.value) }
    public var description: String { hex16(value) }
}

public typealias GPA = GuestPhysicalAddress

/// A guest frame number: a GPA shifted right by 12 (KVM's `gfn_t`; the
/// guest kernel's own `pfn`).
public struct GuestFrameNumber: IndexSpace {
    public var value: UInt64
    @inlinable public init(_ value: UInt64) { self.value = value }
    /// `gfn_to_gpa()`.
    @inlinable public var address: GuestPhysicalAddress { GuestPhysicalAddress(value << PageLevel.pageShift) }
    /// The 2 MiB region holding this frame (`gfn >> 9`, KVM's level-2 `gfn_to_index()`).
    @inlinable public var region2M: GuestRegion2M { GuestRegion2M(value >> PageLevel.size2M.frameShift) }
    /// The 1 GiB region holding this frame (`gfn >> 18`).
    @inlinable public var region1G: GuestRegion1G { GuestRegion1G(value >> PageLevel.size1G.frameShift) }
    /// The first frame of the `level`-sized page holding this one (`gfn_round_for_level()`).
    @inlinable public func alignedDown(to level: PageLevel) -> Self { Self(value & ~(level.pages - 1)) }
    @inlinable public func isAligned(to level: PageLevel) -> Bool { value & (level.pages - 1) == 0 }
}

public typealias GFN = GuestFrameNumber

/// The index of a 2 MiB-aligned region of guest frames (`gfn >> 9`).
public struct GuestRegion2M: IndexSpace {
    public var value: UInt64
    @inlinable public init(_ value: UInt64) { self.value = value }
    @inlinable public var firstFrame: GuestFrameNumber { GuestFrameNumber(value << PageLevel.size2M.frameShift) }
    /// The region's 512 frames.
    @inlinable public var frames: Range<GuestFrameNumber> { Range(start: firstFrame, count: PageLevel.size2M.pages) }
    @inlinable public var region1G: GuestRegion1G { GuestRegion1G(value >> PageLevel.levelBits) }
}

/// The index of a 1 GiB-aligned region of guest frames (`gfn >> 18`).
public struct GuestRegion1G: IndexSpace {
    public var value: UInt64
    @inlinable public init(_ value: UInt64) { self.value = value }
    @inlinable public var firstFrame: GuestFrameNumber { GuestFrameNumber(value << PageLevel.size1G.frameShift) }
    @inlinable public var first2M: GuestRegion2M { GuestRegion2M(value << PageLevel.levelBits) }
    /// The region's 262,144 frames.
    @inlinable public var frames: Range<GuestFrameNumber> { Range(start: firstFrame, count: PageLevel.size1G.pages) }
}

// MARK: - Host physical space

/// A host physical address (HPA): where the host keeps a guest page.
public struct HostPhysicalAddress: IndexSpace {
    public var value: UInt64
    @inlinable public init(_ value: UInt64) { self.value = value }
    @inlinable public var frame: HostFrameNumber { HostFrameNumber(value >> PageLevel.pageShift) }
    public var description: String { hex16(value) }
}

/// A host frame number (the host kernel's `kvm_pfn_t`): what the host backs
/// a guest frame with. Converting a GFN to an HFN happens only in the host
/// layer, through a memslot and its guest_memfd.
public struct HostFrameNumber: IndexSpace {
    public var value: UInt64
    @inlinable public init(_ value: UInt64) { self.value = value }
    @inlinable public var address: HostPhysicalAddress { HostPhysicalAddress(value << PageLevel.pageShift) }
    /// The 2 MiB region of host memory holding this frame (the PAMT's 2M entry, `hfn >> 9`).
    @inlinable public var region2M: HostRegion2M { HostRegion2M(value >> PageLevel.size2M.frameShift) }
    @inlinable public func alignedDown(to level: PageLevel) -> Self { Self(value & ~(level.pages - 1)) }
    @inlinable public func isAligned(to level: PageLevel) -> Bool { value & (level.pages - 1) == 0 }
}

public typealias HFN = HostFrameNumber

/// The index of a 2 MiB-aligned region of host frames (`hfn >> 9`): the
/// unit Dynamic PAMT adds and removes 4K PAMT pages for.
public struct HostRegion2M: IndexSpace {
    public var value: UInt64
    @inlinable public init(_ value: UInt64) { self.value = value }
    @inlinable public var firstFrame: HostFrameNumber { HostFrameNumber(value << PageLevel.size2M.frameShift) }
    @inlinable public var frames: Range<HostFrameNumber> { Range(start: firstFrame, count: PageLevel.size2M.pages) }
}

extension ByteCount {
    /// Number of whole frames of `level` in this many bytes.
    @inlinable public func frames(_ level: PageLevel = .size4K) -> UInt64 { value >> level.shift }
    /// `n` frames of `level`, in bytes.
    @inlinable public static func frames(_ n: UInt64, _ level: PageLevel = .size4K) -> ByteCount { ByteCount(n << level.shift) }
}

/// `0x%016llx`, the way the kernel prints physical addresses.
public func hex16(_ v: UInt64) -> String {
    let s = String(v, radix: 16)
    return "0x" + String(repeating: "0", count: max(0, 16 - s.count)) + s
}

/// `0x%llx`.
public func hex(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }
