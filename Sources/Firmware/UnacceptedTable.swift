import MemoryModel

/// `struct efi_unaccepted_memory` (include/linux/efi.h): the table the EFI
/// stub installs under `LINUX_EFI_UNACCEPTED_MEM_TABLE_GUID`
/// (d5d1de3c-105c-44f9-9ea9-bcef98120031). A set bit means the 2 MiB unit
/// is unaccepted.
public struct UnacceptedTable: Equatable, Sendable {
    public static let guid = "d5d1de3c-105c-44f9-9ea9-bcef98120031"
    /// Size of the header before the bitmap.
    public static let headerSize: UInt64 = 24
    /// `EFI_UNACCEPTED_UNIT_SIZE` = PMD_SIZE on x86.
    public static let defaultUnitSize: UInt64 = 2 << 20

    public var version: UInt32 = 1
    public var unitSize: UInt64
    public var physBase: UInt64
    /// Bitmap size in bytes, as the kernel struct stores it.
    public var size: UInt64
    public var bitmap: PageBitmap<UInt64>
    /// Physical address of the table itself (in EFI ACPI reclaim memory).
    public var address: UInt64

    public init(unitSize: UInt64 = UnacceptedTable.defaultUnitSize, physBase: UInt64, size: UInt64, address: UInt64) {
        self.unitSize = unitSize
        self.physBase = physBase
        self.size = size
        self.address = address
        bitmap = PageBitmap<UInt64>(count: size * 8)
    }

    /// Bytes the table occupies (header and bitmap).
    public var totalBytes: UInt64 { UnacceptedTable.headerSize + size }
    /// End of memory the bitmap can describe.
    public var coveredEnd: UInt64 { physBase + size * 8 * unitSize }
    /// Number of units still marked unaccepted.
    public var unitsSet: UInt64 { bitmap.popcount }
}
