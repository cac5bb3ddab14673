import Foundation
import KVM
import MemoryModel

/// The verdict table (issue 20 §2): for each design in the seeds, what the
/// checker finds when it explores every order of the steps its model
/// offers, within a depth bound: which registered invariants break, each
/// with its shortest trace and a scenario file that replays it.
public enum Verdicts {
    /// One row: a design under one condition.
    public struct Spec: Sendable {
        /// Short, unique, usable as a file name (`cocomem verdicts --only ID`).
        public let id: String
        /// The design, as the seed names it.
        public let design: String
        /// The condition explored (fault points, guest option).
        public let condition: String
        let build: Build

        enum Build: Sendable {
            case host(HostModels.Conversion)
            case adversarial(HostModels.Adversarial)
            case kexec(KexecModel.Config)
            case acceptMemory(AcceptMemoryModel.Config)
            case notModelled(String)
        }
    }

    /// One step of a trace, with what it did.
    public struct TraceStep: Sendable {
        public let step: ModelStep
        /// The result the step produced, in one line.
        public let observed: String
    }

    /// One invariant broken, with its shortest trace.
    public struct Finding: Sendable {
        public let invariant: String
        public let detail: String
        public let trace: [TraceStep]
        /// The scenario file (`cocomem run FILE`) that replays the trace.
        public let scenarioFile: String
        /// The file's name: `ROW-INVARIANT.yaml`.
        public let fileName: String
    }

    /// A row explored (or not modelled).
    public struct Row: Sendable {
        public let spec: Spec
        /// Nil for a design the models do not have yet: `notModelled` says why.
        public let states: Int?
        public let transitions: Int
        public let depthReached: Int
        public let complete: Bool
        public let findings: [Finding]
        public let notModelled: String?
    }

    /// The in-place series' own fault points, reached only under `in-place`.
    static let inPlaceFaults: Set<FaultPoint> = [.gmemAttributesNoMem, .gmemSafeRefcount]

    /// The faults a policy's rows inject: every point its flows reach.
    static func conversionFaults(_ p: ConversionPolicy) -> [FaultPoint?] {
        [nil] + FaultPoint.allCases.filter { p == .inPlace || !inPlaceFaults.contains($0) }.map { Optional($0) }
    }

    /// Every row of the table, in order.
    public static var specs: [Spec] {
        var out: [Spec] = []
        for p in ConversionPolicy.allCases {
            for f in conversionFaults(p) {
                let id = "004-\(p.rawValue)-\(f?.rawValue ?? "no-fault")"
                out.append(Spec(id: id, design: "seed 004: \(p.rawValue)", condition: f.map { "fault: \($0.rawValue)" } ?? "no fault",
                                build: .host(HostModels.Conversion(policy: p, faultPoints: f.map { [$0] } ?? [], maxFaults: f == nil ? 0 : 1))))
            }
            out.append(Spec(id: "004-\(p.rawValue)-demote-busy-scattered", design: "seed 004: \(p.rawValue)",
                            condition: "fault: demote-busy, S-EPT pages scattered (DPAMT)",
                            build: .host(HostModels.Conversion(policy: p, faultPoints: [.demoteBusy], maxFaults: 1, placement: .scattered))))
        }
        for (v, fix) in [("6.12", false), ("6.16", true)] {
            out.append(Spec(id: "001-kexec-\(v)", design: "seed 001: kexec \(fix ? "with" : "without") accepting destinations at load",
                            condition: "kernel \(v), 4 GiB TD, 256 MiB initrd, both syscalls, ≤1 workload phase before the load",
                            build: .kexec(KexecModel.Config(kernel: v))))
        }
        for (v, fix) in [("6.12", false), ("6.16", true)] {
            out.append(Spec(id: "001-kexec-2vcpu-\(v)", design: "seed 001: kexec \(fix ? "with" : "without") accepting destinations at load",
                            condition: "kernel \(v), vCPU 0 loads a segment at 6 MiB and reboots while vCPU 1 accepts 4-8 MiB (accept-memory model)",
                            build: .acceptMemory(AcceptMemoryModel.Config.kexecWhileAccepting(kernel: v))))
        }
        for trusts in [true, false] {
            out.append(Spec(id: "18-adversary-\(trusts ? "trusting" : "linux")",
                            design: "adversarial host vs a guest that \(trusts ? "trusts" : "does not trust") ALREADY_ACCEPTED",
                            condition: trusts ? "edk2 TdAcceptPages (an SVSM before PR 506); ≤2 of remove/readd/remap/refuse-aug"
                                : "Linux tdx_accept_memory(); ≤2 of remove/readd/remap/refuse-aug",
                            build: .adversarial(HostModels.Adversarial(trustsAlreadyAccepted: trusts))))
        }
        return out
    }

