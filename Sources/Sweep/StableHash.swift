/// FNV-1a, 64 bits: a hash that is the same on every machine and every run
/// (Swift's `Hasher` is seeded per process), for the results database's
/// point keys and the calibration hash.
public struct StableHash: Sendable {
    public private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    public init() {}

    public mutating func add(_ text: String) {
        for b in text.utf8 { value = (value ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
        // A separator byte, so ("ab", "c") and ("a", "bc") differ.
        value = (value ^ 0xff) &* 0x0000_0100_0000_01b3
    }

    /// 16 lower-case hex digits.
    public var hex: String {
        let s = String(value, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }

    /// Two independent FNV-1a streams (the second over the text reversed in
    /// order of parts), 32 hex digits: keys for up to millions of points
    /// without a practical chance of collision.
    public static func key(_ parts: [String]) -> String {
        var a = StableHash()
        var b = StableHash()
        b.value = 0x84222325_cbf29ce4
        for p in parts { a.add(p) }
        for p in parts.reversed() { b.add(p) }
        return a.hex + b.hex
    }
}
