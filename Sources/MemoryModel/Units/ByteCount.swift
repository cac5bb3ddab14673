/// A number of bytes. Distinct from addresses and frame numbers so the two
/// cannot be mixed by accident.
public struct ByteCount: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var value: UInt64

    @inlinable public init(_ value: UInt64) { self.value = value }

    public static let zero = ByteCount(0)
    @inlinable public static func mib(_ n: UInt64) -> ByteCount { ByteCount(n << 20) }
    @inlinable public static func gib(_ n: UInt64) -> ByteCount { ByteCount(n << 30) }

    /// Number of whole 4 KiB pages.
    @inlinable public var pages4K: UInt64 { value >> 12 }

    @inlinable public static func < (a: ByteCount, b: ByteCount) -> Bool { a.value < b.value }
    @inlinable public static func + (a: ByteCount, b: ByteCount) -> ByteCount { ByteCount(a.value + b.value) }
    @inlinable public static func - (a: ByteCount, b: ByteCount) -> ByteCount { ByteCount(a.value - b.value) }

    /// The size the way kernel and QEMU users write it: the largest binary
    /// unit that gives a whole number or one exact decimal (`64G`, `1.5T`,
    /// `512M`, `4K`, `100`).
    public var description: String { ByteCount.format(value) }

    static let suffixes: [(UInt64, String)] = [
        (1 << 60, "E"), (1 << 50, "P"), (1 << 40, "T"), (1 << 30, "G"), (1 << 20, "M"), (1 << 10, "K"),
    ]

    /// Several sizes of one line in one unit: the largest binary unit, not
    /// above the largest size, in which every size is a whole number or has
    /// one exact decimal (`description`'s rule over the set), so a line
    /// reads `3398M of 3402M, 1.5M` or `3479552K of 3483648K, 1536K`, never
    /// `3398M of 3483648K`. Zero prints `0`.
    /// - Complexity: O(sizes × units).
    public static func formatInOneUnit(_ values: [UInt64]) -> [String] {
        let largest = values.max() ?? 0
        func exact(_ v: UInt64, _ unit: UInt64) -> Bool {
            let (tenths, overflow) = v.multipliedReportingOverflow(by: 10)
            return v % unit == 0 || (!overflow && tenths % unit == 0)
        }
        guard let chosen = suffixes.first(where: { u in largest >= u.0 && values.allSatisfy { exact($0, u.0) } }) else {
            return values.map { "\($0)" }
        }
        let (unit, s) = chosen
        return values.map { v in
            if v == 0 { return "0" }
            if v % unit == 0 { return "\(v / unit)\(s)" }
            let t = v * 10 / unit
            return "\(t / 10).\(t % 10)\(s)"
        }
    }

    static func format(_ v: UInt64) -> String {
        if v == 0 { return "0" }
        for (unit, s) in suffixes where v >= unit {
            if v % unit == 0 { return "\(v / unit)\(s)" }
            // One exact decimal place, e.g. 1.5T.
            let (tenths, overflow) = v.multipliedReportingOverflow(by: 10)
            if !overflow, tenths % unit == 0 {
                let t = tenths / unit
                return "\(t / 10).\(t % 10)\(s)"
            }
        }
        for (unit, s) in suffixes.reversed() where v % unit == 0 && v / unit < 100_000 {
            return "\(v / unit)\(s)"
        }
        return "\(v)"
    }
}
