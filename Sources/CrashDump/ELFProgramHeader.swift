import MemoryModel

/// An `Elf64_Phdr` (56 bytes, little-endian), as vmcores carry them.
public struct ELFProgramHeader: Sendable, Equatable {
    public static let size = 56
    public static let load: UInt32 = 1, note: UInt32 = 4
    public var type: UInt32
    public var flags: UInt32
    public var offset: UInt64
    public var vaddr: UInt64
    public var paddr: UInt64
    public var filesz: UInt64
    public var memsz: UInt64
    public var align: UInt64

    public init(type: UInt32, flags: UInt32, offset: UInt64, vaddr: UInt64, paddr: UInt64, filesz: UInt64, memsz: UInt64, align: UInt64) {
        self.type = type; self.flags = flags; self.offset = offset; self.vaddr = vaddr; self.paddr = paddr
        self.filesz = filesz; self.memsz = memsz; self.align = align
    }

    /// Decodes the header at byte `at` of `b`.
    init(_ b: [UInt8], at i: Int) {
        func u64(_ o: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(b[i + o + $1]) << (8 * UInt64($1)) } }
        func u32(_ o: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(b[i + o + $1]) << (8 * UInt32($1)) } }
        self.init(type: u32(0), flags: u32(4), offset: u64(8), vaddr: u64(16), paddr: u64(24), filesz: u64(32), memsz: u64(40), align: u64(48))
    }

    func encode(into w: inout ByteWriter) {
        w.u32(type); w.u32(flags); w.u64(offset); w.u64(vaddr); w.u64(paddr); w.u64(filesz); w.u64(memsz); w.u64(align)
    }
}
