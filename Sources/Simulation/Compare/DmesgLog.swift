public import CoCoGuest
public import Firmware
import Foundation
import GuestKernel
public import MemoryModel

/// A real guest's `dmesg` as users paste it: partial and messy. Each line
/// may carry CR line ends, a journalctl or syslog prefix (`... kernel: `,
/// `<6>`), a printk time stamp or none, a caller id (`[    T0]`), or be cut
/// short. `read()` keeps what it recognises and counts what it skipped; a
/// line it recognises but cannot read whole is listed in `truncated`.
public struct DmesgLog: Sendable {
    /// The largest log read: 64 MiB (a boot log is tens of KiB; journalctl
    /// exports of a long-running guest reach a few MiB).
    public static let maximumBytes = 64 << 20

    /// One recognised line: its time stamp, if it had one, and its text.
    public struct Line: Sendable, Equatable {
        public var seconds: Double?
        public var text: String
    }

    public var lines: [Line] = []
    public var linesRead = 0
    /// Lines that started like a known line but could not be read whole.
    public var truncated: [String] = []

    public var kernelRelease: String?
    public var commandLine: String?
    public var platform: PlatformKind?
    public var platformEvidence: String?
    public var e820: [E820Entry] = []
    public var efiMap: [String] = []
    public var vcpus: Int?
    public var memoryLine: MemoryLine?
    public var swiotlbMappedMB: UInt64?
    public var zoneRanges: [(name: String, range: AddressRange?)] = []
    public var nodeRanges: [AddressRange] = []

    /// `mem_init_print_info()`'s numbers, in KiB.
    public struct MemoryLine: Sendable, Equatable {
        public var available: UInt64, total: UInt64
        public var sections = KernelImageSectionsKiB()
        public var reserved: UInt64?
    }
    /// The kernel image's sections from the `Memory:` line, in KiB.
    public struct KernelImageSectionsKiB: Sendable, Equatable {
        public var code: UInt64 = 0, rwdata: UInt64 = 0, rodata: UInt64 = 0, initSize: UInt64 = 0, bss: UInt64 = 0
    }

