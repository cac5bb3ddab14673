import CoCoGuest
import CrashDump
import Firmware
import Foundation
import GuestKernel
import KVM
import MemoryModel
import TDXModule
package import Yams

extension ScenarioFile {
    /// Reads a scenario file: YAML, or JSON (a YAML subset) in the same
    /// schema. A JSON result of any command is accepted too: its
    /// `scenario_file` object is read. CRLF line endings work. Every
    /// problem is one `CocomemError(.invalidScenario)` naming `name`, the
    /// line and the key: unknown keys list the expected ones, enums their
    /// values.
    public static func parse(_ text: String, name: String = "scenario") throws -> ScenarioFile {
        let normalized = text.replacingOccurrences(of: "\r\n", with: "\n")
        let root: Node?
        try YAMLKeyGuard.check(normalized, name: name)
        do {
            root = try Yams.compose(yaml: normalized)
        } catch let e as YamlError {
            throw CocomemError(.invalidScenario, "\(name) \(describe(e))")
        }
        guard var node = root else {
            throw CocomemError(.invalidScenario, "\(name): the file is empty (expected a mapping with keys \(Reader.topKeys.joined(separator: ", ")))")
        }
        if let m = node.mapping, let inner = m["scenario_file"] { node = inner }
        return try Reader(name: name).file(node)
    }

    /// Reads an already composed YAML node tree (a sweep's expanded point,
    /// whose nodes keep the marks of the sweep file's lines, so every error
    /// names the line the value came from). `scenario_file` is not unwrapped.
    package static func parse(node: Node, name: String) throws -> ScenarioFile {
        try Reader(name: name).file(node)
    }

    /// Reads a scenario file (`path`, named as given in errors; `-` is
    /// standard input; pipes such as `<(cocomem boot --print-scenario)` work).
    public static func load(path: String) throws -> ScenarioFile {
        var isDir: ObjCBool = false
        guard path == "-" || (FileManager.default.fileExists(atPath: path, isDirectory: &isDir) && !isDir.boolValue),
              let h = path == "-" ? FileHandle.standardInput : FileHandle(forReadingAtPath: path) else {
            throw CocomemError(.io, "cannot read scenario file '\(path)'")
        }
        let d = h.readDataToEndOfFile()
        guard let t = String(data: d, encoding: .utf8) else { throw CocomemError(.invalidScenario, "\(path): not UTF-8 text") }
        return try parse(t, name: path)
    }

    /// A YAML error as one line naming the line (the sweep reader uses it too).
    package static func describe(_ e: YamlError) -> String {
        switch e {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _), .composer(_, let problem, let mark, _):
            return "line \(mark.line): not valid YAML: \(problem)"
        case .duplicatedKeysInMapping(let dups, let context):
            return "line \(context.mark.line): duplicate key \(dups.map { "'\($0)'" }.joined(separator: ", "))"
        default:
            return "line ?: not valid YAML: \(e)"
        }
    }
}

/// Reads the nodes of a scenario file into a `ScenarioFile`, every error
/// naming the file, the line and the key.
struct Reader {
    let name: String

    static let topKeys = ["guest", "firmware", "kernel", "host", "workload", "seed", "calibration", "calibration-profile", "step-by-step", "boot", "steps"]
    static let guestKeys = ["platform", "memory", "vcpus", "numa", "sockets", "vmpl"]
    static let firmwareKeys = ["generation", "partial-accept", "acceptance-protocol", "uhp", "soft-reserved", "retain-soft-reserved"]
    static let kernelKeys = ["version", "accept", "deferred-init", "unaccepted-support", "loader", "acceptance-protocol-call",
                             "crashkernel", "boot-alloc", "init-size", "transparent-hugepage", "min-free-kbytes",
                             "watermark-scale-factor", "hotplug-accept", "swiotlb-shared", "swiotlb", "efi-debug", "idle-poll",
                             "early-decrypted", "early-tick", "workload-actors"]
    static let hostKeys = ["kind", "gmem", "mapping", "snp-prefault", "tdx-module-1g", "snp-coherency-sfw-no",
                           "dpamt", "host-phys-bits", "host-placement", "host-free-4k"]
    static let stepKinds = ["kexec", "dump", "host"]
    static let kexecKeys = ["from", "syscall", "crash", "initrd", "kernel-size", "kernel-alignment", "cmdline-len", "next-kernel", "load-only",
                            "workload"]
    static let dumpKeys = ["from", "level", "compression", "elf-dump", "makedumpfile", "num-threads", "estimate", "sample", "mem-usage", "thp", "slub-order",
                           "vmcoreinfo", "force", "elf", "output", "input"]
    static let hostStepKeys = ["from", "commands", "log", "precheck", "accept-level", "policy", "check-invariants", "host-trace"]

