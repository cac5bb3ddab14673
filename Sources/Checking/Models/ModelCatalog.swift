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
        func bad(_ m: String) -> CocomemError { CocomemError(.invalidScenario, "model \(name): \(m)") }
        func allow(_ keys: Set<String>) throws {
            for k in p.keys.sorted() where !keys.contains(k) { throw bad("unknown key '\(k)' (expected: \(keys.sorted().joined(separator: ", ")))") }
        }
        func int(_ k: String, _ d: Int, _ r: ClosedRange<Int>) throws -> Int {
            guard let v = p[k] else { return d }
            guard let x = Int(v), r.contains(x) else { throw bad("'\(k)' must be \(r.lowerBound)...\(r.upperBound), got '\(v)'") }
            return x
        }
        func list(_ k: String) -> [String]? {
            p[k].map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }
        }
        func size(_ k: String, _ d: UInt64) throws -> UInt64 {
            guard let v = p[k] else { return d }
            do { return try ByteCount.parse(v).value } catch { throw bad("'\(k)': \((error as? CocomemError)?.message ?? "\(error)")") }
        }
        let spec: Verdicts.Spec
        let depth: Int
        switch name {
        case "host-conversion":
            try allow(["policy", "faults", "max-faults", "chunks", "sept-placement", "depth"])
            guard let pv = p["policy"], let policy = ConversionPolicy(rawValue: pv) else {
                throw bad("'policy' must be one of \(ConversionPolicy.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            let faults = try (list("faults") ?? []).map { f -> FaultPoint in
                guard let x = FaultPoint(rawValue: f) else { throw bad("unknown fault point '\(f)' (expected: \(FaultPoint.allCases.map(\.rawValue).joined(separator: ", ")))") }
                return x
            }
            let placement = try p["sept-placement"].map { v -> SEPTPlacement in
                guard let x = SEPTPlacement(rawValue: v) else { throw bad("'sept-placement' must be contiguous, scattered or buddy") }
                return x
            } ?? .contiguous
            depth = try int("depth", 4, 1...8)
            let c = HostModels.Conversion(policy: policy, faultPoints: faults, maxFaults: try int("max-faults", 1, 0...4),
                                          chunks: try int("chunks", 1, 1...4), placement: placement)
            spec = Verdicts.Spec(id: "check-host-conversion", design: policy.rawValue, condition: "", build: .host(c))
        case "kexec":
            try allow(["kernel", "memory", "initrd", "syscalls", "touches", "touch"])
            guard let k = p["kernel"] else { throw bad("'kernel' is required (a release such as \"6.12\")") }
            let syscalls = try (list("syscalls") ?? ["kexec_file_load", "kexec_load"]).map { s -> KexecSyscall in
                guard let x = KexecSyscall(rawValue: s) else { throw bad("unknown syscall '\(s)' (expected: kexec_file_load, kexec_load)") }
                return x
            }
            var cfg = KexecModel.Config(kernel: k, memory: try size("memory", ByteCount.gib(4).value), initrd: try size("initrd", ByteCount.mib(256).value),
                                        maxTouches: try int("touches", 1, 0...4), touchBytes: try size("touch", ByteCount.gib(1).value))
            cfg.syscalls = syscalls
            depth = 0
            spec = Verdicts.Spec(id: "check-kexec", design: "kexec", condition: "", build: .kexec(cfg))
        case "adversarial-host":
            try allow(["trusts-already-accepted", "attacks", "max-attacks", "pages", "depth"])
            guard let t = p["trusts-already-accepted"], t == "true" || t == "false" else { throw bad("'trusts-already-accepted' must be true or false") }
            let attacks = list("attacks") ?? ["remove", "readd", "remap", "refuse-aug"]
            for a in attacks where !["remove", "readd", "remap", "refuse-aug"].contains(a) { throw bad("unknown attack '\(a)' (expected: remove, readd, remap, refuse-aug)") }
            depth = try int("depth", 5, 1...8) - 1
            let a = HostModels.Adversarial(trustsAlreadyAccepted: t == "true", maxAttacks: try int("max-attacks", 2, 0...4),
                                           pages: try int("pages", 1, 1...2), attacks: attacks)
            spec = Verdicts.Spec(id: "check-adversarial-host", design: "adversarial host", condition: "", build: .adversarial(a))
        case "accept-memory":
            let c = try acceptMemoryConfig(p)
            depth = 0
            spec = Verdicts.Spec(id: "check-accept-memory", design: "accept_memory()", condition: "", build: .acceptMemory(c))
        default:
            throw bad("unknown model (expected: \(names.joined(separator: ", ")))")
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
        func bad(_ m: String) -> CocomemError { CocomemError(.invalidScenario, "model \(name): \(m)") }
        func allow(_ keys: Set<String>) throws {
            for k in p.keys.sorted() where !keys.contains(k) { throw bad("unknown key '\(k)' (expected: \(keys.sorted().joined(separator: ", ")))") }
        }
        func int(_ k: String, _ d: Int, _ r: ClosedRange<Int>) throws -> Int {
            guard let v = p[k] else { return d }
            guard let x = Int(v), r.contains(x) else { throw bad("'\(k)' must be \(r.lowerBound)...\(r.upperBound), got '\(v)'") }
            return x
        }
        func list(_ k: String) -> [String]? {
            p[k].map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }
        }
        func size(_ k: String, _ d: UInt64) throws -> UInt64 {
            guard let v = p[k] else { return d }
            do { return try ByteCount.parse(v).value } catch { throw bad("'\(k)': \((error as? CocomemError)?.message ?? "\(error)")") }
        }
        try allow(["kernel", "planted-fault", "vcpus", "size", "stride", "host", "vcpu0", "vcpu1", "vcpu2",
                   "host-steps", "host-budget", "faults", "fault-points", "policy"])
        var c = AcceptMemoryModel.Config(kernel: p["kernel"] ?? "7.0", vcpus: try int("vcpus", 2, 1...3), size: try size("size", 4 << 20))
        c.stride = try size("stride", c.size)
        c.host = p["host"] ?? "tdx-huge"
        let given = ["vcpu0", "vcpu1", "vcpu2"].filter { p[$0] != nil }
        if !given.isEmpty {
            guard p["vcpus"] == nil, p["size"] == nil, p["stride"] == nil else { throw bad("give either programs (vcpu0...) or vcpus/size/stride, not both") }
            guard given == Array(["vcpu0", "vcpu1", "vcpu2"].prefix(given.count)) else { throw bad("programs must be vcpu0, vcpu1, vcpu2 in order, none missing") }
            c.programs = try given.map { k in
                do { return try ProgramOp.program(p[k]!) } catch let e as CocomemError { throw bad("'\(k)': \(e.message)") }
            }
            c.vcpus = given.count
        }
        if let pv = p["policy"] {
            guard let x = ConversionPolicy(rawValue: pv) else {
                throw bad("'policy' must be one of \(ConversionPolicy.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            c.policy = x
        }
        c.hostBudget = try int("host-budget", p["host-steps"] == nil ? 0 : 1, 0...8)
        c.maxFaults = try int("faults", 0, 0...4)
        c.faultPoints = try (list("fault-points") ?? (c.maxFaults > 0 ? FaultPoint.allCases.map(\.rawValue) : [])).map { f -> FaultPoint in
            guard let x = FaultPoint(rawValue: f) else { throw bad("unknown fault point '\(f)' (expected: \(FaultPoint.allCases.map(\.rawValue).joined(separator: ", ")))") }
            return x
        }
        if let h = p["host-steps"] {
            do { c.hostSteps = try HostMove.steps(h, header: "td vcpus=\(c.vcpus) host=\(c.host)\nslot id=1 base=0 pages=0x4000\nfinalize") } catch let e as CocomemError { throw bad(e.message) }
        }
        if let f = p["planted-fault"], f != "none" {
            guard let x = PlantedAcceptFault(rawValue: f) else {
                throw bad("unknown planted fault '\(f)' (expected: none, \(PlantedAcceptFault.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            c.plantedFault = x
        }
        do { _ = try AcceptMemoryModel(c) } catch let e as CocomemError { throw bad(e.message) }
        return c
    }
}
