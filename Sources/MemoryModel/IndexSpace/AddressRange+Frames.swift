/// Conversions between the raw byte ranges of `AddressRange` and the typed
/// guest spaces, written once here (the guest kernel's `PFN_DOWN()`,
/// `PFN_UP()`, `PFN_PHYS()`).
extension AddressRange {
    /// The range's size.
    @inlinable public var bytes: ByteCount { ByteCount(size) }
    /// The first byte, typed.
    @inlinable public var lowerAddress: GuestPhysicalAddress { GuestPhysicalAddress(start) }
    /// One past the last byte, typed.
    @inlinable public var upperAddress: GuestPhysicalAddress { GuestPhysicalAddress(end) }
    /// The frames this range touches: `PFN_DOWN(start)..<PFN_UP(end)`.
    @inlinable public var frames: Range<GuestFrameNumber> { lowerAddress.frame..<upperAddress.frameRoundingUp }
    /// The bytes of `frames`: `PFN_PHYS(first)..<PFN_PHYS(end)`.
    @inlinable public init(frames: Range<GuestFrameNumber>) {
        self.init(start: frames.lowerBound.address.value, end: frames.upperBound.address.value)
    }
}

extension GuestPhysicalAddress {
    /// `PFN_UP()`: the first frame that starts at or above this address.
    @inlinable public var frameRoundingUp: GuestFrameNumber {
        GuestFrameNumber((value >> PageLevel.pageShift) + (value & (PageLevel.size4K.bytes - 1) == 0 ? 0 : 1))
    }
}