    func line(_ n: Node) -> String { n.mark.map { "line \($0.line)" } ?? "line ?" }

    func error(_ n: Node, _ m: String) -> CocomemError { CocomemError(.invalidScenario, "\(name) \(line(n)): \(m)") }

    /// The pairs of a mapping node, each key a plain string, every key known.
    func mapping(_ n: Node, _ what: String, keys: [String]) throws -> [(String, Node, Node)] {
        guard let m = n.mapping else { throw error(n, "\(what) must be a mapping with keys \(keys.joined(separator: ", ")), got \(kind(n))") }
        return try m.map { k, v in
            guard let key = k.scalar?.string else { throw error(k, "a key under \(what) must be a string") }
            guard keys.contains(key) else {
                throw error(k, "unknown key '\(key)' under \(what) (expected: \(keys.joined(separator: ", ")))")
            }
            return (key, k, v)
        }
    }

    func kind(_ n: Node) -> String {
        switch n {
        case .scalar(let s): "'\(s.string)'"
        case .mapping: "a mapping"
        case .sequence: "a list"
        case .alias: "an alias"
        }
    }

    func string(_ v: Node, _ key: String) throws -> String {
        guard let s = v.scalar else { throw error(v, "'\(key)' must be a single value, got \(kind(v))") }
        return s.string
    }

    func size(_ v: Node, _ key: String, guestMemory: Bool = false) throws -> UInt64 {
        let s = try string(v, key)
        do {
            return try (guestMemory ? ByteCount.parseGuestMemory(s) : ByteCount.parse(s)).value
        } catch let e as CocomemError {
            throw error(v, "'\(key)': \(e.message)")
        }
    }

    func integer(_ v: Node, _ key: String) throws -> Int {
        let s = try string(v, key)
        guard let i = Int(s) else { throw error(v, "'\(key)' must be an integer, got '\(s)'") }
        return i
    }

    func unsigned(_ v: Node, _ key: String) throws -> UInt64 {
        let s = try string(v, key)
        guard let i = UInt64(s) else { throw error(v, "'\(key)' must be a non-negative integer, got '\(s)'") }
        return i
    }

    /// `true`/`false`; `on`/`off` too, as the on/off flags spell them.
    func bool(_ v: Node, _ key: String) throws -> Bool {
        let s = try string(v, key)
        switch s {
        case "true", "on": return true
        case "false", "off": return false
        default: throw error(v, "'\(key)' must be true or false, got '\(s)'")
        }
    }

    func choice<E: RawRepresentable & CaseIterable>(_ v: Node, _ key: String, _: E.Type) throws -> E where E.RawValue == String {
        let s = try string(v, key)
        guard let e = E(rawValue: s) else {
            throw error(v, "'\(key)' must be one of \(E.allCases.map(\.rawValue).joined(separator: ", ")), got '\(s)'")
        }
        return e
    }