    /// Reads `text`. Never throws on content: what it cannot read it skips
    /// and counts. - Complexity: O(length of `text`).
    public static func read(_ text: String) -> DmesgLog {
        var log = DmesgLog()
        // "\r\n" is one Character in Swift: split on it as on "\n" and "\r".
        for raw in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }) {
            log.linesRead += 1
            let (seconds, body) = Self.strip(raw)
            guard !body.isEmpty else { continue }
            if log.recognise(body) { log.lines.append(Line(seconds: seconds, text: String(body))) }
        }
        return log
    }

    /// Takes off CR, a journalctl/syslog prefix, `<N>`, the time stamp and a caller id.
    static func strip(_ raw: Substring) -> (Double?, Substring) {
        var s = raw
        while s.last == "\r" || s.last == " " { s = s.dropLast() }
        if let k = s.range(of: " kernel: ") { s = s[k.upperBound...] }
        var seconds: Double? = nil
        // The first "[ <digits>.<digits>]" is the printk stamp (kernelci and
        // serial captures put their own columns before it).
        if let open = s.firstIndex(of: "["), let close = s[open...].firstIndex(of: "]") {
            let inside = s[s.index(after: open)..<close].trimmingCharacters(in: .whitespaces)
            let before = s[..<open]
            if let v = Double(inside), inside.contains("."), inside.allSatisfy({ $0.isNumber || $0 == "." }),
               before.allSatisfy({ $0.isNumber || $0 == " " || $0 == "<" || $0 == ">" || $0 == ":" || $0 == "." || $0 == "\t" }) {
                seconds = v
                s = s[s.index(after: close)...]
            }
        }
        if seconds == nil, s.hasPrefix("<"), let close = s.firstIndex(of: ">"), s[s.index(after: s.startIndex)..<close].allSatisfy(\.isNumber) {
            s = s[s.index(after: close)...]
        }
        // printk writes one space after the stamp; the rest is the line's own indent.
        if seconds != nil, s.first == " " { s = s.dropFirst() }
        // printk caller id: "[    T0] " / "[  C12] ".
        if s.hasPrefix("["), let close = s.firstIndex(of: "]") {
            let id = s[s.index(after: s.startIndex)..<close].trimmingCharacters(in: .whitespaces)
            if let f = id.first, f == "T" || f == "C", id.dropFirst().allSatisfy(\.isNumber), id.count > 1 {
                s = s[s.index(after: close)...].drop(while: { $0 == " " })
            }
        }
        return (seconds, s)
    }

    /// Reads one line's content; true when it is one `compare` uses.
    mutating func recognise(_ l: Substring) -> Bool {
        func hexPair(_ t: Substring) -> AddressRange? {
            // "[mem 0xSTART-0xEND]"
            guard let a = t.range(of: "[mem "), let close = t[a.upperBound...].firstIndex(of: "]") else { return nil }
            let parts = t[a.upperBound..<close].split(separator: "-")
            guard parts.count == 2, let s = parseInteger(parts[0]), let e = parseInteger(parts[1]), e >= s, e < UInt64.max else { return nil }
            return AddressRange(start: s, end: e + 1)
        }
        if l.hasPrefix("Linux version ") {
            kernelRelease = l.dropFirst("Linux version ".count).split(separator: " ").first.map(String.init)
            if kernelRelease == nil { truncated.append(String(l)) }
            return kernelRelease != nil
        }
        if l.hasPrefix("Command line: ") { commandLine = String(l.dropFirst("Command line: ".count)); return true }
        if l.hasPrefix("tdx: Guest detected") { platform = .tdx; platformEvidence = String(l); return true }
        if l.hasPrefix("Memory Encryption Features active:") {
            if l.contains("Intel TDX") { platform = .tdx } else if l.contains("SEV-SNP") { platform = .snp }
            else { truncated.append(String(l)); return false }
            platformEvidence = String(l)
            return true
        }
        if l.hasPrefix("BIOS-e820: ") {
            let typeText = l.drop(while: { $0 != "]" }).dropFirst().drop(while: { $0 == " " })
            guard let r = hexPair(l), let t = E820Type(printName: typeText) else { truncated.append(String(l)); return false }
            e820.append(E820Entry(range: r, type: t))
            return true
        }
        if l.hasPrefix("efi: mem"), l.contains("range=[") {
            guard l.hasSuffix("B)") else { truncated.append(String(l)); return false }
            efiMap.append(String(l))
            return true
        }
        if l.hasPrefix("smp: Brought up ") {
            let w = l.split(separator: " ")
            guard w.count >= 7, let n = Int(w[5]), n > 0 else { truncated.append(String(l)); return false }
            vcpus = n
            return true
        }
        if l.hasPrefix("smpboot: Allowing ") {
            guard let n = Int(l.split(separator: " ")[2]), n > 0 else { truncated.append(String(l)); return false }
            if vcpus == nil { vcpus = n }
            return true
        }
        if l.hasPrefix("Memory: "), l.contains("available") {
            let nums = l.split(whereSeparator: { !$0.isNumber && $0 != "K" }).filter { $0.hasSuffix("K") }.compactMap { UInt64($0.dropLast()) }
            guard nums.count >= 2 else { truncated.append(String(l)); return false }
            var m = MemoryLine(available: nums[0], total: nums[1])
            if nums.count >= 8 {
                m.sections = KernelImageSectionsKiB(code: nums[2], rwdata: nums[3], rodata: nums[4], initSize: nums[5], bss: nums[6])
                m.reserved = nums[7]
            } else { truncated.append(String(l)) }
            memoryLine = m
            return true
        }
        if l.hasPrefix("software IO TLB: mapped ") {
            guard let open = l.lastIndex(of: "("), let mb = UInt64(l[l.index(after: open)...].prefix(while: \.isNumber)) else {
                truncated.append(String(l)); return false
            }
            swiotlbMappedMB = mb
            return true
        }
        if l.hasPrefix("  "), !l.hasPrefix("  node") {
            let name = l.drop(while: { $0 == " " }).prefix(while: { $0 != " " })
            if ["DMA", "DMA32", "Normal", "Device"].contains(name) {
                if l.hasSuffix("empty") { zoneRanges.append((String(name), nil)); return true }
                guard let r = hexPair(l) else { truncated.append(String(l)); return false }
                zoneRanges.append((String(name), r))
                return true
            }
        }
        if l.hasPrefix("  node ") {
            guard let r = hexPair(l) else { truncated.append(String(l)); return false }
            nodeRanges.append(r)
            return true
        }
        return false
    }
}

