/// Index spaces and range conversions the host side (KVM, the TDX module)
/// needs beyond `Addresses.swift`: the 512 GiB region one PML4 entry
/// reaches, and the regions covering a range of frames.

/// The index of a 512 GiB-aligned region of guest frames (`gfn >> 27`):
/// what one PML4E (a 512G-level EPT entry) reaches.
public struct GuestRegion512G: IndexSpace {
    public var value: UInt64
    @inlinable public init(_ value: UInt64) { self.value = value }
    /// The first frame of this region.
    @inlinable public var firstFrame: GuestFrameNumber { GuestFrameNumber(value << (3 * PageLevel.levelBits)) }
    /// Guest frames in one 512 GiB region (512 × 512 × 512).
    @inlinable public static var frames: UInt64 { 1 << (3 * PageLevel.levelBits) }
}

extension GuestFrameNumber {
    /// The 512 GiB region holding this frame (`gfn >> 27`).
    @inlinable public var region512G: GuestRegion512G { GuestRegion512G(value >> (3 * PageLevel.levelBits)) }
}

extension Range where Bound == GuestFrameNumber {
    /// The 2 MiB regions any frame of this range lies in.
    /// - Complexity: O(1).
    @inlinable public var covering2M: Range<GuestRegion2M> {
        isEmpty ? lowerBound.region2M..<lowerBound.region2M : lowerBound.region2M..<((upperBound - 1).region2M + 1)
    }
    /// The 1 GiB regions any frame of this range lies in.
    @inlinable public var covering1G: Range<GuestRegion1G> {
        isEmpty ? lowerBound.region1G..<lowerBound.region1G : lowerBound.region1G..<((upperBound - 1).region1G + 1)
    }
    /// The 512 GiB regions any frame of this range lies in.
    @inlinable public var covering512G: Range<GuestRegion512G> {
        isEmpty ? lowerBound.region512G..<lowerBound.region512G : lowerBound.region512G..<((upperBound - 1).region512G + 1)
    }
}

extension Range where Bound == GuestRegion2M {
    /// The frames of these 2 MiB regions.
    /// - Complexity: O(1).
    @inlinable public var frames: Range<GuestFrameNumber> { lowerBound.firstFrame..<upperBound.firstFrame }
}

extension GuestRegion2M {
    /// This region alone, as a range (one 2M-level entry).
    @inlinable public var only: Range<GuestRegion2M> { self..<(self + 1) }
}

extension GuestRegion1G {
    /// This region alone, as a range (one 1G-level entry).
    @inlinable public var only: Range<GuestRegion1G> { self..<(self + 1) }
}

extension GuestRegion512G {
    /// This region alone, as a range (one 512G-level entry).
    @inlinable public var only: Range<GuestRegion512G> { self..<(self + 1) }
}

extension HostRegion2M {
    /// This region alone, as a range (one PAMT 2M entry).
    @inlinable public var only: Range<HostRegion2M> { self..<(self + 1) }
}

extension GuestFrameNumber {
    /// This frame alone, as a range.
    @inlinable public var only: Range<GuestFrameNumber> { self..<(self + 1) }
}

extension AddressRange {
    /// The frames from the one holding `start` to the one holding `end`,
    /// exclusive (`start >> PAGE_SHIFT ..< end >> PAGE_SHIFT`): what an
    /// accept of a page-aligned range walks.
    /// - Complexity: O(1).
    @inlinable public var framesTruncated: Range<GuestFrameNumber> {
        GuestPhysicalAddress(start).frame..<Swift.max(GuestPhysicalAddress(start).frame, GuestPhysicalAddress(end).frame)
    }
    /// Every frame any byte of the range lies in.
    /// - Complexity: O(1).
    @inlinable public var framesCovering: Range<GuestFrameNumber> {
        GuestPhysicalAddress(start).frame..<GuestFrameNumber(divRoundUp(end, PageLevel.size4K.bytes))
    }
}

extension IndexSpace {
    /// This position rounded down to a multiple of `n` (a power of two):
    /// folio and backing-unit alignment, whose size is not a paging level.
    /// - Complexity: O(1).
    @inlinable public func alignedDown(toMultipleOf n: UInt64) -> Self { Self(alignDown(value, n)) }
    /// This position rounded up to a multiple of `n` (a power of two).
    @inlinable public func alignedUp(toMultipleOf n: UInt64) -> Self { Self(alignUp(value, n)) }
    /// True if this position is a multiple of `n`.
    @inlinable public func isMultiple(of n: UInt64) -> Bool { value % n == 0 }
}

extension GuestRegion2M {
    /// One past the last 2M region whose frames are all numbered below
    /// `GuestFrameNumber.highest` (`UInt64.max >> 9`): the end of a walk
    /// over every 2M region.
    @inlinable public static var highestIndexed: GuestRegion2M { GuestFrameNumber.highest.region2M }
}
