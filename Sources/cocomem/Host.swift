import ArgumentParser
import Checking
import Foundation
import KVM
import MemoryModel
import Reports
import Simulation

struct Host: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a host-side TDX scenario (KVM's TDX MMU on the TDX module): operation log, debugfs stats, SEAMCALLs, outcome.",
        discussion: "Without FILE, runs the built-in 4 GiB / 8-vCPU TD of seed 004's [5] and [6]; --print-default shows it as a file to edit.")
    @Argument(help: "Host scenario file (see --print-default for the format)") var file: String?
    @OptionGroup var output: JSONOption
    @Flag(help: "Print the operation log") var log = false
    @Flag(name: .customLong("print-default"), help: "Print the built-in scenario and exit") var printDefault = false
    @Option(help: "Override: lpage_info pre-check") var precheck: OnOff?
    @Option(name: .customLong("accept-level"), help: "Override: how KVM honours the guest's accept level") var acceptLevel: AcceptLevelPolicy?
    @Option(help: "Override: conversion policy") var policy: ConversionPolicy?
    @Option(help: "Run the scenario on this host: tdx (KVM's TDX MMU and the TDX module) or snp (KVM's SEV-SNP host and the RMP); default: the td line's platform=, else tdx") var platform: HostScenario.Platform?
    @Flag(name: .customLong("check-invariants"), help: "Check every invariant after every host operation") var check = false
    @OptionGroup var calibration: CalibrationOption
    @OptionGroup var printScenario: PrintScenarioOption
    @OptionGroup var failOn: FailOnOption
    @OptionGroup var report: ReportOption
    @OptionGroup var record: RecordOptions
    @Option(name: .customLong("host-trace"), help: ArgumentHelp("Also write what the host sees of the guest's memory use in the scenario's commands (TDX: EPT-violation exits with GPA and accept level, conversions; --platform snp: nested page faults by their flags, page-state changes with their answers) in virtual time to FILE, one JSON object a line, as boot --host-trace does, and summarise it in the report (docs/HOST.md)", valueName: "FILE"))
    var hostTrace: String?

    func run() throws {
        if printDefault { print(platform == .snp ? HostScenario.snpSplit16G : HostScenario.seed004); return }
        let inputs = (file.map { [$0] } ?? []) + (calibration.calibration.map { [$0] } ?? [])
        try report.check(inputs: inputs)
        try record.check(inputs: inputs, outputs: report.report.map { [("--report", $0)] } ?? [], textReport: !output.json)
        if let hostTrace {
            try checkArtifactPaths([("--host-trace", hostTrace)], inputs: inputs,
                                   outputs: (report.report.map { [("--report", $0)] } ?? []) + (record.trace.map { [("--trace", $0)] } ?? []))
        }
        var text = platform == .snp ? HostScenario.snpSplit16G : HostScenario.seed004
        if let f = file {
            // A regular file of at most 16 MiB: a FIFO hung here.
            text = try readTextFile(f, what: "host scenario", maxBytes: 16 << 20)
        }
        if printScenario.on { printScenario.print(scenarioFile(text: file == nil ? nil : text)); return }
        var s = try HostScenario.parse(text, platform: platform)
        if s.platform == .snp { try runSNP(s, text: text); return }
        if let precheck { s.options.lpagePrecheck = precheck.isOn }
        if let acceptLevel { s.options.acceptLevelPolicy = acceptLevel }
        if let policy {
            s.options.conversionPolicy = policy
            try s.options.checkAttributesSwitch()
            if policy != .inPlace, s.commands.contains(where: { if case .hostUse(let u, _) = $0 { u != .hostmap && u != .hostread } else { false } }) {
                throw CocomemError(.invalidArgument, "--policy \(policy.rawValue): the scenario's pin and unpin commands need policy in-place")
            }
        }
        if check { s.options.checkInvariants = true }
        // The text report starts with the log: its lines are printed as the
        // run produces them instead of being kept (the JSON object keeps a
        // bounded log, OperationLog).
        var streamed = false
        let sink: ((String) -> Void)? = log && !output.json ? { line in
            if !streamed { print("Operation log:"); streamed = true }
            print("  " + line)
        } : nil
        let r = try HostRun(s, calibration: calibration.load(), log: log, logSink: sink, traceHost: hostTrace != nil)
        var violations: [String]? = nil
        if check { violations = try r.runChecked() } else { try r.run() }
        if streamed { print("") }
        if output.json {
            print(r.json(violations: violations).embedding(scenarioFile(text: file == nil ? nil : text)).serialized())
        } else {
            print(r.text(violations: violations) + record.stripText([("host", r.record)], json: false), terminator: "")
        }
        try report.write(r.htmlReport)
        try record.write([("host", r.record)])
        if let hostTrace, let t = r.vm.hostTrace { try writeArtifact(hostTrace, t.jsonLines) }
        try failOn.check(r.outcomeString)
    }

    /// The SNP host: same commands, its own report (text or JSON).
    func runSNP(_ scenario: HostScenario, text: String) throws {
        var s = scenario
        guard precheck == nil, acceptLevel == nil, policy == nil || policy == .inPlace else {
            throw ValidationError("--precheck, --accept-level and --policy (other than in-place) are TDX host options; the SNP host has none of them")
        }
        if policy == .inPlace { s.options.conversionPolicy = .inPlace }
        guard report.report == nil, record.trace == nil, !record.strip else {
            throw ValidationError("--report, --trace and --strip are not available for the SNP host")
        }
        if check { s.options.checkInvariants = true }
        let r = try SNPHostRun(s, calibration: calibration.load(), log: log, traceHost: hostTrace != nil)
        try r.run()
        let checked = s.options.checkInvariants
        if output.json {
            print(r.json(checked: checked).embedding(scenarioFile(text: file == nil ? nil : text)).serialized())
        } else {
            print(r.text(checked: checked), terminator: "")
        }
        if let hostTrace, let t = r.vm.hostTrace { try writeArtifact(hostTrace, t.jsonLines) }
        try failOn.check(r.outcomeString)
    }
}
