public import MemoryModel

/// QEMU's q35 machine RAM layout (`pc_q35_init()`): RAM below 4 GiB up to
/// 0xB0000000, or only 2 GiB of it once RAM reaches 2816 MiB (0xB0000000),
/// the rest from 4 GiB up. The PCI hole, MMCONFIG at 0xB0000000 and the
/// flash at 0xFFC00000 sit between.
public struct Q35Layout: Sendable {
    public let memory: UInt64
    public let lowRAM: AddressRange
    public let highRAM: AddressRange?

    /// The smallest guest the built-in firmware layout supports.
    public static let minimumMemory: UInt64 = 128 << 20

    public init(memory: UInt64) throws {
        guard memory >= Q35Layout.minimumMemory else {
            throw CocomemError(.invalidSize, "memory size \(ByteCount(memory)) is below the 128M minimum of the built-in q35 layout")
        }
        self.memory = memory
        let lowmem: UInt64 = memory >= 0xB000_0000 ? 0x8000_0000 : 0xB000_0000
        let below = min(memory, lowmem)
        lowRAM = AddressRange(start: 0, end: below)
        highRAM = memory > below ? AddressRange(start: 1 << 32, size: memory - below) : nil
    }

    /// The TD HOB, mailbox and temporary memory TDVF's metadata places in RAM
    /// and the VMM adds with TDH.MEM.PAGE.ADD (SNP: the SEC pre-validated
    /// range, `PcdOvmfSecValidatedStart/End`).
    public static let firmwareAddedRAM = AddressRange(start: 0x80_0000, end: 0x82_0000)
    /// Flash holding the firmware volumes (BFV/CFV), private and added at build time.
    public static let flash = AddressRange(start: 0xFFC0_0000, end: 1 << 32)

    /// A representative OVMF/TDVF memory map before the OS loader runs, with
    /// RAM above 4 GiB of type `highType` (Unaccepted or Conventional). The
    /// fixed firmware regions follow a typical OVMF q35 boot; their exact
    /// sizes vary by build and do not affect acceptance.
    public func efiMap(highType: EFIMemoryType, lowUnaccepted: AddressRange? = nil) throws -> EFIMemoryMap {
        let L = lowRAM.end
        var ds: [EFIMemoryDescriptor] = []
        func add(_ t: EFIMemoryType, _ s: UInt64, _ e: UInt64, _ a: EFIMemoryAttributes = .ramDefault) {
            if e > s { ds.append(EFIMemoryDescriptor(type: t, start: s, end: e, attribute: a)) }
        }
        add(.conventional, 0, 0xA_0000)
        add(.conventional, 0x10_0000, 0x80_0000)
        add(.acpiNVS, 0x80_0000, 0x80_8000)
        add(.conventional, 0x80_8000, 0x81_0000)
        add(.acpiNVS, 0x81_0000, 0x90_0000)
        add(.bootServicesData, 0x90_0000, 0x131_C000)
        let top = L - (24 << 20)
        add(.conventional, 0x131_C000, top)
        add(.bootServicesCode, top, L - (16 << 20))
        add(.bootServicesData, L - (16 << 20), L - (12 << 20))
        add(.runtimeServicesCode, L - (12 << 20), L - (10 << 20), [.ramDefault, .runtime])
        add(.runtimeServicesData, L - (10 << 20), L - (8 << 20), [.ramDefault, .runtime])
        add(.acpiReclaim, L - (8 << 20), L - (7 << 20))
        add(.acpiNVS, L - (7 << 20), L - (6 << 20))
        add(.bootServicesData, L - (6 << 20), L - (2 << 20))
        add(.acpiNVS, L - (2 << 20), L)
        add(.reserved, 0xB000_0000, 0xC000_0000, .uc)
        add(.reserved, 0xFEFF_C000, 0xFF00_0000, .ramDefault)
        add(.reserved, Q35Layout.flash.start, Q35Layout.flash.end, [.uc, .runtime])
        if let h = highRAM {
            // Memory is whole 4 KiB pages; EFI descriptors are page granular.
            add(highType, h.start, alignDown(h.end, 4096))
        }
        var map = try EFIMemoryMap(ds)
        if let u = lowUnaccepted, !u.isEmpty { map.retype(u, to: .unaccepted) }
        return map
    }

    /// RAM as the VMM's TD HOB lists it, in order (without the firmware-added range).
    public var ramResources: [AddressRange] {
        var r = [AddressRange(start: 0, end: Q35Layout.firmwareAddedRAM.start),
                 AddressRange(start: Q35Layout.firmwareAddedRAM.end, end: lowRAM.end)]
        if let h = highRAM { r.append(h) }
        return r
    }
}
