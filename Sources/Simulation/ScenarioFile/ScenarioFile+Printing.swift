import CoCoGuest
import CrashDump
import Firmware
import GuestKernel
import KVM
import MemoryModel
import TDXModule

extension ScenarioFile {
    /// A scenario file as a tree of keys and values in the file's schema:
    /// what `yaml` prints and what every JSON result embeds as
    /// `scenario_file` (Reports turns it into JSON).
    public indirect enum Value: Sendable, Equatable {
        case string(String)
        case int(UInt64)
        case bool(Bool)
        /// A string of several lines (a host step's commands).
        case text(String)
        case list([Value])
        case map([Entry])
    }

    public struct Entry: Sendable, Equatable {
        public var key: String
        public var value: Value
        init(_ key: String, _ value: Value) { self.key = key; self.value = value }
    }

    /// Every key, defaults included, so the file reruns the same run even
    /// if a default changes.
    public var tree: Value {
        let s = scenario
        var top: [Entry] = []
        if !boot { top.append(Entry("boot", .bool(false))) }
        if boot { top += guestTree }
        if let c = calibration { top.append(Entry("calibration", .string(c))) }
        if let p = calibrationProfile { top.append(Entry("calibration-profile", .string(p))) }
        if s.stepByStep { top.append(Entry("step-by-step", .bool(true))) }
        if !steps.isEmpty { top.append(Entry("steps", .list(steps.map { .map([Entry($0.kind, Self.tree(of: $0))]) }))) }
        return .map(top)
    }

    /// The guest's keys (left out with `boot: false`, where no guest runs).
    var guestTree: [Entry] {
        let s = scenario
        var top: [Entry] = []
        // `numa` and `sockets` are written only when set, so files printed before they existed read the same.
        top.append(Entry("guest", .map([Entry("platform", .string(s.platform.rawValue)), Entry("memory", .string(Self.size(s.memory))),
                                        Entry("vcpus", .int(UInt64(s.vcpus)))]
                                       + (s.numaNodeSizes.map { [Entry("numa", .list($0.map { .string(Self.size($0)) }))] } ?? [])
                                       + (s.sockets != 1 ? [Entry("sockets", .int(UInt64(s.sockets)))] : [])
                                       + (s.snpVMPL != 0 ? [Entry("vmpl", .int(UInt64(s.snpVMPL)))] : []))))
        // `uhp` and `hotplug-accept` are written only when set, so files printed before they existed read the same.
        top.append(Entry("firmware", .map([Entry("generation", .string(s.edk2Release?.tag ?? s.firmware.rawValue)),
                                           Entry("partial-accept", .string(Self.size(s.partialAcceptBytes))),
                                           Entry("acceptance-protocol", .bool(s.snpAcceptanceProtocol))]
                                          + (s.firmwareMarksUHP ? [Entry("uhp", .bool(true))] : [])
                                          + (s.softReservedBytes > 0 ? [Entry("soft-reserved", .string(Self.size(s.softReservedBytes)))] : [])
                                          + (s.retainSoftReserved ? [Entry("retain-soft-reserved", .bool(true))] : []))))
        top.append(Entry("kernel", .map([
            Entry("version", .string(s.kernel.version.rawValue)), Entry("accept", .string(s.lazy ? "lazy" : "eager")),
            Entry("deferred-init", .bool(s.kernel.deferredStructPageInit)),
            Entry("unaccepted-support", .bool(s.loader.kernelSupportsUnaccepted)),
            Entry("loader", .string(s.loader.loaderCallsExitBootServices ? "grub-ebs" : "efistub")),
            Entry("acceptance-protocol-call", .bool(s.loader.stubCallsAcceptanceProtocol)),
            Entry("crashkernel", .string(Self.size(s.kernel.crashKernelBytes))),
            Entry("boot-alloc", .string(Self.size(s.bootAllocationBytes))),
            Entry("init-size", .string(Self.size(s.kernel.kernelInitBytes))),
            Entry("transparent-hugepage", .string(s.kernel.transparentHugepage.rawValue)),
        ] + (s.kernel.minFreeKbytes.map { [Entry("min-free-kbytes", .int($0))] } ?? [])
          + (s.kernel.watermarkScaleFactor.map { [Entry("watermark-scale-factor", .int($0))] } ?? [])
          + (s.kernel.hotplugAcceptance != .mainline ? [Entry("hotplug-accept", .string(s.kernel.hotplugAcceptance.rawValue))] : [])
          + (s.kernel.swiotlbShared ? [Entry("swiotlb-shared", .bool(true))] : [])
          + (s.kernel.earlyDecrypted ? [Entry("early-decrypted", .bool(true))] : [])
          + (s.kernel.earlyTickHz != 0 ? [Entry("early-tick", .int(s.kernel.earlyTickHz))] : [])
          + (s.kernel.swiotlbParameter.map { [Entry("swiotlb", .string($0.text))] } ?? [])
          + (s.kernel.efiDebug ? [Entry("efi-debug", .bool(true))] : [])
          + (s.kernel.idlePoll ? [Entry("idle-poll", .bool(true))] : [])
          + (s.kernel.workloadActors ? [Entry("workload-actors", .bool(true))] : []))))
        var host = [Entry("kind", .string(s.snpHost ? "snp" : s.tdxHost.rawValue))]
        if let g = s.gmemBacking { host.append(Entry("gmem", .string(g.rawValue))) }
        host += [Entry("mapping", .string(s.hostMapping.rawValue)), Entry("snp-prefault", .bool(s.snpPrefault))]
        // Forward-looking, printed only when on, so other printed scenarios are unchanged.
        if s.tdxModule1G { host.append(Entry("tdx-module-1g", .bool(true))) }
        if s.snpCoherencySfwNo { host.append(Entry("snp-coherency-sfw-no", .bool(true))) }
        // The TDX host's DPAMT series, address width and allocator placement: printed only when given.
        if let d = s.dpamtSeries { host.append(Entry("dpamt", .string(d.rawValue))) }
        if let b = s.hostPhysBits { host.append(Entry("host-phys-bits", .int(UInt64(b)))) }
        if let p = s.hostPlacement { host.append(Entry("host-placement", .string(p.rawValue))) }
        if let n = s.hostIsolatedFreePages { host.append(Entry("host-free-4k", .int(n))) }
        top.append(Entry("host", .map(host)))
        top.append(Entry("workload", .list(Self.phases(s.workload).map { .string(Self.workload($0)) })))
        top.append(Entry("seed", .int(s.seed)))
        return top
    }

