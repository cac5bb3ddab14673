/// A JSON value with ordered object keys, serialised deterministically.
public indirect enum JSON: Sendable, Equatable {
    case int(Int64)
    case uint(UInt64)
    case double(Double)
    case string(String)
    case bool(Bool)
    case null
    case array([JSON])
    case object([(String, JSON)])

    public static func == (a: JSON, b: JSON) -> Bool { a.serialized() == b.serialized() }

    /// Compact or pretty (two-space) serialisation.
    public func serialized(pretty: Bool = true) -> String {
        var out = ""
        write(&out, indent: pretty ? 0 : -1)
        return out
    }

    func write(_ out: inout String, indent: Int) {
        let nl = indent >= 0 ? "\n" : ""
        let pad = indent >= 0 ? String(repeating: "  ", count: indent + 1) : ""
        let padEnd = indent >= 0 ? String(repeating: "  ", count: indent) : ""
        let next = indent >= 0 ? indent + 1 : -1
        switch self {
        case .int(let v): out += String(v)
        case .uint(let v): out += String(v)
        case .double(let v):
            if v.isFinite { out += format6(v) }
            else { out += "null" }
        case .string(let s): out += quote(s)
        case .bool(let b): out += b ? "true" : "false"
        case .null: out += "null"
        case .array(let xs):
            if xs.isEmpty { out += "[]"; return }
            out += "[" + nl
            for (i, x) in xs.enumerated() {
                out += pad; x.write(&out, indent: next)
                out += (i + 1 < xs.count ? "," : "") + nl
            }
            out += padEnd + "]"
        case .object(let kv):
            if kv.isEmpty { out += "{}"; return }
            out += "{" + nl
            for (i, (k, v)) in kv.enumerated() {
                out += pad + quote(k) + (indent >= 0 ? ": " : ":")
                v.write(&out, indent: next)
                out += (i + 1 < kv.count ? "," : "") + nl
            }
            out += padEnd + "}"
        }
    }

    func quote(_ s: String) -> String {
        var r = "\""
        for c in s.unicodeScalars {
            switch c {
            case "\"": r += "\\\""
            case "\\": r += "\\\\"
            case "\n": r += "\\n"
            case "\t": r += "\\t"
            default:
                if c.value < 0x20 { r += "\\u" + String(repeating: "0", count: 4 - String(c.value, radix: 16).count) + String(c.value, radix: 16) }
                else { r.unicodeScalars.append(c) }
            }
        }
        return r + "\""
    }
}

/// Six significant decimals, deterministic across platforms.
func format6(_ v: Double) -> String {
    let scaled = (v * 1_000_000).rounded()
    let neg = scaled < 0
    let a = UInt64(abs(scaled))
    let frac = a % 1_000_000
    var f = String(frac)
    f = String(repeating: "0", count: 6 - f.count) + f
    while f.hasSuffix("0") { f.removeLast() }
    return (neg ? "-" : "") + String(a / 1_000_000) + (f.isEmpty ? "" : "." + f)
}