    /// A kernel release (`6.12`, `6.12.30`), read as a string even when YAML
    /// reads `6.12` as a number; the error names the line.
    func kernel(_ v: Node, _ key: String) throws -> KernelVersion {
        guard let s = v.scalar?.string else { throw error(v, "'\(key)' must be a kernel release such as 6.12 or 6.12.30, got \(kind(v))") }
        do { return try KernelVersion(parsing: s) } catch let e as CocomemError { throw error(v, "'\(key)': \(e.message)") }
    }

    func file(_ root: Node) throws -> ScenarioFile {
        var f = ScenarioFile()
        var s = Scenario()
        var platformNode: Node? = nil, firmware: FirmwareGeneration? = nil, firmwareNode: Node? = nil, edk2: EDK2Release? = nil
        var crashKernel: UInt64? = nil
        var workloadNode: Node? = nil
        var numaNode: Node? = nil
        var fromNodes: [Node?] = [], kexecWorkloadNodes: [Node?] = []
        var accept = "lazy"
        var sections: [String: Node] = [:]
        for (key, _, v) in try mapping(root, "the top level", keys: Self.topKeys) {
            switch key {
            case "seed": s.seed = try unsigned(v, key)
            case "calibration": f.calibration = try string(v, key)
            case "calibration-profile": f.calibrationProfile = try string(v, key)
            case "step-by-step": s.stepByStep = try bool(v, key)
            case "boot": f.boot = try bool(v, key)
            case "workload": workloadNode = v
            case "steps": (f.steps, fromNodes, kexecWorkloadNodes) = try steps(v)
            default: sections[key] = v
            }
        }
        if let g = sections["guest"] {
            for (key, _, v) in try mapping(g, "'guest'", keys: Self.guestKeys) {
                switch key {
                case "platform": s.platform = try choice(v, key, PlatformKind.self); platformNode = v
                case "memory": s.memory = try size(v, key, guestMemory: true)
                case "numa": numaNode = v
                case "sockets":
                    let n = try integer(v, key)
                    guard (1...4096).contains(n) else { throw error(v, "'sockets' must be between 1 and 4096, got \(n)") }
                    s.sockets = n
                case "vmpl":
                    let n = try integer(v, key)
                    guard (0...3).contains(n) else { throw error(v, "'vmpl' must be between 0 and 3 (SEV-SNP's VMPL0 to VMPL3), got \(n)") }
                    s.snpVMPL = n
                default:
                    let n = try integer(v, key)
                    guard (1...4096).contains(n) else { throw error(v, "'vcpus' must be between 1 and 4096, got \(n)") }
                    s.vcpus = n
                }
            }
        }
        if let fw = sections["firmware"] {
            for (key, _, v) in try mapping(fw, "'firmware'", keys: Self.firmwareKeys) {
                switch key {
                case "generation":
                    let g = try string(v, key)
                    if let known = FirmwareGeneration(rawValue: g) { firmware = known } else {
                        do { edk2 = try EDK2Release.parse(g) } catch let e as CocomemError { throw error(v, "'\(key)': \(e.message)") }
                    }
                    firmwareNode = v
                case "partial-accept": s.partialAcceptBytes = try size(v, key)
                case "uhp": s.firmwareMarksUHP = try bool(v, key)
                case "soft-reserved": s.softReservedBytes = try size(v, key)
                case "retain-soft-reserved": s.retainSoftReserved = try bool(v, key)
                default: s.snpAcceptanceProtocol = try bool(v, key)
                }
            }
        }
        if let k = sections["kernel"] {
            for (key, _, v) in try mapping(k, "'kernel'", keys: Self.kernelKeys) {
                switch key {
                case "version": s.kernel.version = try kernel(v, key)
                case "accept":
                    accept = try string(v, key)
                    guard accept == "lazy" || accept == "eager" else { throw error(v, "'accept' must be one of lazy, eager, got '\(accept)'") }
                case "deferred-init": s.kernel.deferredStructPageInit = try bool(v, key)
                case "unaccepted-support": s.loader.kernelSupportsUnaccepted = try bool(v, key)
                case "loader":
                    let l = try string(v, key)
                    guard l == "efistub" || l == "grub-ebs" else { throw error(v, "'loader' must be one of efistub, grub-ebs, got '\(l)'") }
                    s.loader.loaderCallsExitBootServices = l == "grub-ebs"
                case "acceptance-protocol-call": s.loader.stubCallsAcceptanceProtocol = try bool(v, key)
                case "crashkernel": crashKernel = try size(v, key)
                case "boot-alloc": s.bootAllocationBytes = try size(v, key)
                case "transparent-hugepage": s.kernel.transparentHugepage = try choice(v, key, TransparentHugepage.self)
                case "min-free-kbytes": s.kernel.minFreeKbytes = try unsigned(v, key)
                case "watermark-scale-factor": s.kernel.watermarkScaleFactor = try unsigned(v, key)
                case "hotplug-accept": s.kernel.hotplugAcceptance = try choice(v, key, HotplugAcceptance.self)
                case "swiotlb-shared": s.kernel.swiotlbShared = try bool(v, key)
                case "early-decrypted": s.kernel.earlyDecrypted = try bool(v, key)
                case "early-tick":
                    let hz = try unsigned(v, key)
                    guard KernelConfig.earlyTickChoices.contains(hz) else { throw error(v, "'early-tick' must be 0, 100, 250, 300 or 1000 (CONFIG_HZ)") }
                    s.kernel.earlyTickHz = hz
                case "efi-debug": s.kernel.efiDebug = try bool(v, key)
                case "idle-poll": s.kernel.idlePoll = try bool(v, key)
                case "workload-actors": s.kernel.workloadActors = try bool(v, key)
                case "swiotlb":
                    let text = try string(v, key)
                    do { s.kernel.swiotlbParameter = try SWIOTLBParameter.parse(text) } catch let e as CocomemError { throw error(v, e.message) }
                default:
                    let b = try size(v, key)
                    guard b > 0 else { throw error(v, "'init-size' must be positive") }
                    s.kernel.kernelInitBytes = b
                }
            }
        }
        if let h = sections["host"] {
            for (key, _, v) in try mapping(h, "'host'", keys: Self.hostKeys) {
                switch key {
                case "kind":
                    // `snp`: the KVM SEV-SNP host model (`--host snp`); otherwise a TDX host model.
                    let k = try string(v, key)
                    if k == "snp" { s.snpHost = true } else if let m = TDXHostModel(rawValue: k) { s.tdxHost = m } else {
                        throw error(v, "'kind' must be one of \((TDXHostModel.allCases.map(\.rawValue) + ["snp"]).joined(separator: ", ")), got '\(k)'")
                    }
                case "gmem": s.gmemBacking = try choice(v, key, GmemBacking.self)
                case "mapping": s.hostMapping = try choice(v, key, HostMappingPolicy.self)
                case "tdx-module-1g": s.tdxModule1G = try bool(v, key)
                case "snp-coherency-sfw-no": s.snpCoherencySfwNo = try bool(v, key)
                case "dpamt": s.dpamtSeries = try choice(v, key, DPAMTSeries.self)
                case "host-phys-bits":
                    let b = try integer(v, key)
                    guard (36...52).contains(b) else { throw error(v, "'host-phys-bits' must be 36 to 52") }
                    s.hostPhysBits = b
                case "host-placement": s.hostPlacement = try choice(v, key, SEPTPlacement.self)
                case "host-free-4k":
                    let n = try unsigned(v, key)
                    guard n <= 1 << 32 else { throw error(v, "'host-free-4k' must be 0 to 4294967296") }
                    s.hostIsolatedFreePages = n
                default: s.snpPrefault = try bool(v, key)
                }
            }
        }
        if let v = numaNode {
            let sizes = try numa(v, memory: s.memory)
            do { s.numaNodeSizes = try Scenario.numaNodeSizes(sizes, memory: s.memory, vcpus: s.vcpus, sockets: s.sockets) }
            catch let e as CocomemError { throw error(v, "'numa': \(e.message)") }
        }
        s.lazy = accept == "lazy"
        s.kernel.lazyAccept = s.lazy
        s.firmware = firmware ?? edk2?.generation(tdx: s.platform == .tdx) ?? (s.platform == .tdx ? .tdvf : .ovmfSNP)
        s.edk2Release = edk2
        if let w = workloadNode { s.workload = try workload(w, memory: s.memory) }
        f.steps = try f.steps.enumerated().map { i, step in
            guard case .kexec(var k) = step, let w = kexecWorkloadNodes[i] else { return step }
            k.workload = try workload(w, memory: s.memory)
            if k.workload != .none, k.loadOnly || k.crash {
                throw error(w, "'workload' is the next kernel's, after kexec -e boots it; this step \(k.crash ? "loads a crash image, which only a panic starts" : "only loads (load-only)")")
            }
            return .kexec(k)
        }
        if !f.boot, f.steps.first?.continues == true, let n = fromNodes[0] {
            throw error(n, "'from': previous: with boot: false no guest runs for step 1 to continue from")
        }
        s.kernel.crashKernelBytes = crashKernel ?? ScenarioFile.defaultCrashKernel(for: f.steps)
        f.scenario = s
        if f.boot {
            do { try s.validate() } catch let e as CocomemError {
                throw error(firmwareNode ?? platformNode ?? root, e.message)
            }
        }
        return f
    }