    static func tree(of step: Step) -> Value {
        switch step {
        case .kexec(let k):
            // `from` and `workload` are written only when set, so files printed before they existed read the same.
            var e = k.continues ? [Entry("from", .string("previous"))] : []
            e += [Entry("syscall", .string(k.syscall.rawValue)), Entry("crash", .bool(k.crash)),
                     Entry("initrd", .string(size(k.initrdBytes))), Entry("kernel-size", .string(size(k.kernelFileBytes))),
                     Entry("kernel-alignment", .string(size(k.kernelAlignment))), Entry("cmdline-len", .int(k.cmdlineBytes))]
            if let n = k.nextKernel { e.append(Entry("next-kernel", .string(n.rawValue))) }
            e.append(Entry("load-only", .bool(k.loadOnly)))
            if k.workload != .none { e.append(Entry("workload", .list(phases(k.workload).map { .string(workload($0)) }))) }
            return .map(e)
        case .dump(let d):
            var e = d.continues ? [Entry("from", .string("previous"))] : []
            e += [Entry("level", .int(UInt64(d.level))), Entry("compression", .string(d.compression.name)),
                     Entry("elf-dump", .bool(d.elfDump)), Entry("makedumpfile", .string(d.makedumpfile.rawValue))]
            if let t = d.threads { e.append(Entry("num-threads", .int(UInt64(t)))) }
            e.append(Entry("estimate", .bool(d.estimate)))
            if let n = d.sample { e.append(Entry("sample", .int(UInt64(n)))) }
            e += [Entry("mem-usage", .bool(d.memUsage)), Entry("thp", .string(d.thp ? "always" : "never")),
                  Entry("vmcoreinfo", .bool(d.vmcoreinfo))]
            // Written only when set, so files printed before the key existed read the same.
            if d.force { e.append(Entry("force", .bool(true))) }
            if d.slubOrder != 0 { e.append(Entry("slub-order", .int(d.slubOrder))) }
            if let p = d.elf { e.append(Entry("elf", .string(p))) }
            if let p = d.output { e.append(Entry("output", .string(p))) }
            if let p = d.input { e.append(Entry("input", .string(p))) }
            return .map(e)
        case .host(let h):
            var e: [Entry] = []
            if let c = h.commands { e.append(Entry("commands", .text(c))) }
            e.append(Entry("log", .bool(h.log)))
            if let p = h.precheck { e.append(Entry("precheck", .bool(p))) }
            if let a = h.acceptLevel { e.append(Entry("accept-level", .string(a.rawValue))) }
            if let p = h.policy { e.append(Entry("policy", .string(p.rawValue))) }
            e.append(Entry("check-invariants", .bool(h.checkInvariants)))
            // Written only when set, so files printed before the key existed read the same.
            if let p = h.hostTrace { e.append(Entry("host-trace", .string(p))) }
            return .map(e)
        }
    }

    /// A size as the flags write it: the largest binary suffix that divides
    /// it exactly (`64G`, `1536M`), bytes otherwise.
    static func size(_ v: UInt64) -> String {
        if v == 0 { return "0" }
        for (shift, suffix) in [(60, "E"), (50, "P"), (40, "T"), (30, "G"), (20, "M"), (10, "K")] where v % (1 << UInt64(shift)) == 0 {
            return "\(v >> UInt64(shift))\(suffix)"
        }
        return String(v)
    }

