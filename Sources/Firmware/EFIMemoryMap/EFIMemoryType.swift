public import MemoryModel

/// `EFI_MEMORY_TYPE` (UEFI 2.9, Table 7-5), with 15 = `EfiUnacceptedMemoryType`.
/// `name` is the kernel's `memory_type_name[]` entry (drivers/firmware/efi/efi.c).
public enum EFIMemoryType: UInt32, CaseIterable, Sendable {
    case reserved = 0, loaderCode, loaderData, bootServicesCode, bootServicesData
    case runtimeServicesCode, runtimeServicesData, conventional, unusable
    case acpiReclaim, acpiNVS, mmio, mmioPortSpace, palCode, persistent, unaccepted

    public var name: String {
        ["Reserved", "Loader Code", "Loader Data", "Boot Code", "Boot Data", "Runtime Code",
         "Runtime Data", "Conventional", "Unusable", "ACPI Reclaim", "ACPI Mem NVS", "MMIO",
         "MMIO Port", "PAL Code", "Persistent", "Unaccepted"][Int(rawValue)]
    }

    /// Usable as RAM by the kernel once boot services have exited
    /// (`efi_arch_mem_reserve`/`setup_e820`: E820_TYPE_RAM).
    public var isUsableAfterExitBootServices: Bool {
        switch self {
        case .loaderCode, .loaderData, .bootServicesCode, .bootServicesData, .conventional: true
        default: false
        }
    }

    public init?(name: String) {
        guard let t = EFIMemoryType.allCases.first(where: { $0.name == name }) else { return nil }
        self = t
    }
}

/// `EFI_MEMORY_*` attribute bits.
public struct EFIMemoryAttributes: OptionSet, Sendable, Hashable {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public static let uc = Self(rawValue: 0x1)
    public static let wc = Self(rawValue: 0x2)
    public static let wt = Self(rawValue: 0x4)
    public static let wb = Self(rawValue: 0x8)
    public static let uce = Self(rawValue: 0x10)
    public static let wp = Self(rawValue: 0x1000)
    public static let rp = Self(rawValue: 0x2000)
    public static let xp = Self(rawValue: 0x4000)
    public static let nv = Self(rawValue: 0x8000)
    public static let moreReliable = Self(rawValue: 0x10000)
    public static let ro = Self(rawValue: 0x20000)
    public static let sp = Self(rawValue: 0x40000)
    public static let cpuCrypto = Self(rawValue: 0x80000)
    public static let hotPluggable = Self(rawValue: 0x100000)
    /// `EFI_MEMORY_UHP` (Unaccepted Hot-Plug), proposed in edk2 issue 12810
    /// and PR 12811 (July 2026, code first, not in a UEFI release): set on an
    /// `EfiUnacceptedMemoryType` descriptor that describes a confidential
    /// guest's memory hot-plug window, memory with no backing pages yet that
    /// must not be accepted before it is hot-added. The RFC proposes the
    /// value 0x200000; the final bit is for the UEFI Forum to assign.
    public static let uhp = Self(rawValue: 0x200000)
    public static let runtime = Self(rawValue: 1 << 63)
    /// The usual attributes of RAM: `WB|WT|WC|UC`.
    public static let ramDefault: Self = [.uc, .wc, .wt, .wb]
}

/// One `efi_memory_desc_t`.
public struct EFIMemoryDescriptor: Hashable, Sendable {
    public var type: EFIMemoryType
    public var physicalStart: UInt64
    public var numberOfPages: UInt64
    public var attribute: EFIMemoryAttributes

    public init(type: EFIMemoryType, start: UInt64, end: UInt64, attribute: EFIMemoryAttributes = .ramDefault) {
        self.type = type
        physicalStart = start
        numberOfPages = ByteCount(end - start).frames()
        self.attribute = attribute
    }

    /// `NumberOfPages` counts EFI pages (`EFI_PAGE_SIZE`, 4 KiB: UEFI 2.9 §7.2), the kernel's 4K frames.
    public var bytes: ByteCount { .frames(numberOfPages) }
    public var end: UInt64 { physicalStart + bytes.value }
    public var range: AddressRange { AddressRange(start: physicalStart, end: end) }
}