    /// `workload:` a list of phases in `--workload`'s syntax (a single
    /// value is a list of one), run one after the other (`Workload.phases`).
    /// `numa:` under `guest`: a node count (equal nodes) or a list of node
    /// sizes, as `--numa` takes them.
    func numa(_ v: Node, memory: UInt64) throws -> [UInt64] {
        let text: String
        switch v {
        case .sequence(let seq): text = try seq.map { try string($0, "numa") }.joined(separator: ",")
        case .scalar: text = try string(v, "numa")
        default: throw error(v, "'numa' must be a node count or a list of node sizes such as [3G, 1G], got \(kind(v))")
        }
        do { return try NUMALayout.parseSizes(text, memory: memory) } catch let e as CocomemError { throw error(v, "'numa': \(e.message)") }
    }

    func workload(_ v: Node, memory: UInt64) throws -> Workload {
        var items: [Node]
        switch v {
        case .sequence(let seq): items = Array(seq)
        case .scalar: items = [v]
        default: throw error(v, "'workload' must be a list of phases such as touch=32G, got \(kind(v))")
        }
        let phases = try items.map { item -> Workload in
            let text = try string(item, "workload")
            do { return try Workload.parse(text, memory: memory) } catch let e as CocomemError { throw error(item, "'workload': \(e.message)") }
        }.filter { $0 != .none }
        return phases.count <= 1 ? phases.first ?? .none : .phases(phases)
    }