    /// The phases of a workload, in order (none: no phase).
    static func phases(_ w: Workload) -> [Workload] {
        switch w {
        case .none: []
        case .phases(let ps): ps.flatMap(phases)
        default: [w]
        }
    }

    /// A workload as a report names it: its phases in `--workload`'s
    /// syntax, joined with " then ".
    public static func workloadText(_ w: Workload) -> String { workload(w) }

    /// A workload in `--workload`'s syntax.
    static func workload(_ w: Workload) -> String {
        switch w {
        case .none: "none"
        case .touch(let b): "touch=\(size(b))"
        case .pageCache(let b): "pagecache=\(size(b))"
        case .hugetlb(let b): "hugetlb=\(size(b))"
        case .rate(let b, let s): "rate=\(size(b)):\(s)"
        case .phases(let ps): ps.map(workload).joined(separator: " then ")
        case .hotplug(let b, let k): "hotplug=\(size(b)):\(k.rawValue)"
        case .unplug(let b, let k): "unplug=\(size(b)):\(k.rawValue)"
        case .onNode(let n, let w): workload(w) + "@\(n)"
        }
    }

    /// The file as YAML, with a first comment line.
    public var yaml: String { yaml(from: nil) }

    /// The file as YAML, with a first comment line and, when given, a
    /// second one saying where it came from (the command line it equals).
    public func yaml(from origin: String?) -> String {
        var o = "# cocomem scenario: run with `cocomem run FILE` (docs/SCENARIOS.md)\n"
        if let origin { o += "# from: " + origin.split(whereSeparator: \.isNewline).joined(separator: " ") + "\n" }
        guard case .map(let entries) = tree else { return o }
        Self.emit(entries, indent: 0, into: &o)
        return o
    }

    static func emit(_ entries: [Entry], indent: Int, into o: inout String) {
        let pad = String(repeating: " ", count: indent)
        for e in entries {
            o += pad + e.key + ":"
            emitValue(e.value, indent: indent, into: &o)
        }
    }

    /// Writes what follows `key:` (the value inline, or nested below).
    static func emitValue(_ v: Value, indent: Int, into o: inout String) {
        let pad = String(repeating: " ", count: indent)
        switch v {
        case .string(let s): o += " " + scalar(s) + "\n"
        case .int(let i): o += " \(i)\n"
        case .bool(let b): o += b ? " true\n" : " false\n"
        case .text(let t): o += " " + block(t, indent: indent + 2)
        case .map(let es):
            if es.isEmpty { o += " {}\n"; return }
            o += "\n"
            emit(es, indent: indent + 2, into: &o)
        case .list(let items):
            if items.isEmpty { o += " []\n"; return }
            o += "\n"
            for item in items {
                switch item {
                case .map(let es) where !es.isEmpty:
                    // "- key:" then the rest of the mapping under it.
                    o += pad + "  - " + es[0].key + ":"
                    emitValue(es[0].value, indent: indent + 4, into: &o)
                    emit(Array(es.dropFirst()), indent: indent + 4, into: &o)
                default:
                    o += pad + "  -"
                    emitValue(item, indent: indent + 2, into: &o)
                }
            }
        }
    }

    /// A literal block scalar (`|`), keeping the text's lines exactly.
    static func block(_ t: String, indent: Int) -> String {
        let pad = String(repeating: " ", count: indent)
        var lines = t.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let chomp: String
        if t.hasSuffix("\n") {
            lines.removeLast()
            chomp = lines.last == "" ? "+" : ""
        } else {
            chomp = "-"
        }
        let lead = lines.first(where: { !$0.isEmpty }).map { $0.hasPrefix(" ") || $0.hasPrefix("\t") } ?? false
        var o = "|" + (lead ? "2" : "") + chomp + "\n"
        for l in lines { o += (l.isEmpty ? "" : pad + l) + "\n" }
        return o
    }

    /// A string plain when YAML reads it back as the same string, quoted otherwise.
    static func scalar(_ s: String) -> String {
        let plain = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./=+:-")
        let words: Set<String> = ["true", "false", "yes", "no", "on", "off", "y", "n", "null", "~", "True", "False", "TRUE", "FALSE",
                                  "Yes", "No", "On", "Off", "Null", "NULL"]
        let numeric = s.allSatisfy { "0123456789._+-".contains($0) } || s.hasPrefix("0x") || s.hasPrefix("0o")
        if !s.isEmpty, s.allSatisfy({ plain.contains($0) }), !words.contains(s), !numeric,
           let f = s.first, f.isLetter || f.isNumber, !s.contains(": "), !s.hasSuffix(":") {
            return s
        }
        var r = "\""
        for c in s.unicodeScalars {
            switch c {
            case "\"": r += "\\\""
            case "\\": r += "\\\\"
            case "\n": r += "\\n"
            case "\t": r += "\\t"
            default:
                if c.value < 0x20 { r += "\\x" + (c.value < 16 ? "0" : "") + String(c.value, radix: 16) } else { r.unicodeScalars.append(c) }
            }
        }
        return r + "\""
    }
}
