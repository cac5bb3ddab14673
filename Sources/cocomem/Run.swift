import ArgumentParser
import Checking
import Foundation
import MemoryModel
import Reports
import Simulation

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a scenario file: the boot, then each step (kexec, dump, host); prints each report, or one JSON object.",
        discussion: "The file is YAML or JSON in the schema of docs/SCENARIOS.md; a JSON result of any command is accepted too (its scenario_file is run). boot, dump, kexec and host print the file their flags describe with --print-scenario.")
    @Argument(help: "Scenario file (YAML or JSON; a command's JSON result works too)") var file: String
    @Option(help: "Directory the dump steps' elf: and output: paths are relative to (created if missing)") var out = "."
    @OptionGroup var output: JSONOption
    @OptionGroup var failOn: FailOnOption
    @OptionGroup var progress: ProgressOption
    @OptionGroup var report: ReportOption
    @OptionGroup var record: RecordOptions

    func run() throws {
        try report.check(inputs: [file])
        try record.check(inputs: [file], outputs: report.report.map { [("--report", $0)] } ?? [], textReport: !output.json)
        let f = try ScenarioFile.load(path: file)
        let traces = f.hostTracePaths(in: out)
        let writes = !traces.isEmpty || f.steps.contains { if case .dump(let d) = $0 { !d.estimate && !d.memUsage && (d.elf ?? d.output) != nil } else { false } }
        if writes, out != ".", !FileManager.default.fileExists(atPath: out) {
            do { try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true) } catch {
                throw CocomemError(.io, "cannot create output directory '\(out)'")
            }
        }
        // The host steps' host-trace: files, checked before anything runs as --report and --trace are.
        if !traces.isEmpty {
            try checkArtifactPaths(traces.map { ("host-trace", $0) }, inputs: [file],
                                   outputs: (report.report.map { [("--report", $0)] } ?? []) + (record.trace.map { [("--trace", $0)] } ?? []))
        }
        let r = try f.run(outputDirectory: out, checkedHostRun: { try $0.runChecked() }, progress: progress.reporter())
        print(output.json ? r.json.serialized() : r.text + record.stripText(r.records, json: false), terminator: output.json ? "\n" : "")
        try report.write(r.htmlReport)
        try record.write(r.records)
        try failOn.check(r.outcome)
    }
}
