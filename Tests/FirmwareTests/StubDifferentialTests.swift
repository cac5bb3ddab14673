import CostModel
import Firmware
import MemoryModel
import Simulation
import Testing

/// A small model of the EFI stub and `accept_memory()` written again from
/// the kernel source, sharing no code with the library: plain integers, a
/// `[Bool]` bitmap, the C statements in the C order.
/// - `allocate_unaccepted_bitmap()` (drivers/firmware/efi/libstub/unaccepted_memory.c)
/// - `setup_e820()` (libstub/x86-stub.c): `process_unaccepted_memory()` per
///   `EFI_UNACCEPTED_MEMORY` descriptor
/// - `accept_memory()` (drivers/firmware/efi/unaccepted_memory.c), with the
///   guard unit and the clamp to the bitmap
/// - edk2's `CoreGetMemoryMap()` merge (MdeModulePkg/Core/Dxe/Mem/Page.c):
///   equal neighbours, attributes compared without RP/XP/RO.
struct ReferenceStub {
    static let unitSize: UInt64 = 2 * 1024 * 1024

    struct Descriptor { var type: UInt32; var start: UInt64; var pages: UInt64; var attribute: UInt64 }

    var physBase: UInt64 = 0
    var bitmapBytes: UInt64 = 0
    var bitmap: [Bool] = []
    var hasTable = false
    /// arch_accept_memory() calls of each process_unaccepted_memory() call.
    var stubCalls: [[(UInt64, UInt64)]] = []

    static func edk2Merge(_ ds: [Descriptor]) -> [Descriptor] {
        let accessMask: UInt64 = 0x2000 | 0x4000 | 0x20000
        var out: [Descriptor] = []
        for var d in ds.sorted(by: { $0.start < $1.start }) {
            d.attribute &= ~accessMask
            if let l = out.last, l.type == d.type, l.attribute == d.attribute, l.start + l.pages * 4096 == d.start {
                out[out.count - 1].pages += d.pages
            } else { out.append(d) }
        }
        return out
    }

    init(map: [Descriptor]) {
        var lo = UInt64.max, hi: UInt64 = 0
        for d in map where d.type == 15 {
            lo = min(lo, d.start)
            hi = max(hi, d.start + d.pages * 4096)
        }
        guard lo != UInt64.max else { return }
        lo = lo / Self.unitSize * Self.unitSize
        hi = (hi + Self.unitSize - 1) / Self.unitSize * Self.unitSize
        bitmapBytes = (hi - lo + Self.unitSize * 8 - 1) / (Self.unitSize * 8)
        physBase = lo
        bitmap = Array(repeating: false, count: Int(bitmapBytes * 8))
        hasTable = true
        for d in map.sorted(by: { $0.start < $1.start }) where d.type == 15 {
            stubCalls.append(process(d.start, d.start + d.pages * 4096))
        }
    }

    mutating func process(_ s: UInt64, _ e: UInt64) -> [(UInt64, UInt64)] {
        var start = s, end = e
        var accepts: [(UInt64, UInt64)] = []
        let unit = Self.unitSize, mask = Self.unitSize - 1
        if end - start < 2 * unit { accepts.append((start, end)); return accepts }
        if start & mask != 0 {
            accepts.append((start, (start + mask) & ~mask))
            start = (start + mask) & ~mask
        }
        if end & mask != 0 {
            accepts.append((end & ~mask, end))
            end = end & ~mask
        }
        if start < physBase {
            accepts.append((start, min(physBase, end)))
            start = physBase
        }
        if end < physBase { return accepts }
        start -= physBase
        end -= physBase
        if end > bitmapBytes * unit * 8 {
            accepts.append((bitmapBytes * unit * 8 + physBase, end + physBase))
            end = bitmapBytes * unit * 8
        }
        var i = start / unit
        while i < start / unit + (end - start) / unit { bitmap[Int(i)] = true; i += 1 }
        return accepts.filter { $0.1 > $0.0 }
    }

    mutating func acceptMemory(_ s: UInt64, _ size: UInt64) -> [(UInt64, UInt64)] {
        guard hasTable else { return [] }
        var start = s
        var end = s + size
        let unit = Self.unitSize
        if start < physBase { start = physBase }
        if end < physBase { return [] }
        start -= physBase
        end -= physBase
        if end % unit == 0 { end += unit }
        if end > bitmapBytes * unit * 8 { end = bitmapBytes * unit * 8 }
        let first = start / unit, last = (end + unit - 1) / unit
        var out: [(UInt64, UInt64)] = []
        var i = first
        while i < last {
            guard bitmap[Int(i)] else { i += 1; continue }
            var j = i
            while j < last, bitmap[Int(j)] { bitmap[Int(j)] = false; j += 1 }
            out.append((i * unit + physBase, j * unit + physBase))
            i = j
        }
        return out
    }