    /// The steps, and for each its `from` value's node (for errors found
    /// once the whole file is read) and a kexec step's `workload` node
    /// (read once the guest's memory is known, for `touch=all`).
    func steps(_ v: Node) throws -> ([ScenarioFile.Step], [Node?], [Node?]) {
        guard case .sequence(let seq) = v else { throw error(v, "'steps' must be a list of steps (kexec, dump, host), got \(kind(v))") }
        var steps: [ScenarioFile.Step] = []
        var fromNodes: [Node?] = [], workloadNodes: [Node?] = []
        for item in seq {
            guard let m = item.mapping, m.count == 1, let (k, body) = m.first.map({ ($0.key, $0.value) }), let kind = k.scalar?.string else {
                throw error(item, "a step must be a mapping with one key, one of \(Self.stepKinds.joined(separator: ", ")), got \(self.kind(item))")
            }
            let from = body.mapping?["from"]
            let step: ScenarioFile.Step
            switch kind {
            case "kexec": step = .kexec(try kexec(body))
            case "dump": step = .dump(try dump(body))
            case "host": step = .host(try host(body))
            default: throw error(k, "unknown step kind '\(kind)' (expected: \(Self.stepKinds.joined(separator: ", ")))")
            }
            if let from, step.continues { try continuation(step, at: steps.count, after: steps, node: from) }
            steps.append(step)
            fromNodes.append(from)
            workloadNodes.append(kind == "kexec" ? body.mapping?["workload"] : nil)
        }
        return (steps, fromNodes, workloadNodes)
    }

