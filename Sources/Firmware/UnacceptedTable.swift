public import MemoryModel

/// A unit of the unaccepted bitmap: bit `n` stands for the `unit_size`
/// bytes at `phys_base + n * unit_size` (drivers/firmware/efi/unaccepted_memory.c:
/// `bitmap_set(unaccepted->bitmap, (start - phys_base) / unit_size, ...)`).
/// Neither a frame number nor an address: its size is the table's.
public struct UnacceptedUnit: IndexSpace {
    public var value: UInt64
    @inlinable public init(_ value: UInt64) { self.value = value }
}

/// `struct efi_unaccepted_memory` (include/linux/efi.h): the table the EFI
/// stub installs under `LINUX_EFI_UNACCEPTED_MEM_TABLE_GUID`
/// (d5d1de3c-105c-44f9-9ea9-bcef98120031). A set bit means the 2 MiB unit
/// is unaccepted.
public struct UnacceptedTable: Equatable, Sendable {
    public static let guid = "d5d1de3c-105c-44f9-9ea9-bcef98120031"
    /// Size of the header before the bitmap.
    public static let headerSize: UInt64 = 24
    /// `EFI_UNACCEPTED_UNIT_SIZE` = PMD_SIZE on x86.
    public static let defaultUnitSize: UInt64 = PageLevel.size2M.bytes

    public var version: UInt32 = 1
    /// `unit_size`, in bytes.
    public var unitSize: UInt64
    /// `phys_base`: the address bit 0 stands for.
    public var physBase: GuestPhysicalAddress
    /// Bitmap size in bytes, as the kernel struct stores it.
    public var size: UInt64
    public var bitmap: PageBitmap<UnacceptedUnit>
    /// The "plugged" bitmap of the TDX hotplug RFC v2 (Zhenzhong Duan, June
    /// 2026, "efi/unaccepted: Create plugged bitmap to support hotplug memory
    /// in coco guest"): `size` more bytes right after `bitmap`
    /// (`plugged_bitmap_of()`), a set bit meaning the unit is populated by
    /// the VMM. Only a version-2 table has it; `accept_memory()` then accepts
    /// units set in both bitmaps. nil: a version-1 table (mainline).
    public var plugged: PageBitmap<UnacceptedUnit>? = nil
    /// Physical address of the table itself (in EFI ACPI reclaim memory).
    public var address: GuestPhysicalAddress

    public init(unitSize: UInt64 = UnacceptedTable.defaultUnitSize, physBase: GuestPhysicalAddress, size: UInt64, address: GuestPhysicalAddress) {
        self.unitSize = unitSize
        self.physBase = physBase
        self.size = size
        self.address = address
        bitmap = PageBitmap<UnacceptedUnit>(count: size * 8)
    }

    /// Bytes the table occupies (header and bitmap; version 2: both bitmaps).
    public var totalBytes: UInt64 { UnacceptedTable.headerSize + size * (plugged == nil ? 1 : 2) }

    /// The table grown so that its bitmap reaches `end` (rounded up to a
    /// unit): the AMD hotplug RFC's `extend_unaccepted_bitmap()` (Pratik
    /// Sampat, Nov 2025, "mm: Add support for unaccepted memory hotplug"),
    /// which copies the firmware-reserved bitmap into a `kzalloc()`'d one
    /// (or `krealloc()`s its own) with the new bytes zero, and updates
    /// `size`. A table already large enough is returned as it is.
    /// - Complexity: O(runs of the bitmap).
    public func extended(toCover end: UInt64) -> UnacceptedTable {
        let newSize = divRoundUp(alignUp(end, unitSize) - physBase.value, unitSize * 8)
        guard newSize > size else { return self }
        var t = UnacceptedTable(unitSize: unitSize, physBase: physBase, size: newSize, address: address)
        t.version = version
        for run in bitmap.setRuns(in: allUnits) { t.bitmap.set(run) }
        if let p = plugged {
            var q = PageBitmap<UnacceptedUnit>(count: newSize * 8)
            for run in p.setRuns(in: allUnits) { q.set(run) }
            t.plugged = q
        }
        return t
    }

    /// Units set in the unaccepted bitmap and, in a version-2 table, in the
    /// plugged bitmap too, as runs within `w` (`find_next_and_bit()` in the
    /// RFC v2's `accept_memory()`; the plain set runs for version 1).
    /// - Complexity: O(runs in `w`).
    public func acceptableRuns(in w: Range<UnacceptedUnit>) -> [Range<UnacceptedUnit>] {
        let runs = bitmap.setRuns(in: w)
        guard let p = plugged else { return runs }
        return runs.flatMap { p.setRuns(in: $0) }
    }
    /// End of memory the bitmap can describe.
    public var coveredEnd: UInt64 { physBase.value + size * 8 * unitSize }
    /// Number of units still marked unaccepted.
    public var unitsSet: UInt64 { bitmap.popcount }
    /// Every unit of the bitmap.
    public var allUnits: Range<UnacceptedUnit> { Range(start: .lowest, count: bitmap.count) }

    /// The unit holding byte `address` (`(addr - phys_base) / unit_size`);
    /// `address` must not lie below `physBase`.
    @inlinable public func unit(containing address: UInt64) -> UnacceptedUnit {
        UnacceptedUnit((address - physBase.value) / unitSize)
    }
    /// The first unit that starts at or above `address`
    /// (`DIV_ROUND_UP(addr - phys_base, unit_size)`).
    @inlinable public func unit(roundingUp address: UInt64) -> UnacceptedUnit {
        UnacceptedUnit(divRoundUp(address - physBase.value, unitSize))
    }
    /// The first byte unit `u` stands for (`phys_base + u * unit_size`).
    @inlinable public func address(of u: UnacceptedUnit) -> UInt64 { physBase.value + u.value * unitSize }
    /// The bytes `units` stand for.
    @inlinable public func addresses(of units: Range<UnacceptedUnit>) -> AddressRange {
        AddressRange(start: address(of: units.lowerBound), end: address(of: units.upperBound))
    }
}
