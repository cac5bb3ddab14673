import ArgumentParser
import GuestKernel
import KVM
import Reports
import Simulation

struct Boot: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Boot a simulated TD or SNP guest and report what was accepted, by whom and when.")
    @OptionGroup var guest: ScenarioOptions
    @OptionGroup var output: JSONOption
    @Flag(name: .customLong("meminfo"), help: "Print only /proc/meminfo (--json wins when both are given)") var meminfoOnly = false
    @Flag(name: .customLong("dmesg"), help: "Print only the memory lines of the guest's dmesg, in the kernel's formats with virtual-time stamps (--json wins; not with --meminfo or --zoneinfo)") var dmesgOnly = false
    @Flag(name: .customLong("zoneinfo"), help: "Print only /proc/zoneinfo, the lines the model keeps (--json wins; not with --meminfo)") var zoneinfoOnly = false
    @OptionGroup var printScenario: PrintScenarioOption
    @OptionGroup var failOn: FailOnOption
    @OptionGroup var progress: ProgressOption
    @OptionGroup var report: ReportOption
    @OptionGroup var record: RecordOptions
    @Option(name: .customLong("host-trace"), help: ArgumentHelp("Also write what the host sees of the guest's memory use (TDX: EPT-violation exits with GPA and accept level, MapGPA; SEV-SNP with --host snp: nested page faults by their flags, page-state changes with their answers) in virtual time to FILE, one JSON object a line, and summarise it and what the host can infer in the report (docs/HOST.md)", valueName: "FILE"))
    var hostTrace: String?

    func validate() throws {
        if meminfoOnly && zoneinfoOnly { throw ValidationError("--meminfo and --zoneinfo each print one file; give one of them") }
        if dmesgOnly && (meminfoOnly || zoneinfoOnly) { throw ValidationError("--dmesg prints the boot log alone; give one of --dmesg, --meminfo and --zoneinfo") }
    }

    func run() throws {
        if printScenario.on { printScenario.print(try scenarioFile()); return }
        let inputs = guest.inputs
        try report.check(inputs: inputs)
        try record.check(inputs: inputs, outputs: report.report.map { [("--report", $0)] } ?? [], textReport: !output.json && !meminfoOnly && !zoneinfoOnly && !dmesgOnly)
        if let hostTrace {
            try checkArtifactPaths([("--host-trace", hostTrace)], inputs: inputs,
                                   outputs: (report.report.map { [("--report", $0)] } ?? []) + (record.trace.map { [("--trace", $0)] } ?? []))
        }
        let r = try guest.bootWithBand(progress: progress.reporter(), traceHost: hostTrace != nil)
        if output.json { print(r.json.embedding(try scenarioFile()).adding("host_trace", r.hostTraceJSON).serialized()) } else if meminfoOnly { print(r.kernel?.procMeminfo ?? "", terminator: "") } else if zoneinfoOnly { print(r.kernel?.procZoneinfo ?? "", terminator: "") } else if dmesgOnly { print(r.dmesg().map(\.formatted).joined(separator: "\n")) } else { print(r.text + r.hostTraceText + record.stripText([("boot", r.record)], json: false), terminator: "") }
        try report.write(r.htmlReport)
        try record.write([("boot", r.record)])
        if let hostTrace, let t = r.host?.hostTrace ?? r.snpHost?.hostTrace { try writeArtifact(hostTrace, t.jsonLines) }
        try failOn.check(r.outcomeString)
    }
}
