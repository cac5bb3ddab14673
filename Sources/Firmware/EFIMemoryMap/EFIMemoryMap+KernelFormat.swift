import Foundation
import MemoryModel

extension EFIMemoryDescriptor {
    /// `efi_md_typeattr_format()`. `hotPluggableColumn` selects the newer
    /// layout with an `HP` column after `RUN` (added with
    /// EFI_MEMORY_HOT_PLUGGABLE support); the default is the older layout
    /// the issue's example shows.
    ///
    /// An attribute with a bit the layout has no column for (any bit above
    /// the named ones, or `HOT_PLUGGABLE` in the older layout) is printed
    /// whole instead, as the kernel does: `[Type|attr=0x%016llx]`. Printing
    /// only the named columns lost the other bits (the memmap fuzzer found
    /// an `HP` map that read back without it).
    public func typeAttrString(hotPluggableColumn: Bool = false) -> String {
        let name = type.name.padding(toLength: 12, withPad: " ", startingAt: 0)
        let a = attribute
        var named: EFIMemoryAttributes = [.uc, .wc, .wt, .wb, .uce, .ro, .wp, .rp, .xp, .nv, .sp, .cpuCrypto, .moreReliable, .runtime]
        if hotPluggableColumn { named.insert(.hotPluggable) }
        guard a.isSubset(of: named) else {
            let hex = String(a.rawValue, radix: 16)
            return "[\(name)|attr=0x\(String(repeating: "0", count: 16 - hex.count))\(hex)]"
        }
        func f(_ bit: EFIMemoryAttributes, _ s: String, _ w: Int) -> String {
            let v = a.contains(bit) ? s : ""
            return String(repeating: " ", count: max(0, w - v.count)) + v
        }
        var cols = [f(.runtime, "RUN", 3)]
        if hotPluggableColumn { cols.append(f(.hotPluggable, "HP", 2)) }
        cols += [f(.moreReliable, "MR", 2), f(.cpuCrypto, "CC", 2), f(.sp, "SP", 2), f(.nv, "NV", 2),
                 f(.xp, "XP", 2), f(.rp, "RP", 2), f(.wp, "WP", 2), f(.ro, "RO", 2), f(.uce, "UCE", 3),
                 f(.wb, "WB", 2), f(.wt, "WT", 2), f(.wc, "WC", 2), f(.uc, "UC", 2)]
        return "[\(name)|" + cols.joined(separator: "|") + "]"
    }
}

extension EFIMemoryMap {
    /// The map as `efi_print_memmap()` prints it with `efi=debug`, one line
    /// per descriptor: `efi: mem07: [Unaccepted  |   |...] range=[0x...-0x...] (62464MB)`.
    public func kernelFormat(hotPluggableColumn: Bool = false) -> String {
        var out = ""
        for (i, d) in descriptors.enumerated() {
            let idx = i < 10 ? "0\(i)" : "\(i)"
            out += "efi: mem\(idx): \(d.typeAttrString(hotPluggableColumn: hotPluggableColumn)) "
            out += "range=[\(hex16(d.physicalStart))-\(hex16(d.end - 1))] (\(d.bytes.value >> 20)MB)\n"
        }
        return out
    }

    /// Parses a map in the kernel's print format. Lines may carry a dmesg
    /// timestamp and the `efi: ` prefix; blank lines and `#` comments are
    /// skipped. Both attribute layouts (with and without `HP`) are accepted.
    ///
    /// - Throws: `.invalidMemoryMap` naming the line number and the problem.
    public static func parseKernelFormat(_ text: String) throws -> EFIMemoryMap {
        var ds: [EFIMemoryDescriptor] = []
        for (n, raw) in text.splitLines().enumerated() {
            let line = raw.trimmingCharacters(in: " \t\r")
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard ds.count < maximumDescriptors else { throw tooManyDescriptors(line: n + 1) }
            ds.append(try parseLine(line, number: n + 1))
        }
        guard !ds.isEmpty else { throw CocomemError(.invalidMemoryMap, "memory map has no entries") }
        return try EFIMemoryMap(ds)
    }

    static func parseLine(_ line: Substring, number n: Int) throws -> EFIMemoryDescriptor {
        func bad(_ why: String) -> CocomemError {
            CocomemError(.invalidMemoryMap, "memory map line \(n): \(why): '\(line)'")
        }
        guard let open = line.firstIndex(of: "["), let memRange = line.range(of: "mem"), memRange.lowerBound < open || line.hasPrefix("[")
        else { throw bad("expected 'memNN: [Type|attrs] range=[start-end]'") }
        // Skip a leading dmesg timestamp "[    0.000000] " if present.
        var rest = line[...]
        if rest.hasPrefix("["), let close = rest.firstIndex(of: "]"), rest[rest.index(after: rest.startIndex)..<close]
            .allSatisfy({ $0 == " " || $0 == "." || $0.isNumber }) {
            rest = rest[rest.index(after: close)...]
        }
        guard let lb = rest.firstIndex(of: "["), let rb = rest[lb...].firstIndex(of: "]") else {
            throw bad("missing [type|attributes]")
        }
        let fields = rest[rest.index(after: lb)..<rb].split(separator: "|", omittingEmptySubsequences: false)
        let typeName = fields.first.map { $0.trimmingCharacters(in: " ") } ?? ""
        let type: EFIMemoryType
        if let t = EFIMemoryType(name: String(typeName)) { type = t }
        else if typeName.hasPrefix("type="), let v = UInt32(typeName.dropFirst(5)), let t = EFIMemoryType(rawValue: v) { type = t }
        else { throw bad("unknown memory type '\(typeName)'") }
        var attr = EFIMemoryAttributes()
        let names: [String: EFIMemoryAttributes] = [
            "RUN": .runtime, "HP": .hotPluggable, "MR": .moreReliable, "CC": .cpuCrypto, "SP": .sp, "NV": .nv,
            "XP": .xp, "RP": .rp, "WP": .wp, "RO": .ro, "UCE": .uce, "WB": .wb, "WT": .wt, "WC": .wc, "UC": .uc,
        ]
        for f in fields.dropFirst() {
            let s = f.trimmingCharacters(in: " ")
            if s.isEmpty { continue }
            if s.hasPrefix("attr="), let v = parseInteger(s.dropFirst(5)[...]) { attr = EFIMemoryAttributes(rawValue: v); continue }
            guard let bit = names[String(s)] else { throw bad("unknown attribute '\(s)'") }
            attr.insert(bit)
        }
        guard let rr = rest[rb...].range(of: "range=[") else { throw bad("missing range=[start-end]") }
        let after = rest[rr.upperBound...]
        guard let close = after.firstIndex(of: "]") else { throw bad("unterminated range") }
        let parts = after[..<close].split(separator: "-")
        guard parts.count == 2, let s = parseInteger(parts[0]), let e = parseInteger(parts[1]) else {
            throw bad("range is not two hex addresses")
        }
        guard e >= s else { throw bad("range end before start") }
        guard e < maximumAddress else { throw bad("range ends at or above \(hex16(maximumAddress)), the highest address a map may describe") }
        guard s % 4096 == 0, (e + 1) % 4096 == 0 else { throw bad("range is not 4 KiB aligned") }
        return EFIMemoryDescriptor(type: type, start: s, end: e + 1, attribute: attr)
    }
}

extension StringProtocol {
    func trimmingCharacters(in set: String) -> Substring {
        var s = self[...]
        while let f = s.first, set.contains(f) { s = s.dropFirst() }
        while let l = s.last, set.contains(l) { s = s.dropLast() }
        return Substring(s)
    }
}
