import CrashDump
import GuestKernel
import MemoryModel
import TestSupport
import Testing

/// liblzo2's `lzo1x_1_compress()`, loaded with dlopen: the reference the
/// Swift LZO1X-1 must equal byte for byte.
private struct LibLZO {
    static let loaded: CompressionLibraries.LZO? = {
        guard let lib = try? CompressionLibraries.LZO.shared.get(), lib.initialize() == CompressionLibraries.LZO.ok else { return nil }
        return lib
    }()
    static let skipReason: Comment = "liblzo2.so.2 is not installed (apt-get install liblzo2-2): nothing to compare the Swift LZO1X-1 with"

    /// What liblzo2 writes for `input`, on a fresh work memory each call
    /// as makedumpfile passes it (the library clears it anyway).
    static func compress(_ input: [UInt8]) -> [UInt8] {
        let lib = loaded!
        var work = [UInt8](repeating: 0xA5, count: CompressionLibraries.LZO.workMemoryBytes)
        var out = [UInt8](repeating: 0, count: LZO1X1Compressor.maxOutputCount(input.count) + 64)
        var len: UInt = 0
        let rc = input.withUnsafeBufferPointer { i in
            out.withUnsafeMutableBufferPointer { o in
                work.withUnsafeMutableBytes { w in
                    lib.compress1X1(i.baseAddress ?? UnsafePointer(bitPattern: 1), UInt(i.count), o.baseAddress, &len, w.baseAddress)
                }
            }
        }
        #expect(rc == CompressionLibraries.LZO.ok)
        return Array(out[0..<Int(len)])
    }
}

private extension LZO1X1Compressor {
    /// Nil when this compressor writes liblzo2's bytes for `input`, else
    /// a one-line description of the difference.
    func differenceFromLiblzo(_ input: [UInt8]) -> String? {
        let mine = compress(input), theirs = LibLZO.compress(input)
        guard mine != theirs else { return nil }
        let at = zip(mine, theirs).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(mine.count, theirs.count)
        return "\(input.count) bytes in: \(mine.count) bytes out, liblzo2 \(theirs.count); first difference at byte \(at)"
    }

    func compress(_ input: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Self.maxOutputCount(input.count))
        let n = input.withUnsafeBufferPointer { i in
            out.withUnsafeMutableBufferPointer { o in
                compress(i.baseAddress ?? UnsafePointer(bitPattern: 1)!, count: i.count, into: o.baseAddress!)
            }
        }
        return Array(out[0..<n])
    }
}

/// Seeded page contents of the kinds a dump holds, and kinds that reach
/// every code of the format: literal runs of 1-3 (folded into the previous
/// code), 4-18 and longer; M2, M3 and M4 matches; long match lengths.
private struct PageMaker {
    var rng: SplitMix64
    static let words = ["the", "of", "struct", "page", "kernel", "memory", "accept", "0x", "return", "static", "int", "void",
                        "unsigned", "long", "{", "}", ";", "\n", "\t", "if", "else", "for", "lzo", "dump", "vmcore", "=", "->"]

    mutating func int(_ r: ClosedRange<Int>) -> Int { Int.random(in: r, using: &rng) }
    mutating func byte() -> UInt8 { UInt8(truncatingIfNeeded: rng.next()) }

    mutating func fill(_ kind: Int, count: Int) -> [UInt8] {
        switch kind {
        case 0: return [UInt8](repeating: 0, count: count)
        case 1: return [UInt8](repeating: byte(), count: count)
        case 2:  // a repeating pattern of period 1-300
            let period = (0..<int(1...300)).map { _ in byte() }
            return (0..<count).map { period[$0 % period.count] }
        case 3:  // text
            var s: [UInt8] = []
            while s.count < count { s += Array((Self.words[int(0...Self.words.count - 1)] + " ").utf8) }
            return Array(s.prefix(count))
        case 4: return (0..<count).map { _ in byte() }
        case 5:  // a small alphabet: many short matches and short literal runs
            let alphabet = (0..<int(2...4)).map { _ in byte() }
            return (0..<count).map { _ in alphabet[int(0...alphabet.count - 1)] }
        case 6:  // zeros with a few bytes set (a sparse page)
            var p = [UInt8](repeating: 0, count: count)
            for _ in 0..<int(0...12) where count > 0 { p[int(0...count - 1)] = byte() }
            return p
        case 7:  // a random block copied with mutations at varying distances
            let block = (0..<int(8...600)).map { _ in byte() }
            var p: [UInt8] = []
            while p.count < count {
                var copy = block
                for _ in 0..<int(0...4) { copy[int(0...copy.count - 1)] = byte() }
                p += copy
                if int(0...3) == 0 { p += (0..<int(1...40)).map { _ in byte() } }
            }
            return Array(p.prefix(count))
        default:  // 64-byte records: random head, fixed tail (PageContent's shape)
            let random = int(0...64)
            let pattern = (0..<64).map { _ in byte() }
            return (0..<count).map { $0 % 64 < random ? byte() : pattern[$0 % 64] }
        }
    }

    static let kinds = 9

    /// A page of one kind, or a mix of segments of several.
    mutating func page(count: Int) -> [UInt8] {
        if int(0...3) > 0 { return fill(int(0...Self.kinds - 1), count: count) }
        var p: [UInt8] = []
        while p.count < count { p += fill(int(0...Self.kinds - 1), count: min(count - p.count, int(1...1500))) }
        return p
    }
}

