/// LZO1X-1 written in Swift: the same bytes as liblzo2 2.10's
/// `lzo1x_1_compress()` (`src/lzo1x_1.c`, which includes
/// `src/lzo1x_c.ch` with `D_BITS` 14 and the `DINDEX` hash below), without
/// the library's clear of its dictionary before every block.
///
/// What liblzo2 2.10 does, and this type with it:
/// - `lzo1x_1_compress()` splits its input into blocks of at most 49152
///   bytes (`M4_MAX_OFFSET + 1`) while more than 20 bytes are left, clears
///   the dictionary (`lzo_memset(wrkmem, 0, 16384 * sizeof(lzo_dict_t))`:
///   16384 two-byte entries, 32 KiB, the `memset` of 0x8000 bytes in the
///   Debian build) and calls the block compressor `lzo1x_1_compress_core()`
///   (`do_compress` in `lzo1x_c.ch`) with the count of literals the previous
///   block left unwritten (`ti`). A block whose length plus those literals is
///   under 32 bytes stops the split (`(t + ll) >> 5 == 0`, the first half of
///   its pointer-overflow guard), so its bytes are all literals.
/// - The block compressor hashes the four bytes at `ip` read little-endian
///   (`UA_GET_LE32`): `DINDEX(dv) = ((0x1824429d * dv) mod 2^32) >> 18`, an
///   index into the 16384 entries, each the offset of the last position that
///   hashed there from the block's start (`DENTRY`, `lzo_dict_t` is
///   `lzo_uint16_t`). It reads the entry (`GINDEX`), stores `ip`'s offset
///   (`UPDATE_I`), and has a match when the four bytes at the entry's
///   position equal `dv`. No offset check: a cleared entry is offset 0, the
///   block's first byte, which is always before `ip`.
/// - Without a match, `ip` advances by `1 + (ip - ii) / 32`, `ii` being the
///   start of the pending literals: the longer the literal run, the larger
///   the step (how LZO1X-1 gets through incompressible data quickly).
/// - With a match, the pending literals are written (a run of 1-3 goes into
///   the low two bits of the byte two back, `op[-2] |= t`; 4-18 as `t - 3`;
///   longer as a 0 byte, a 0 per 255, then the rest of `t - 18`), the match
///   is extended from byte 4 to the first difference (the 64-bit compare with
///   `cttz` of the x86-64 build; stopped at a length 4 + 8k that reaches
///   `ip_end`, 20 bytes before the block's end), and coded as M2 (length at
///   most 8, offset at most 0x800: two bytes), M3 (offset at most 0x4000:
///   `32 | (len - 2)`, or `32` and the length in 255s past 33, then two offset
///   bytes) or M4 (`16 | (off - 0x4000) >> 11 & 8 | (len - 2)`, lengths past
///   9 the same way). The search goes on at the match's end, with no step.
/// - At the end the literals left (`t`) are written: a first byte of
///   `17 + t` when nothing was written yet and `t <= 238`, else as above; and
///   the end-of-stream marker, an M4 of distance 0: `0x11 0x00 0x00`.
///
/// The clear is the point of this type: liblzo2 spends more instructions in
/// it than in compressing a 4 KiB page (docs/PERFORMANCE.md). A cleared
/// entry means "offset 0 of this block", so a stale entry must read as 0,
/// not as its old offset. Entries here are 32-bit positions on a running
/// count (`base` plus the offset in the block); a new block moves `base`
/// past every position written so far, so an entry below `base` is stale
/// and reads as offset 0: exactly a cleared dictionary, at no cost per call.
/// When the count nears 2^32 (every 4 GiB of input) the table is cleared
/// for real and the count starts again.
///
/// Not thread-safe: one per thread (`PageCompressor` holds one).
package final class LZO1X1Compressor {
    /// `D_BITS` of `lzo1x_1.c`: 2^14 dictionary entries.
    static let dictionaryBits = 14
    static let dictionaryEntries = 1 << dictionaryBits
    /// The largest block `lzo1x_1_compress()` hands its core: 49152 bytes,
    /// so every offset in a block fits `lzo_uint16_t` and `M4_MAX_OFFSET`.
    static let blockLimit = 49152
    /// `ip_end = in + in_len - 20`: the search stops 20 bytes before a
    /// block's end, and inputs of 20 bytes or fewer are all literals.
    static let tailBytes = 20

    private let dictionary: UnsafeMutablePointer<UInt32>
    /// The position a block's offset 0 has in the entries; entries below it
    /// are from earlier blocks or calls and read as offset 0.
    private var base: UInt32 = 0
    /// One past the highest position any entry can hold.
    private var nextBase: UInt32 = 0

    package convenience init() { self.init(firstPosition: 0) }

    /// A compressor whose position count starts at `firstPosition` (a test
    /// starts it near 2^32 to reach the real clear).
    package init(firstPosition: UInt32) {
        dictionary = .allocate(capacity: Self.dictionaryEntries)
        dictionary.initialize(repeating: firstPosition, count: Self.dictionaryEntries)
        nextBase = firstPosition
    }

    deinit { dictionary.deallocate() }

    /// The most bytes `compress` writes for `count` input bytes: lzo's
    /// documented bound for LZO1X-1, `n + n/16 + 64 + 3`.
    package static func maxOutputCount(_ count: Int) -> Int { count + count / 16 + 64 + 3 }

    /// Compresses `count` bytes at `src` into `dst` (at least
    /// `maxOutputCount(count)` bytes) and returns the compressed length: the
    /// bytes `lzo1x_1_compress(src, count, dst, &len, wrkmem)` writes, for any
    /// history of earlier calls.
    /// - Complexity: O(`count`); no allocation, no work per dictionary entry.
    package func compress(_ src: UnsafePointer<UInt8>, count: Int, into dst: UnsafeMutablePointer<UInt8>) -> Int {
        var ip = src
        var op = dst
        var left = count
        var pending = 0  // `t`: literals not written yet, ending at `ip`
        while left > Self.tailBytes {
            let blockLength = min(left, Self.blockLimit)
            // `(ll_end + ((t + ll) >> 5)) <= ll_end`: true when the sum is
            // under 32 (the guard's other half is an address-space wrap).
            if (pending + blockLength) >> 5 == 0 { break }
            startBlock(length: blockLength)
            pending = compressBlock(ip, length: blockLength, output: &op, pending: pending)
            ip += blockLength
            left -= blockLength
        }
        pending += left
        if pending > 0 {
            let literals = src + (count - pending)
            if op == dst && pending <= 238 {
                op.pointee = UInt8(17 + pending)
                op += 1
            } else {
                op = writeLiteralRunLength(pending, at: op)
            }
            op.update(from: literals, count: pending)
            op += pending
        }
        // End of stream: `M4_MARKER | 1`, then a zero distance.
        op[0] = 0x11; op[1] = 0; op[2] = 0
        op += 3
        return dst.distance(to: op)
    }

    /// The clear `lzo1x_1_compress()` does before each block, in O(1): every
    /// entry written so far falls below the new `base`.
    private func startBlock(length: Int) {
        if nextBase > UInt32.max - UInt32(Self.blockLimit) {
            dictionary.update(repeating: 0, count: Self.dictionaryEntries)
            nextBase = 0
        }
        base = nextBase
        nextBase = base + UInt32(length)
    }

    /// The length code of a literal run of `t` bytes written before a match
    /// or at the end (`lzo1x_c.ch`): 1-3 in the previous code's low bits,
    /// 4-18 as one byte, longer as 0, a 0 per 255, and the remainder.
    @inline(__always)
    private func writeLiteralRunLength(_ t: Int, at start: UnsafeMutablePointer<UInt8>) -> UnsafeMutablePointer<UInt8> {
        var op = start
        if t <= 3 {
            op[-2] |= UInt8(truncatingIfNeeded: t)
        } else if t <= 18 {
            op.pointee = UInt8(truncatingIfNeeded: t - 3)
            op += 1
        } else {
            op.pointee = 0
            op = writeLengthContinuation(t - 18, at: op + 1)
        }
        return op
    }

    /// LZO's long-length continuation (`lzo1x_c.ch`, shared by literal runs
    /// and M3/M4 matches): a 0 byte for every 255 beyond the first, then the
    /// remainder (1-255).
    @inline(__always)
    private func writeLengthContinuation(_ length: Int, at start: UnsafeMutablePointer<UInt8>) -> UnsafeMutablePointer<UInt8> {
        var op = start
        var rest = length
        while rest > 255 {
            rest -= 255
            op.pointee = 0
            op += 1
        }
        op.pointee = UInt8(truncatingIfNeeded: rest)
        return op + 1
    }

    /// `lzo1x_1_compress_core()`: one block of `length` bytes at `block`,
    /// `pending` literals before it still to be written (they end at
    /// `block`). Advances `output` and returns the literals left at the
    /// block's end (`in_end - (ii - ti)`).
    private func compressBlock(_ block: UnsafePointer<UInt8>, length: Int, output: inout UnsafeMutablePointer<UInt8>,
                               pending ti: Int) -> Int {
        var ti = ti
        var op = output
        let ipEnd = block + (length - Self.tailBytes)
        var ip = block
        var ii = block  // the first literal not written yet (less `ti`)
        let dict = dictionary
        let base = self.base
        ip += ti < 4 ? 4 - ti : 0
        ip += 1 + (ii.distance(to: ip) >> 5)
        while ip < ipEnd {
            let dv = load32(ip)
            let index = Int(truncatingIfNeeded: (dv &* 0x1824_429d) >> (32 - UInt32(Self.dictionaryBits)))
            let entry = dict[index]
            let matchOffset = entry >= base ? Int(truncatingIfNeeded: entry &- base) : 0
            let mPos = block + matchOffset
            dict[index] = base &+ UInt32(truncatingIfNeeded: block.distance(to: ip))
            if dv != load32(mPos) {
                ip += 1 + (ii.distance(to: ip) >> 5)
                continue
            }
            // The literals before the match, with those the previous block left.
            ii -= ti
            ti = 0
            let t = ii.distance(to: ip)
            if t != 0 {
                op = writeLiteralRunLength(t, at: op)
                op.update(from: ii, count: t)
                op += t
            }
            let mLen = matchLength(ip, mPos, ipEnd: ipEnd)
            let mOff = mPos.distance(to: ip)
            ip += mLen
            ii = ip
            op = writeMatch(length: mLen, distance: mOff, at: op)
        }
        output = op
        return ii.distance(to: block + length) + ti
    }

    /// The match length: 4 known-equal bytes, then 8 at a time to the first
    /// difference; a length of 4 + 8k that reaches `ipEnd` stops there (the
    /// `m_len_done` exit), whatever follows.
    @inline(__always)
    private func matchLength(_ ip: UnsafePointer<UInt8>, _ mPos: UnsafePointer<UInt8>, ipEnd: UnsafePointer<UInt8>) -> Int {
        var length = 4
        var v = load64(ip + length) ^ load64(mPos + length)
        if v == 0 {
            repeat {
                length += 8
                v = load64(ip + length) ^ load64(mPos + length)
                if ip + length >= ipEnd { return length }
            } while v == 0
        }
        return length + v.trailingZeroBitCount / 8
    }

    /// A match's code: M2, M3 or M4 by length and distance (`lzo1x_c.ch`).
    @inline(__always)
    private func writeMatch(length: Int, distance: Int, at start: UnsafeMutablePointer<UInt8>) -> UnsafeMutablePointer<UInt8> {
        var op = start
        let mLen = length
        var mOff = distance
        if mLen <= 8 && mOff <= 0x0800 {
            // M2: 3-8 bytes within 2 KiB.
            mOff -= 1
            op[0] = UInt8(truncatingIfNeeded: ((mLen - 1) << 5) | ((mOff & 7) << 2))
            op[1] = UInt8(truncatingIfNeeded: mOff >> 3)
            return op + 2
        }
        let marker: Int
        let maxShortLength: Int
        if mOff <= 0x4000 {
            // M3: within 16 KiB.
            mOff -= 1
            marker = 32
            maxShortLength = 33
        } else {
            // M4: within 48 KiB; bit 3 of the marker is bit 14 of the offset.
            mOff -= 0x4000
            marker = 16 | ((mOff >> 11) & 8)
            maxShortLength = 9
        }
        if mLen <= maxShortLength {
            op.pointee = UInt8(truncatingIfNeeded: marker | (mLen - 2))
            op += 1
        } else {
            op.pointee = UInt8(truncatingIfNeeded: marker)
            op = writeLengthContinuation(mLen - maxShortLength, at: op + 1)
        }
        op[0] = UInt8(truncatingIfNeeded: mOff << 2)
        op[1] = UInt8(truncatingIfNeeded: mOff >> 6)
        return op + 2
    }

    @inline(__always)
    private func load32(_ p: UnsafePointer<UInt8>) -> UInt32 {
        UInt32(littleEndian: UnsafeRawPointer(p).loadUnaligned(as: UInt32.self))
    }

    @inline(__always)
    private func load64(_ p: UnsafePointer<UInt8>) -> UInt64 {
        UInt64(littleEndian: UnsafeRawPointer(p).loadUnaligned(as: UInt64.self))
    }
}