    /// Explores one row within `depth` steps (kexec rows are explored to the
    /// end: their model is finite and small).
    /// - Complexity: O(states × enabled steps × depth) host commands (one
    ///   replay per transition); the kexec rows boot the guest once per state.
    public static func run(_ spec: Spec, depth: Int) throws -> Row {
        switch spec.build {
        case .notModelled(let why):
            return Row(spec: spec, states: nil, transitions: 0, depthReached: 0, complete: false, findings: [], notModelled: why)
        case .host(let c):
            let m = try c.model()
            return row(spec, m, Explorer(m, bounds: .init(maxDepth: depth)).run()) { hostScenarioFile(m, $0, $1, spec) }
        case .adversarial(let a):
            let m = try a.model()
            return row(spec, m, Explorer(m, bounds: .init(maxDepth: depth + 1)).run()) { hostScenarioFile(m, $0, $1, spec) }
        case .acceptMemory(let c):
            let m = try AcceptMemoryModel(c)
            return row(spec, m, Explorer(m).run()) { path, v in m.scenarioFile(path, violation: v, checkFile: spec.id) }
        case .kexec(let k):
            let m = try KexecModel(k)
            return row(spec, m, Explorer(m).run()) { path, v in
                "# cocomem scenario: a counterexample `cocomem verdicts --only \(spec.id)` found (docs/CHECKER.md)\n"
                    + "# \(v.invariant): \(v.detail)\n" + m.scenarioFile(path)
            }
        }
    }

    static func row<M: TransitionSystem>(_ spec: Spec, _ m: M, _ r: Explorer<M>.Result,
                                         file: ([ModelStep], Violation) -> String) -> Row where M.State == ReplayedState, M.Action == ModelStep {
        let findings = r.counterexamples.map { c -> Finding in
            var s = c.initial
            var trace: [TraceStep] = []
            for a in c.actions {
                s = m.apply(a, to: s)
                trace.append(TraceStep(step: a, observed: s.observed))
            }
            let name = "\(spec.id)-\(c.violation.invariant.replacingOccurrences(of: ".", with: "-")).yaml"
            return Finding(invariant: c.violation.invariant, detail: c.violation.detail, trace: trace,
                           scenarioFile: file(c.actions, c.violation), fileName: name)
        }
        return Row(spec: spec, states: r.states, transitions: r.transitions, depthReached: r.depthReached, complete: r.complete,
                   findings: findings, notModelled: nil)
    }

    static func hostScenarioFile(_ m: HostCommandModel, _ path: [ModelStep], _ v: Violation, _ spec: Spec) -> String {
        let body = m.scenario(path).split(separator: "\n", omittingEmptySubsequences: false).map { "        " + $0 }.joined(separator: "\n")
        return """
        # cocomem scenario: a counterexample `cocomem verdicts --only \(spec.id)` found (docs/CHECKER.md)
        # \(v.invariant): \(v.detail)
        boot: false
        steps:
          - host:
              commands: |
        \(body.trimmingTrailingWhitespaceLines())
              check-invariants: true

        """
    }

    /// The table as Markdown: one line per row, then each finding's trace.
    /// - Complexity: O(rows + trace steps).
    public static func markdown(_ rows: [Row], depth: Int, scenarioDirectory: String) -> String {
        var t = "| row | design | condition | states | depth | invariants broken |\n|---|---|---|---|---|---|\n"
        for r in rows {
            let broken: String
            if let why = r.notModelled { broken = "not modelled: \(why)" }
            else if r.findings.isEmpty { broken = "none" + (r.complete ? "" : " within the bound") }
            else { broken = r.findings.map { "`\($0.invariant)`" }.joined(separator: ", ") }
            let states = r.states.map { "\($0)" + (r.complete ? "" : "+") } ?? "-"
            t += "| `\(r.spec.id)` | \(r.spec.design) | \(r.spec.condition) | \(states) | \(r.notModelled == nil ? "\(r.depthReached)" : "-") | \(broken) |\n"
        }
        t += "\n`states` is the number of distinct states stored; `+` marks a search the depth bound (\(depth) steps; the adversarial rows "
            + "\(depth + 1)) cut short, so \"none\" holds within it only. Reproduce a row with `cocomem verdicts --only ROW`.\n"
        let withFindings = rows.filter { !$0.findings.isEmpty }
        if !withFindings.isEmpty { t += "\n### Shortest traces\n" }
        // A design's finding that a fault does not change (the same
        // invariant by the same steps) is printed once, then referred to.
        var printed: [String: String] = [:]
        for r in withFindings {
            for f in r.findings {
                t += "\n**`\(r.spec.id)`: `\(f.invariant)`**: \(f.detail)  \n`cocomem run \(scenarioDirectory)/\(f.fileName)`\n"
                let key = r.spec.design + "|" + f.invariant + "|" + f.trace.map(\.step.command).joined(separator: ";")
                if let first = printed[key] { t += "\nThe same trace as `\(first)`.\n"; continue }
                printed[key] = r.spec.id
                t += "\n"
                for (i, s) in f.trace.enumerated() {
                    t += "\(i + 1). \(s.step.actor): `\(s.step.command.trimmingCharacters(in: .whitespaces))` (\(s.step.call)) → \(s.observed)\n"
                }
            }
        }
        return t
    }
}

extension String {
    /// Lines with trailing spaces removed (a YAML block keeps them).
    func trimmingTrailingWhitespaceLines() -> String {
        split(separator: "\n", omittingEmptySubsequences: false).map { line in
            var l = Substring(line)
            while l.last == " " { l = l.dropLast() }
            return String(l)
        }.joined(separator: "\n")
    }

}
