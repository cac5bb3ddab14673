public import MemoryModel

/// `enum e820_type` (arch/x86/include/asm/e820/types.h).
public enum E820Type: UInt32, Sendable {
    case ram = 1, reserved = 2, acpi = 3, nvs = 4, unusable = 5, pmem = 7, softReserved = 0xefff_ffff

    /// `e820_print_type()` (arch/x86/kernel/e820.c), the classic wording
    /// every kernel from 6.5 to 7.1 prints.
    public var printName: String {
        switch self {
        case .ram: "usable"
        case .reserved: "reserved"
        case .softReserved: "soft reserved"
        case .acpi: "ACPI data"
        case .nvs: "ACPI NVS"
        case .unusable: "unusable"
        case .pmem: "persistent (type \(rawValue))"
        }
    }

    /// The reverse of `printName`, for reading a log.
    public init?(printName: Substring) {
        switch printName {
        case "usable": self = .ram
        case "reserved": self = .reserved
        case "soft reserved": self = .softReserved
        case "ACPI data": self = .acpi
        case "ACPI NVS": self = .nvs
        case "unusable": self = .unusable
        case "persistent (type 7)": self = .pmem
        default: return nil
        }
    }
}

/// One `struct e820_entry`.
public struct E820Entry: Equatable, Sendable {
    public var range: AddressRange
    public var type: E820Type
    public init(range: AddressRange, type: E820Type) { self.range = range; self.type = type }

    /// `e820__print_table()`'s line: `BIOS-e820: [mem %#018Lx-%#018Lx] <type>`.
    public func line(who: String = "BIOS-e820") -> String {
        "\(who): [mem \(hex16(range.start))-\(hex16(range.end - 1))] \(type.printName)"
    }
}

extension EFIStub {
    /// `setup_e820()` (drivers/firmware/efi/libstub/x86-stub.c): each EFI
    /// descriptor becomes an e820 entry of the type its switch gives
    /// (boot services, loader and conventional memory RAM; Unaccepted RAM
    /// only with CONFIG_UNACCEPTED_MEMORY, skipped otherwise; ACPI reclaim
    /// `E820_TYPE_ACPI`; NVS; reserved for runtime, MMIO and PAL code),
    /// adjacent entries of one type merged ("Merge adjacent mappings").
    /// `efi_soft_reserve_enabled()` is taken as off (no `efi=nosoftreserve`
    /// question arises: the model's maps carry no `EFI_MEMORY_SP` RAM).
    /// - Complexity: O(n) in the descriptors.
    public static func e820Table(map: EFIMemoryMap, unacceptedSupported: Bool) -> [E820Entry] {
        var out: [E820Entry] = []
        for d in map.descriptors {
            let type: E820Type
            switch d.type {
            case .reserved, .runtimeServicesCode, .runtimeServicesData, .mmio, .mmioPortSpace, .palCode: type = .reserved
            case .unusable: type = .unusable
            case .acpiReclaim: type = .acpi
            case .loaderCode, .loaderData, .bootServicesCode, .bootServicesData, .conventional: type = .ram
            case .acpiNVS: type = .nvs
            case .persistent: type = .pmem
            case .unaccepted:
                guard unacceptedSupported else { continue }
                type = .ram
            }
            if let last = out.last, last.type == type, last.range.end == d.physicalStart {
                out[out.count - 1].range.end = d.end
            } else {
                out.append(E820Entry(range: d.range, type: type))
            }
        }
        return out
    }
}