    /// `from:` boot (the default: the step boots the file's guest again, as
    /// its command does) or previous (the guest as the step before left it).
    func from(_ v: Node) throws -> Bool {
        let s = try string(v, "from")
        guard s == "boot" || s == "previous" else { throw error(v, "'from' must be one of boot, previous, got '\(s)'") }
        return s == "previous"
    }

    /// Refuses a `from: previous` that has nothing to continue from, as the
    /// real machine would: a host step runs its own TD; a crash into kdump
    /// leaves only the capture kernel, from which only another dump of the
    /// same crash continues; a normal image loaded without executing would
    /// be replaced by a second load (`kimage_free()` of the old image),
    /// which the kernel model does not do.
    func continuation(_ step: ScenarioFile.Step, at index: Int, after before: [ScenarioFile.Step], node: Node) throws {
        func refuse(_ why: String) throws -> Never { throw error(node, "'from': previous: \(why)") }
        if case .dump(let d) = step, let input = d.input { try refuse("a dump of the file '\(input)' does not start from a guest") }
        guard let previous = before.last else { return }
        let n = before.count
        switch (previous, step) {
        case (.host, _):
            try refuse("step \(n) is a host step, which runs its own TD from its commands and leaves no guest for step \(index + 1) to continue from")
        case (.dump(let d), _) where d.input != nil:
            try refuse("step \(n) dumps a vmcore file and leaves no guest for step \(index + 1) to continue from")
        case (.dump, .kexec):
            try refuse("step \(n) crashed the guest into kdump; only another dump of that crash continues from there")
        case (.kexec(let k), .kexec) where k.loadOnly && !k.crash:
            try refuse("step \(n) loaded a normal image without executing it (load-only); a second load would replace it (kimage_free()), which is not modelled: execute it in step \(n) instead")
        default: return
        }
    }

    /// An empty step (`- kexec:`) takes every default.
    func body(_ v: Node, _ what: String, keys: [String]) throws -> [(String, Node, Node)] {
        if let s = v.scalar, s.string.isEmpty || s.string == "~" || s.string == "null" { return [] }
        return try mapping(v, what, keys: keys)
    }

    /// A kexec step; its `workload:` is read by `file(_:)`, once the
    /// guest's memory is known (`touch=all`).
    func kexec(_ v: Node) throws -> ScenarioFile.KexecStep {
        var k = ScenarioFile.KexecStep()
        for (key, _, v) in try body(v, "'kexec'", keys: Self.kexecKeys) {
            switch key {
            case "from": k.continues = try from(v)
            case "workload": continue
            case "syscall": k.syscall = try choice(v, key, KexecSyscall.self)
            case "crash": k.crash = try bool(v, key)
            case "initrd": k.initrdBytes = try size(v, key)
            case "kernel-size": k.kernelFileBytes = try size(v, key)
            case "kernel-alignment":
                let a = try size(v, key)
                guard a >= 4096, a & (a - 1) == 0 else { throw error(v, "'kernel-alignment' \(a) is not a power of two of at least 4K") }
                k.kernelAlignment = a
            case "cmdline-len":
                let c = try unsigned(v, key)
                guard c >= 1, c <= 1 << 20 else { throw error(v, "'cmdline-len' must be between 1 and 1048576") }
                k.cmdlineBytes = c
            case "next-kernel": k.nextKernel = try kernel(v, key)
            default: k.loadOnly = try bool(v, key)
            }
        }
        return k
    }

