import Foundation
import GuestKernel
import KVM
import MemoryModel

/// The models on the layers' real interfaces by name, for a configuration
/// file's `model:` key (`cocomem check FILE`, whose parser hands the other
/// keys over as text): `host-conversion`, `kexec`, `adversarial-host`.
/// Examples: `examples/check/`.
public enum ModelCatalog {
    /// The names `explore` knows.
    public static let names = ["host-conversion", "kexec", "adversarial-host", "accept-memory"]

    /// What one exploration found, with each counterexample as a readable
    /// trace and as a scenario file.
    public struct Outcome: Sendable {
        public let model: String
        public let states: Int
        public let transitions: Int
        public let depthReached: Int
        public let complete: Bool
        public let findings: [Verdicts.Finding]

        /// The findings as text: one block per violated invariant, each step
        /// `N. actor: command (call) → result`.
        public var readableTraces: String {
            findings.map { f in
                "\(f.invariant): \(f.detail)\n" + f.trace.enumerated().map { i, s in
                    "  \(i + 1). \(s.step.actor): \(s.step.command.trimmingCharacters(in: .whitespaces)) (\(s.step.call)) → \(s.observed)"
                }.joined(separator: "\n")
            }.joined(separator: "\n")
        }
    }

    /// Explores the model `name` configured by `parameters` (the file's
    /// keys, values as written).
    ///
    /// - `host-conversion`: `policy` (wip-hugetlb, zap-first, sept-first,
    ///   multi-folio), `faults` (comma-separated fault points), `max-faults`
    ///   (1), `chunks` (1–4), `sept-placement` (contiguous, scattered),
    ///   `depth` (4).
    /// - `kexec`: `kernel` (a release), `memory` (4G), `initrd` (256M),
    ///   `syscalls` (kexec_file_load,kexec_load), `touches` (1), `touch` (1G).
    /// - `adversarial-host`: `trusts-already-accepted` (true/false),
    ///   `attacks` (remove,readd,remap,refuse-aug), `max-attacks` (2),
    ///   `pages` (1–2), `depth` (5).
    /// - `accept-memory`: `kernel` (a release, 7.0), `planted-fault`
    ///   (none, no-accepting-list, claim-by-clearing), `vcpus` (1–3, 2),
    ///   `size` (4M), `stride` (the size; 0: one range for all), `host`
    ///   (tdx, tdx-huge); or each vCPU's own program, `vcpu0`, `vcpu1`,
    ///   `vcpu2` (`ProgramOp.program`: `accept`, `accept ... at 2M|4K`, `touch`, `convert`,
    ///   `kexec-load`, `reboot`, separated by `;`); `host-steps` (host
    ///   command lines, `;`-separated: remove, readd, remap, refuse-aug,
    ///   punch, attributes, pin, unpin, hostmap) with `host-budget` (1 when
    ///   steps are given, 0...8); `faults` (0...4) injected from
    ///   `fault-points` (every `FaultPoint` by default); `policy` (seed
    ///   004's conversion policy). Finite: explored to the end.
    ///
    /// Every key is checked: an unknown key or a bad value is a
    /// `CocomemError` naming it.
    /// - Complexity: as `Verdicts.run` for the configured model.
    public static func explore(model name: String, parameters p: [String: String]) throws -> Outcome {
        let params = ModelParameters(model: name, values: p)
        let spec: Verdicts.Spec
        let depth: Int
        switch name {
        case "host-conversion":
            try params.allow(["policy", "faults", "max-faults", "chunks", "sept-placement", "depth"])
            guard let pv = p["policy"], let policy = ConversionPolicy(rawValue: pv) else {
                throw params.bad("'policy' must be one of \(ConversionPolicy.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            let faults = try (params.list("faults") ?? []).map { f -> FaultPoint in
                guard let x = FaultPoint(rawValue: f) else { throw params.bad("unknown fault point '\(f)' (expected: \(FaultPoint.allCases.map(\.rawValue).joined(separator: ", ")))") }
                return x
            }
            let placement = try p["sept-placement"].map { v -> SEPTPlacement in
                guard let x = SEPTPlacement(rawValue: v) else { throw params.bad("'sept-placement' must be contiguous, scattered or buddy") }
                return x
            } ?? .contiguous
            depth = try params.int("depth", 4, 1...8)
            let c = HostModels.Conversion(policy: policy, faultPoints: faults, maxFaults: try params.int("max-faults", 1, 0...4),
                                          chunks: try params.int("chunks", 1, 1...4), placement: placement)
            spec = Verdicts.Spec(id: "check-host-conversion", design: policy.rawValue, condition: "", build: .host(c))
        case "kexec":
            try params.allow(["kernel", "memory", "initrd", "syscalls", "touches", "touch"])
            guard let k = p["kernel"] else { throw params.bad("'kernel' is required (a release such as \"6.12\")") }
            let syscalls = try (params.list("syscalls") ?? ["kexec_file_load", "kexec_load"]).map { s -> KexecSyscall in
                guard let x = KexecSyscall(rawValue: s) else { throw params.bad("unknown syscall '\(s)' (expected: kexec_file_load, kexec_load)") }
                return x
            }
            var cfg = KexecModel.Config(kernel: k, memory: try params.size("memory", ByteCount.gib(4).value), initrd: try params.size("initrd", ByteCount.mib(256).value),
                                        maxTouches: try params.int("touches", 1, 0...4), touchBytes: try params.size("touch", ByteCount.gib(1).value))
            cfg.syscalls = syscalls
            depth = 0
            spec = Verdicts.Spec(id: "check-kexec", design: "kexec", condition: "", build: .kexec(cfg))
        case "adversarial-host":
            try params.allow(["trusts-already-accepted", "attacks", "max-attacks", "pages", "depth"])
            guard let t = p["trusts-already-accepted"], t == "true" || t == "false" else { throw params.bad("'trusts-already-accepted' must be true or false") }
            let attacks = params.list("attacks") ?? ["remove", "readd", "remap", "refuse-aug"]
            for a in attacks where !["remove", "readd", "remap", "refuse-aug"].contains(a) { throw params.bad("unknown attack '\(a)' (expected: remove, readd, remap, refuse-aug)") }
            depth = try params.int("depth", 5, 1...8) - 1
            let a = HostModels.Adversarial(trustsAlreadyAccepted: t == "true", maxAttacks: try params.int("max-attacks", 2, 0...4),
                                           pages: try params.int("pages", 1, 1...2), attacks: attacks)
            spec = Verdicts.Spec(id: "check-adversarial-host", design: "adversarial host", condition: "", build: .adversarial(a))
        case "accept-memory":
            let c = try acceptMemoryConfig(p)
            depth = 0
            spec = Verdicts.Spec(id: "check-accept-memory", design: "accept_memory()", condition: "", build: .acceptMemory(c))
        default:
            throw params.bad("unknown model (expected: \(names.joined(separator: ", ")))")
        }
        let r = try Verdicts.run(spec, depth: max(depth, 1))
        return Outcome(model: name, states: r.states ?? 0, transitions: r.transitions, depthReached: r.depthReached,
                       complete: r.complete, findings: r.findings)
    }

    /// Reads `model: accept-memory`'s parameters (see `explore`) into a
    /// configuration, checked by building the model once.
    /// - Throws: `.invalidScenario` naming the key, prefixed `model accept-memory:`.
    /// - Complexity: O(parameters) and one TD build.
    public static func acceptMemoryConfig(_ p: [String: String]) throws -> AcceptMemoryModel.Config {
        let name = "accept-memory"
        let params = ModelParameters(model: name, values: p)
        try params.allow(["kernel", "planted-fault", "vcpus", "size", "stride", "host", "vcpu0", "vcpu1", "vcpu2",
                   "host-steps", "host-budget", "faults", "fault-points", "policy"])
        var c = AcceptMemoryModel.Config(kernel: p["kernel"] ?? "7.0", vcpus: try params.int("vcpus", 2, 1...3), size: try params.size("size", 4 << 20))
        c.stride = try params.size("stride", c.size)
        c.host = p["host"] ?? "tdx-huge"
        let given = ["vcpu0", "vcpu1", "vcpu2"].filter { p[$0] != nil }
        if !given.isEmpty {
            guard p["vcpus"] == nil, p["size"] == nil, p["stride"] == nil else { throw params.bad("give either programs (vcpu0...) or vcpus/size/stride, not both") }
            guard given == Array(["vcpu0", "vcpu1", "vcpu2"].prefix(given.count)) else { throw params.bad("programs must be vcpu0, vcpu1, vcpu2 in order, none missing") }
            c.programs = try given.map { k in
                do { return try ProgramOp.program(p[k]!) } catch let e as CocomemError { throw params.bad("'\(k)': \(e.message)") }
            }
            c.vcpus = given.count
        }
        if let pv = p["policy"] {
            guard let x = ConversionPolicy(rawValue: pv) else {
                throw params.bad("'policy' must be one of \(ConversionPolicy.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            c.policy = x
        }
        c.hostBudget = try params.int("host-budget", p["host-steps"] == nil ? 0 : 1, 0...8)
        c.maxFaults = try params.int("faults", 0, 0...4)
        c.faultPoints = try (params.list("fault-points") ?? (c.maxFaults > 0 ? FaultPoint.allCases.map(\.rawValue) : [])).map { f -> FaultPoint in
            guard let x = FaultPoint(rawValue: f) else { throw params.bad("unknown fault point '\(f)' (expected: \(FaultPoint.allCases.map(\.rawValue).joined(separator: ", ")))") }
            return x
        }
        if let h = p["host-steps"] {
            do { c.hostSteps = try HostMove.steps(h, header: "td vcpus=\(c.vcpus) host=\(c.host)\nslot id=1 base=0 pages=0x4000\nfinalize") } catch let e as CocomemError { throw params.bad(e.message) }
        }
        if let f = p["planted-fault"], f != "none" {
            guard let x = PlantedAcceptFault(rawValue: f) else {
                throw params.bad("unknown planted fault '\(f)' (expected: none, \(PlantedAcceptFault.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            c.plantedFault = x
        }
        do { _ = try AcceptMemoryModel(c) } catch let e as CocomemError { throw params.bad(e.message) }
        return c
    }
}

/// The `model:` parameters of a check file, read with the model's name in
/// every error: one reader for every model in `ModelCatalog`.
struct ModelParameters {
    let model: String
    let values: [String: String]

    /// An `.invalidScenario` error prefixed `model NAME:`.
    func bad(_ message: String) -> CocomemError { CocomemError(.invalidScenario, "model \(model): \(message)") }

    /// Refuses any key not in `keys`, naming it and the keys expected.
    /// - Complexity: O(k log k) for k keys given.
    func allow(_ keys: Set<String>) throws {
        for k in values.keys.sorted() where !keys.contains(k) {
            throw bad("unknown key '\(k)' (expected: \(keys.sorted().joined(separator: ", ")))")
        }
    }

    /// The integer under `key` within `range`, or `defaultValue` when absent.
    func int(_ key: String, _ defaultValue: Int, _ range: ClosedRange<Int>) throws -> Int {
        guard let v = values[key] else { return defaultValue }
        guard let x = Int(v), range.contains(x) else {
            throw bad("'\(key)' must be \(range.lowerBound)...\(range.upperBound), got '\(v)'")
        }
        return x
    }

    /// The comma-separated list under `key` (empty items dropped), or nil when absent.
    func list(_ key: String) -> [String]? {
        values[key].map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }
    }

    /// The byte count under `key` (`ByteCount.parse`), or `defaultValue` when absent.
    func size(_ key: String, _ defaultValue: UInt64) throws -> UInt64 {
        guard let v = values[key] else { return defaultValue }
        do { return try ByteCount.parse(v).value } catch { throw bad("'\(key)': \((error as? CocomemError)?.message ?? "\(error)")") }
    }
}
