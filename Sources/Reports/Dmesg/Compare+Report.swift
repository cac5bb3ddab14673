import CoCoGuest
import Firmware
import Foundation
import GuestKernel
import MemoryModel
public import Simulation

/// `cocomem compare`: a real guest's log beside the model's, line by line.
public enum CompareReport {
    /// `/proc/meminfo` as `Key: value kB` pairs, in order; lines that are
    /// not of that form are skipped.
    public static func parseMeminfo(_ text: String) -> [(String, UInt64)] {
        var out: [(String, UInt64)] = []
        for l in text.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }) {
            guard let colon = l.firstIndex(of: ":") else { continue }
            let key = l[..<colon].trimmingCharacters(in: .whitespaces)
            let value = l[l.index(after: colon)...].split(separator: " ").first.flatMap { UInt64($0) }
            if let value, !key.isEmpty, !key.contains(" ") { out.append((key, value)) }
        }
        return out
    }

    static func kib(_ v: UInt64) -> String { "\(v)K" }
    static func diff(_ model: UInt64, _ real: UInt64, unit: String = "K") -> String {
        if model == real { return "same" }
        let d = Int64(bitPattern: model &- real)
        let pct = real == 0 ? "" : String(format: " (%+.1f%%)", Double(d) / Double(real) * 100)
        return "model \(d > 0 ? "+" : "")\(d)\(unit)\(pct)"
    }

    /// The comparison as text. - Complexity: O(lines of both logs).
    public static func text(path: String, log: DmesgLog, derived: DmesgLog.Derived, model r: BootResult, meminfo: String?) -> String {
        var out = "cocomem compare: \(path): \(log.linesRead) lines read, \(log.lines.count) recognised\n"
        out += "derived:\n" + derived.notes.map { "  \($0)\n" }.joined()
        if !derived.missing.isEmpty { out += "not in the log (model defaults used):\n" + derived.missing.map { "  \($0)\n" }.joined() }
        if !log.truncated.isEmpty {
            out += "lines cut short or unreadable (skipped):\n" + log.truncated.prefix(20).map { "  \($0)\n" }.joined()
            if log.truncated.count > 20 { out += "  ... \(log.truncated.count - 20) more\n" }
        }
        out += "model: \(r.scenario.platform.rawValue) \(ByteCount(r.scenario.memory)) \(r.scenario.vcpus) vCPUs, kernel \(r.scenario.kernel.version), accept_memory=\(r.scenario.lazy ? "lazy" : "eager"), outcome \(r.outcomeString)\n"

        var sections = KernelImageSections()
        if let s = log.memoryLine?.sections {
            sections.code = s.code; sections.rwdata = s.rwdata; sections.rodata = s.rodata; sections.initSize = s.initSize; sections.bss = s.bss
        }
        let modelLines = r.dmesg(sections: sections).map(\.text)

        /// Each real line beside the model's line for the same range (the
        /// one starting at the same address, else the one covering it).
        func pairs(_ title: String, model: [(AddressRange?, String)], real: [(AddressRange?, String)]) {
            guard !real.isEmpty else { out += "\n\(title): not in the log\n"; return }
            out += "\n\(title):\n"
            var same = 0, matched = Set<Int>()
            for (range, line) in real {
                let i = model.firstIndex { $0.1 == line }
                    ?? model.firstIndex { m in m.0 != nil && range != nil && m.0!.start == range!.start }
                    ?? model.firstIndex { m in m.0 != nil && range != nil && m.0!.start <= range!.start && range!.start < m.0!.end }
                if let i { matched.insert(i) }
                if let i, model[i].1 == line { same += 1; out += "  =     \(line)\n"; continue }
                out += "  real  \(line)\n  model \(i.map { model[$0].1 } ?? "(nothing at this address)")\n"
            }
            out += "  \(same) of \(real.count) lines in the log identical"
            out += model.count > matched.count ? "; \(model.count - matched.count) model lines with no counterpart in the log\n" : "\n"
        }
        pairs("BIOS-e820", model: r.e820Table.map { ($0.range, $0.line()) }, real: log.e820.map { ($0.range, $0.line()) })
        // Zones pair by name (the range is the name's, not an address to match).
        let zoneModel = modelLines.drop { $0 != "Zone ranges:" }.dropFirst().prefix { $0.hasPrefix("  ") }
        let zoneReal = log.zoneRanges.map { z in
            "  " + z.name.padding(toLength: 8, withPad: " ", startingAt: 0) + " " + (z.range.map { "[mem \(hex16($0.start))-\(hex16($0.end - 1))]" } ?? "empty")
        }
        let zoneKey = { (l: String) in AddressRange(start: UInt64(["DMA", "DMA32", "Normal", "Device"].firstIndex(of: String(l.split(separator: " ").first ?? "")) ?? 9), size: 1) }
        pairs("Zone ranges", model: zoneModel.map { (zoneKey($0), $0) }, real: zoneReal.map { (zoneKey($0), $0) })
        let node = { (r: AddressRange) in "  node   0: [mem \(hex16(r.start))-\(hex16(r.end - 1))]" }
        pairs("Early memory node ranges", model: r.memblockMemory.map { ($0, node($0)) }, real: log.nodeRanges.map { ($0, node($0)) })

        out += "\nnumbers:\n"
        func row(_ what: String, _ m: UInt64?, _ g: UInt64?, unit: String = "K") {
            guard let m, let g else {
                out += "  \(what.padding(toLength: 26, withPad: " ", startingAt: 0)) model \(m.map { "\($0)\(unit)" } ?? "-")  real \(g.map { "\($0)\(unit)" } ?? "not in the log")\n"
                return
            }
            out += "  \(what.padding(toLength: 26, withPad: " ", startingAt: 0)) model \(m)\(unit)  real \(g)\(unit)  \(diff(m, g, unit: unit))\n"
        }
        let memLine = modelLines.first { $0.hasPrefix("Memory: ") }.map { DmesgLog.read($0).memoryLine } ?? nil
        row("Memory: available", memLine?.available, log.memoryLine?.available)
        row("Memory: total", memLine?.total, log.memoryLine?.total)
        row("Memory: reserved", memLine?.reserved, log.memoryLine?.reserved)
        let swiotlbModel = r.kernel.map { $0.swiotlbBytes >> 20 }
        row("software IO TLB mapped", swiotlbModel, log.swiotlbMappedMB, unit: "MB")
        row("CPUs brought up", r.scenario.vcpus > 0 ? UInt64(r.scenario.vcpus) : nil, log.vcpus.map(UInt64.init), unit: "")

        if let meminfo, let k = r.kernel {
            out += "\n/proc/meminfo:\n"
            let model = Dictionary(parseMeminfo(k.procMeminfo), uniquingKeysWith: { a, _ in a })
            var shown = 0
            for (key, real) in parseMeminfo(meminfo) {
                guard let m = model[key] else { continue }
                shown += 1
                out += "  \((key + ":").padding(toLength: 18, withPad: " ", startingAt: 0)) model \(m) kB  real \(real) kB  \(diff(m, real, unit: " kB"))\n"
            }
            if shown == 0 { out += "  no line the model prints was in the file\n" }
        }
        return out
    }
}
