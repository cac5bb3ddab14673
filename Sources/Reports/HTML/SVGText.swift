import Foundation

/// Text and number formatting shared by the HTML report, its SVG figures and
/// the terminal strip. Everything here is a pure function of its arguments.
package enum Markup {
    /// Escapes `&`, `<`, `>`, `"` and `'` for HTML/SVG text and attribute values.
    /// - Complexity: O(n) in the length of `s`.
    package static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for c in s.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    /// A coordinate with at most two decimals and no trailing zeros (`12`, `12.5`, `0.25`).
    package static func num(_ v: Double) -> String {
        guard v.isFinite else { return "0" }
        let r = (v * 100).rounded() / 100
        if r == r.rounded() { return String(Int64(r)) }
        var s = String(format: "%.2f", r)
        while s.hasSuffix("0") { s.removeLast() }
        return s
    }

    /// Bytes in binary units with up to two decimals: `4 GiB`, `1.5 GiB`, `512 MiB`, `4 KiB`, `100 B`.
    package static func bytes(_ v: Double) -> String {
        let units: [(Double, String)] = [(0x1p50, "PiB"), (0x1p40, "TiB"), (0x1p30, "GiB"), (0x1p20, "MiB"), (0x1p10, "KiB")]
        let a = abs(v)
        for (u, name) in units where a >= u { return trimmed(v / u) + " " + name }
        return v == 0 ? "0" : trimmed(v) + " B"
    }

    package static func bytes(_ v: UInt64) -> String { bytes(Double(v)) }

    /// Seconds in the unit that reads best: `1.25 s`, `12.5 ms`, `3 µs`, `120 ns`.
    package static func seconds(_ v: Double) -> String {
        let a = abs(v)
        if a == 0 { return "0 s" }
        if a >= 1 { return trimmed(v) + " s" }
        if a >= 1e-3 { return trimmed(v * 1e3) + " ms" }
        if a >= 1e-6 { return trimmed(v * 1e6) + " µs" }
        return trimmed(v * 1e9) + " ns"
    }

    /// A number with an SI suffix for axes: `300k`, `1.5M`, `12`.
    package static func si(_ v: Double) -> String {
        let a = abs(v)
        if a >= 1e9 { return trimmed(v / 1e9) + "G" }
        if a >= 1e6 { return trimmed(v / 1e6) + "M" }
        if a >= 1e4 { return trimmed(v / 1e3) + "k" }
        return trimmed(v)
    }

    /// A count with thousands separators: `1,234,567`.
    package static func count(_ v: UInt64) -> String {
        let s = String(v)
        var out = ""
        for (i, c) in s.enumerated() {
            if i > 0 && (s.count - i) % 3 == 0 { out += "," }
            out.append(c)
        }
        return out
    }

    /// At most three significant decimals, trailing zeros dropped (`4`, `1.5`, `2.25`, `0.123`).
    package static func trimmed(_ v: Double) -> String {
        guard v.isFinite else { return "0" }
        let digits = abs(v) >= 100 ? 0 : abs(v) >= 10 ? 1 : 2
        var s = String(format: "%.\(digits)f", v)
        if s.contains(".") {
            while s.hasSuffix("0") { s.removeLast() }
            if s.hasSuffix(".") { s.removeLast() }
        }
        return s == "-0" ? "0" : s
    }

    /// `0x0000000100000000-0x00000001ffffffff`: an inclusive address range as the kernel prints one.
    package static func addressRange(_ start: UInt64, _ end: UInt64) -> String {
        hex(start) + "-" + hex(end == 0 ? 0 : end - 1)
    }

    package static func hex(_ v: UInt64) -> String {
        let h = String(v, radix: 16)
        return "0x" + String(repeating: "0", count: max(0, 16 - h.count)) + h
    }
}

/// Round tick values for an axis: 1, 2 or 5 times a power of ten (or of 1024 for bytes).
package enum Ticks {
    /// About `target` ticks covering `[lo, hi]`.
    /// - Complexity: O(number of ticks).
    package static func linear(_ lo: Double, _ hi: Double, target: Int = 5, binary: Bool = false) -> [Double] {
        guard hi > lo, lo.isFinite, hi.isFinite else { return [lo] }
        let raw = (hi - lo) / Double(max(1, target))
        var step: Double
        if binary && raw >= 1024 {
            // Powers of 1024 times 1, 2, 4, 8... so ticks land on whole MiB/GiB/TiB.
            let unit = pow(1024, floor(log(raw) / log(1024)))
            var m = 1.0
            while unit * m < raw { m *= 2 }
            step = unit * m
        } else {
            let mag = pow(10, floor(log10(raw)))
            let f = raw / mag
            step = (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag
        }
        var out: [Double] = []
        var t = ceil(lo / step - 1e-9) * step
        while t <= hi + step * 1e-9 && out.count < 50 { out.append(t); t += step }
        return out
    }

    /// Powers of ten within `[lo, hi]` (both > 0).
    package static func log10Ticks(_ lo: Double, _ hi: Double) -> [Double] {
        guard lo > 0, hi > lo else { return [lo] }
        var out: [Double] = []
        var e = floor(log10(lo))
        while pow(10, e) <= hi * 1.000001 && out.count < 40 {
            if pow(10, e) >= lo * 0.999999 { out.append(pow(10, e)) }
            e += 1
        }
        return out
    }
}
