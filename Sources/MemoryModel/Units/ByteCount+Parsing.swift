extension ByteCount {
    /// The largest guest the model accepts: 4 PiB, the limit the EFI stub's
    /// own comment sizes its worst-case bitmap for (256 MiB to handle 4 PiB).
    public static let maximumGuestSize = ByteCount(1 << 52)

    /// Parses a size as QEMU's `-m` and the kernel's `memparse()` accept it:
    /// a decimal number (optionally with a fraction, `1.5T`) or a `0x` hex
    /// integer, followed by an optional binary suffix `K M G T P E`
    /// (case-insensitive, optionally followed by `B` or `iB`). No suffix
    /// means bytes.
    ///
    /// - Throws: `CocomemError(.invalidSize)` naming the problem for empty,
    ///   negative, non-numeric, non-integral or overflowing input.
    /// - Complexity: O(n) in the length of the text.
    public static func parse(_ text: String) throws -> ByteCount {
        let t = text.trimmingSpaces()
        guard !t.isEmpty else { throw CocomemError(.invalidSize, "empty size") }
        if t.hasPrefix("-") { throw CocomemError(.invalidSize, "size '\(text)' is negative") }
        var body = Substring(t)
        var multiplier: UInt64 = 1
        let lower = body.lowercased()
        let isHex = lower.hasPrefix("0x")
        // Strip a suffix: [KMGTPE](i?B)? ; a bare 'B' means bytes (not for hex, where B is a digit).
        func stripSuffix() {
            var s = body
            var l = s.lowercased()
            if l.hasSuffix("ib") { s = s.dropLast(2); l = s.lowercased() }
            else if l.hasSuffix("b"), !isHex || l.dropLast().last.map({ "kmgtpe".contains($0) }) == true {
                s = s.dropLast(); l = s.lowercased()
            }
            if let c = l.last, let idx = "kmgtpe".firstIndex(of: c) {
                let shift = UInt64("kmgtpe".distance(from: "kmgtpe".startIndex, to: idx) + 1) * 10
                multiplier = 1 << shift
                s = s.dropLast()
            }
            body = s
        }
        stripSuffix()
        guard !body.isEmpty else { throw CocomemError(.invalidSize, "size '\(text)' has no number") }
        if isHex {
            let digits = body.dropFirst(2)
            guard !digits.isEmpty, let v = UInt64(digits, radix: 16) else {
                throw CocomemError(.invalidSize, "size '\(text)' is not a number")
            }
            let (r, o) = v.multipliedReportingOverflow(by: multiplier)
            guard !o else { throw CocomemError(.invalidSize, "size '\(text)' is too large") }
            return ByteCount(r)
        }
        let parts = body.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count <= 2, let intPart = parts.first,
              !intPart.isEmpty || parts.count == 2,
              intPart.allSatisfy({ $0.isASCII && $0.isNumber }),
              parts.count == 1 || (!parts[1].isEmpty && parts[1].allSatisfy({ $0.isASCII && $0.isNumber }))
        else { throw CocomemError(.invalidSize, "size '\(text)' is not a number") }
        guard let whole = intPart.isEmpty ? 0 : UInt64(intPart) else {
            throw CocomemError(.invalidSize, "size '\(text)' is too large")
        }
        var (total, o1) = whole.multipliedReportingOverflow(by: multiplier)
        guard !o1 else { throw CocomemError(.invalidSize, "size '\(text)' is too large") }
        if parts.count == 2 {
            let frac = parts[1]
            guard frac.count <= 18, let f = UInt64(frac) else {
                throw CocomemError(.invalidSize, "size '\(text)' has too many decimals")
            }
            var denom: UInt64 = 1
            for _ in 0..<frac.count { denom *= 10 }
            // f * multiplier / denom must be an integer number of bytes.
            let (num, o2) = f.multipliedFullWidth(by: multiplier).high == 0
                ? (f * multiplier, false) : (0, true)
            guard !o2 else { throw CocomemError(.invalidSize, "size '\(text)' is too large") }
            guard num % denom == 0 else {
                throw CocomemError(.invalidSize, "size '\(text)' is not a whole number of bytes")
            }
            (total, o1) = total.addingReportingOverflow(num / denom)
            guard !o1 else { throw CocomemError(.invalidSize, "size '\(text)' is too large") }
        }
        return ByteCount(total)
    }

    /// Parses a guest memory size and checks it is usable as one: not zero,
    /// at most 4 PiB, and a whole number of 4 KiB pages (QEMU rounds RAM to
    /// pages; a sub-page size is rejected rather than silently changed).
    public static func parseGuestMemory(_ text: String) throws -> ByteCount {
        let v = try parse(text)
        guard v.value > 0 else { throw CocomemError(.invalidSize, "memory size '\(text)' is zero") }
        guard v <= maximumGuestSize else {
            throw CocomemError(.invalidSize, "memory size '\(text)' exceeds the 4 PiB maximum")
        }
        guard v.value % 4096 == 0 else {
            throw CocomemError(.invalidSize, "memory size '\(text)' is not a multiple of 4 KiB")
        }
        return v
    }
}

extension String {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" || f == "\n" || f == "\r" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\n" || l == "\r" { s = s.dropLast() }
        return String(s)
    }
}

/// Parses an integer written in decimal or `0x` hex, as the calls file and
/// memory-map lines write them.
public func parseInteger(_ text: Substring) -> UInt64? {
    let t = text.lowercased()
    if t.hasPrefix("0x") { return UInt64(t.dropFirst(2), radix: 16) }
    return UInt64(t)
}