/// The Swift LZO1X-1 against liblzo2 2.10 (`lzo1x_1_compress()`): the same
/// bytes for every input, and for any sequence of inputs through one
/// compressor, since it keeps its dictionary between calls where the
/// library clears it.
@Suite struct LZO1X1Tests {
    /// 4000 seeded pages of every kind, most of 4 KiB, some of any length
    /// (the tails of 0-20 bytes are all literals, 21-31 too), through one
    /// compressor, each equal to the library's bytes.
    @Test(.enabled(if: LibLZO.loaded != nil, LibLZO.skipReason), arguments: [1 as UInt64, 2, 3, 4])
    func randomPagesEqualLiblzo(seed: UInt64) {
        var maker = PageMaker(rng: SplitMix64(seed: 0x1A20 &+ seed))
        let lzo = LZO1X1Compressor()
        var mismatches = 0
        for i in 0..<1000 {
            let count: Int
            switch maker.int(0...9) {
            case 0: count = maker.int(0...40)
            case 1: count = maker.int(0...4096)
            default: count = 4096
            }
            if let difference = lzo.differenceFromLiblzo(maker.page(count: count)) {
                mismatches += 1
                if mismatches <= 3 { Issue.record("seed \(seed) page \(i): \(difference)") }
            }
        }
        #expect(mismatches == 0)
    }

    /// Every length from 0 to 600 bytes, random (all literals: the first
    /// byte `17 + t` up to 238 literals, a run length code past it) and
    /// repeating (the 20-byte tail, the 32-byte split threshold).
    @Test(.enabled(if: LibLZO.loaded != nil, LibLZO.skipReason))
    func everyShortLengthEqualsLiblzo() {
        var maker = PageMaker(rng: SplitMix64(seed: 0x5407))
        let lzo = LZO1X1Compressor()
        for count in 0...600 {
            for kind in [4, 2, 0, 7] {
                let input = maker.fill(kind, count: count)
                #expect(lzo.differenceFromLiblzo(input) == nil, "kind \(kind)")
            }
        }
    }

    /// Inputs past 49152 bytes are split into blocks, each with a cleared
    /// dictionary, literals carried across; offsets past 16 KiB are M4 codes.
    @Test(.enabled(if: LibLZO.loaded != nil, LibLZO.skipReason))
    func largeInputsSplitLikeLiblzo() {
        var maker = PageMaker(rng: SplitMix64(seed: 0xB10C))
        let lzo = LZO1X1Compressor()
        for count in [49152, 49153, 49172, 49173, 49183, 49184, 98304 + 25, 131072, 200_000] {
            for _ in 0..<6 {
                var input = maker.page(count: count)
                // Repeats at 16-48 KiB: M4 matches.
                let chunk = maker.page(count: 3000)
                for at in stride(from: maker.int(0...5000), to: count - chunk.count, by: maker.int(17000...30000)) {
                    input.replaceSubrange(at..<at + chunk.count, with: chunk)
                }
                #expect(lzo.differenceFromLiblzo(input) == nil)
            }
        }
    }

    /// The pages a model dump writes: every class's content templates and
    /// the generated struct pages (memmap) and page tables of a guest.
    @Test(.enabled(if: LibLZO.loaded != nil, LibLZO.skipReason))
    func modelPagesEqualLiblzo() throws {
        let img = try smallGuestImage(memory: 512 << 20, kernel: .v6_16)
        let lzo = LZO1X1Compressor()
        var pages = 0
        for c in PageClass.allCases {
            for pfn in 0..<PageContent.templatesPerClass {
                let page = img.content.page(pfn: pfn, class: c)
                #expect(lzo.differenceFromLiblzo(page) == nil, "\(c) template \(pfn)")
                pages += 1
            }
        }
        let kernel = try #require(img.kernel)
        var generated = 0
        img.forEachRun { run, _ in
            for pfn in run.lowerBound.value..<run.upperBound.value where kernel.isGenerated(pfn) && generated < 600 {
                let page = kernel.generatedPage(pfn)
                #expect(lzo.differenceFromLiblzo(page) == nil, "generated page \(pfn)")
                generated += 1
            }
        }
        #expect(generated == 600 && pages > 100)
    }

    /// The dictionary's position count wraps every 4 GiB of input: there
    /// it is cleared for real, and the bytes stay the library's.
    @Test(.enabled(if: LibLZO.loaded != nil, LibLZO.skipReason))
    func positionWrapKeepsTheBytes() {
        var maker = PageMaker(rng: SplitMix64(seed: 0x3A9))
        let lzo = LZO1X1Compressor(firstPosition: UInt32.max - 3 * 4096 - 100)
        for _ in 0..<40 {
            #expect(lzo.differenceFromLiblzo(maker.page(count: 4096)) == nil)
        }
    }

    /// Without the library the Swift compressor still runs: a round trip
    /// through liblzo2's format is the decoder's job, so here only the
    /// shapes the format fixes are checked (end marker, all-literal tails).
    @Test func shortInputsAreOneLiteralRun() {
        let lzo = LZO1X1Compressor()
        #expect(lzo.compress([]) == [0x11, 0, 0])
        let five: [UInt8] = [1, 2, 3, 4, 5]
        #expect(lzo.compress(five) == [17 + 5] + five + [0x11, 0, 0])
        let zeros = [UInt8](repeating: 0, count: 4096)
        #expect(lzo.compress(zeros).count < 64)
    }
}