extension DmesgLog {
    /// What `compare` could derive from the log and how.
    public struct Derived: Sendable {
        public var scenario = Scenario()
        /// One line per derived setting: what, and from which lines.
        public var notes: [String] = []
        /// What the log did not say, and the model's default used instead.
        public var missing: [String] = []
    }

    /// The RAM ranges the log shows: e820 usable, else the node ranges.
    var ramRanges: [AddressRange] {
        e820.filter { $0.type == .ram }.map(\.range) + nodeRanges + zoneRanges.filter { $0.name != "Device" }.compactMap(\.range)
    }

    /// The q35 guest size whose layout (`Q35Layout`: RAM below 2 GiB, or
    /// all of it below 0xB0000000, the rest from 4 GiB) ends where the
    /// log's RAM ends: `end - 4G + 2G` with RAM above 4 GiB, else the end
    /// of low RAM rounded up to 2 MiB (firmware reservations at the top of
    /// low RAM are still guest memory).
    public var guestMemoryBytes: UInt64? {
        guard let end = ramRanges.map(\.end).max() else { return nil }
        // The model takes whole 4 KiB pages; a log's byte-granular end rounds up to one.
        if end > 1 << 32 { return alignUp(end - (1 << 32) + (2 << 30), 4096) }
        let lowEnd = max(end, e820.filter { $0.range.end <= 0xB000_0000 && $0.type != .reserved }.map(\.range.end).max() ?? 0)
        return alignUp(lowEnd, 2 << 20)
    }

    /// The scenario the model runs for this log.
    public func derive() -> Derived {
        var d = Derived()
        if let p = platform {
            d.scenario.platform = p
            if p == .snp { d.scenario.firmware = .ovmfSNP }
            d.notes.append("platform \(p.rawValue) (from \"\(platformEvidence ?? "")\")")
        } else {
            d.missing.append("platform: no 'tdx: Guest detected' or 'Memory Encryption Features active' line; the model's default tdx")
        }
        if let m = guestMemoryBytes, m >= Q35Layout.minimumMemory, m <= ByteCount.maximumGuestSize.value {
            d.scenario.memory = m
            d.notes.append("memory \(ByteCount(m)) (from the highest RAM address in the e820, zone and node lines, q35 layout)")
        } else {
            d.missing.append("memory layout: no usable BIOS-e820 or node-range lines; the model's default \(ByteCount(d.scenario.memory))")
        }
        if let v = vcpus, v > Scenario.maximumVCPUs {
            d.missing.append("vCPUs: the log's \(v) is more than the model's \(Scenario.maximumVCPUs); the model's default \(d.scenario.vcpus)")
        } else if let v = vcpus {
            d.scenario.vcpus = v
            d.notes.append("vCPUs \(v) (from the smp lines)")
        } else {
            d.missing.append("vCPUs: no 'smp: Brought up' or 'smpboot: Allowing' line; the model's default \(d.scenario.vcpus)")
        }
        if let r = kernelRelease {
            // "6.8.0-1028-intel" -> 6.8.0; "6.6.0-rc2" -> 6.6.
            let numeric = r.prefix { $0.isNumber || $0 == "." }
            let parts = numeric.split(separator: ".").prefix(3).map(String.init)
            let candidates = [parts.joined(separator: "."), parts.prefix(2).joined(separator: ".")]
            if let v = candidates.lazy.compactMap({ try? KernelVersion(parsing: $0) }).first {
                d.scenario.kernel.version = v
                d.notes.append("kernel \(v) (from 'Linux version \(r)')")
            } else {
                d.missing.append("kernel: 'Linux version \(r)' is not in the version table (6.5 to 7.1); the model's default \(d.scenario.kernel.version)")
            }
        } else {
            d.missing.append("kernel version: no 'Linux version' line; the model's default \(d.scenario.kernel.version)")
        }
        if let c = commandLine {
            let words = c.split(separator: " ")
            if words.contains("accept_memory=eager") { d.scenario.lazy = false }
            d.notes.append("command line \"\(c)\": accept_memory=\(d.scenario.lazy ? "lazy" : "eager")")
            if let ck = words.first(where: { $0.hasPrefix("crashkernel=") }), let b = try? ByteCount.parse(String(ck.dropFirst("crashkernel=".count))) {
                d.scenario.kernel.crashKernelBytes = b.value
                d.notes.append("crashkernel=\(ByteCount(b.value))")
            }
        } else {
            d.missing.append("command line: no 'Command line:' line; accept_memory=lazy")
        }
        return d
    }
}