    var setRuns: [(UInt64, UInt64)] {
        var out: [(UInt64, UInt64)] = []
        var i = 0
        while i < bitmap.count {
            guard bitmap[i] else { i += 1; continue }
            var j = i
            while j < bitmap.count, bitmap[j] { j += 1 }
            out.append((UInt64(i), UInt64(j)))
            i = j
        }
        return out
    }
}

@Suite struct StubDifferentialTests {
    /// xorshift64*, so the test shares not even its randomness with the library.
    struct Rand {
        var s: UInt64
        mutating func next() -> UInt64 { s ^= s >> 12; s ^= s << 25; s ^= s >> 27; return s &* 0x2545_F491_4F6C_DD1D }
        mutating func below(_ n: UInt64) -> UInt64 { next() % n }
    }

    /// A map of every type with touching and adjacent Unaccepted descriptors:
    /// conventional memory below 4 GiB for the table, then descriptors laid
    /// end to end (or after a small gap) with sizes that are whole units,
    /// unit fractions or a few pages, and attributes that sometimes differ
    /// only in XP.
    static func randomMap(_ r: inout Rand) -> [ReferenceStub.Descriptor] {
        var ds = [ReferenceStub.Descriptor(type: 7, start: 0, pages: 0x4000, attribute: 0xF)]
        var at: UInt64 = r.below(2) == 0 ? 0x1_0000_0000 : 0x4000_0000 + r.below(64) * 4096
        let attrs: [UInt64] = [0xF, 0xF | 0x4000, 0x8, 0xF | (1 << 63)]
        for _ in 0..<(1 + r.below(10)) {
            if r.below(3) == 0 { at += (1 + r.below(1024)) * 4096 }
            let type = r.below(3) == 0 ? UInt32(r.below(16)) : 15
            let pages: UInt64
            switch r.below(4) {
            case 0: pages = (1 + r.below(8)) * 512
            case 1: pages = 1 + r.below(1200)
            case 2: pages = 1 + r.below(16)
            default: pages = 512 * (1 + r.below(4)) + r.below(512)
            }
            ds.append(.init(type: type, start: at, pages: pages, attribute: attrs[Int(r.below(UInt64(attrs.count)))]))
            at += pages * 4096
        }
        return ds
    }

    static func library(_ ds: [ReferenceStub.Descriptor]) throws -> EFIMemoryMap {
        try EFIMemoryMap(ds.map {
            EFIMemoryDescriptor(type: EFIMemoryType(rawValue: $0.type)!, start: $0.start, end: $0.start + $0.pages * 4096,
                                attribute: EFIMemoryAttributes(rawValue: $0.attribute))
        })
    }

    @Test(arguments: [GetMemoryMapStyle.unmerged, .edk2])
    func libraryMatchesTheReferenceOnRandomMapsAndCalls(style: GetMemoryMapStyle) throws {
        let calibration = try Calibration.builtIn()
        var r = Rand(s: style == .edk2 ? 0x5EED_0016 : 0x5EED_1600)
        for _ in 0..<120 {
            let ds = Self.randomMap(&r)
            let seen = style == .edk2 ? ReferenceStub.edk2Merge(ds) : ds
            var ref = ReferenceStub(map: seen)
            let top = ds.map { $0.start + $0.pages * 4096 }.max()!
            let base = ds.first { $0.type == 15 }?.start ?? ds[1].start
            var calls: [(UInt64, UInt64)] = []
            for _ in 0..<(r.below(12)) {
                let s = base > 0x20_0000 && r.below(5) == 0 ? base - r.below(0x20_0000) : base + r.below(top - base + 0x40_0000)
                let start = r.below(3) == 0 ? s / 0x20_0000 * 0x20_0000 : s / 4096 * 4096
                let size = [0, 4096, 0x20_0000, 0x40_0000, r.below(0x100_0000)][Int(r.below(5))]
                calls.append((start, size))
            }
            let lib = try AcceptTool.run(map: Self.library(ds), calls: calls, calibration: calibration, getMemoryMap: style)
            #expect((lib.table != nil) == ref.hasTable)
            if let t = lib.table {
                #expect(t.physBase.value == ref.physBase)
                #expect(t.size == ref.bitmapBytes)
            }
            #expect(lib.stubCalls.map { $0.archAccepts.map { [$0.start, $0.end] } } == ref.stubCalls.map { $0.map { [$0.0, $0.1] } },
                    "map \(seen.map { "\($0.type)@\(String($0.start, radix: 16))+\($0.pages)" })")
            #expect(lib.calls.count == calls.count)
            for (i, c) in calls.enumerated() {
                let want = ref.acceptMemory(c.0, c.1)
                #expect(lib.calls[i].archAccepts.map { [$0.0, $0.1] } == want.map { [$0.0, $0.1] },
                        "call \(i) accept_memory(\(String(c.0, radix: 16)), \(String(c.1, radix: 16)))")
            }
            #expect(lib.unacceptedUnits.map { [$0.lowerBound.value, $0.upperBound.value] } == ref.setRuns.map { [$0.0, $0.1] })
        }
    }
}