    func dump(_ v: Node) throws -> ScenarioFile.DumpStep {
        var d = ScenarioFile.DumpStep()
        for (key, _, v) in try body(v, "'dump'", keys: Self.dumpKeys) {
            switch key {
            case "from": d.continues = try from(v)
            case "level": d.level = try integer(v, key)
            case "compression":
                let c = try string(v, key)
                guard let x = DumpCompression.allCases.first(where: { $0.name == c }) else {
                    throw error(v, "'compression' must be one of \(DumpCompression.allCases.map(\.name).joined(separator: ", ")), got '\(c)'")
                }
                d.compression = x
            case "elf-dump": d.elfDump = try bool(v, key)
            case "makedumpfile":
                do { d.makedumpfile = try MakedumpfileVersion.parse(try string(v, key)) } catch let e as CocomemError { throw error(v, "'\(key)': \(e.message)") }
            case "num-threads": d.threads = try integer(v, key)
            case "estimate": d.estimate = try bool(v, key)
            case "sample": d.sample = try integer(v, key)
            case "mem-usage": d.memUsage = try bool(v, key)
            case "thp":
                let t = try string(v, key)
                guard t == "always" || t == "never" else { throw error(v, "'thp' must be one of always, never, got '\(t)'") }
                d.thp = t == "always"
            case "vmcoreinfo": d.vmcoreinfo = try bool(v, key)
            case "slub-order":
                let n = try integer(v, key)
                guard (0...ScenarioFile.DumpStep.maximumSlubOrder).contains(n) else { throw error(v, "'slub-order' must be 0 to \(ScenarioFile.DumpStep.maximumSlubOrder) (MAX_PAGE_ORDER), got \(n)") }
                d.slubOrder = UInt64(n)
            case "force": d.force = try bool(v, key)
            case "elf": d.elf = try string(v, key)
            case "output": d.output = try string(v, key)
            default: d.input = try string(v, key)
            }
        }
        do { try d.validate() } catch let e as CocomemError { throw error(v, "dump: \(e.message)") }
        return d
    }

    func host(_ v: Node) throws -> ScenarioFile.HostStep {
        var h = ScenarioFile.HostStep()
        var commandsNode: Node? = nil
        if let s = v.scalar, !s.string.isEmpty, s.string != "~", s.string != "null" {
            h.commands = s.string
            commandsNode = v
        } else {
            for (key, _, v) in try body(v, "'host'", keys: Self.hostStepKeys) {
                switch key {
                case "from":
                    if try from(v) { throw error(v, "'from': previous: a host step runs its own TD from its commands; it cannot continue from a guest") }
                case "commands": h.commands = try string(v, key); commandsNode = v
                case "log": h.log = try bool(v, key)
                case "precheck": h.precheck = try bool(v, key)
                case "accept-level": h.acceptLevel = try choice(v, key, AcceptLevelPolicy.self)
                case "policy": h.policy = try choice(v, key, ConversionPolicy.self)
                case "host-trace":
                    let p = try string(v, key)
                    guard !p.isEmpty else { throw error(v, "'host-trace' needs a file name") }
                    h.hostTrace = p
                default: h.checkInvariants = try bool(v, key)
                }
            }
        }
        do { _ = try h.hostScenario() } catch let e as CocomemError {
            // A host command's error names its line in the commands; in a
            // block scalar (`|`) that line is the file's line after the indicator's.
            let prefix = "host scenario line "
            if let c = commandsNode, let s = c.scalar, s.style == .literal, let mark = c.mark,
               e.message.hasPrefix(prefix), let colon = e.message.firstIndex(of: ":"),
               let n = Int(e.message[e.message.index(e.message.startIndex, offsetBy: prefix.count)..<colon]) {
                throw CocomemError(.invalidScenario, "\(name) line \(mark.line + n): host command: \(e.message[e.message.index(after: colon)...].drop(while: { $0 == " " }))")
            }
            throw error(v, "host step: \(e.message)")
        }
        return h
    }
}
