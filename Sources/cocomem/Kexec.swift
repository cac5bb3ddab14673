import ArgumentParser
import GuestKernel
import MemoryModel
import Reports
import Simulation

struct Kexec: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Boot a guest, kexec_load or kexec_file_load a new kernel into it, kexec -e, and boot the next kernel from the acceptance state the first left.",
        discussion: "Segments are placed as the kernel (kexec_file_load) or kexec-tools (kexec_load) place them on x86-64. Kernels 6.15 and later accept the destinations at load; older ones let the relocation touch unaccepted memory, which kills the guest.")
    @OptionGroup var guest: ScenarioOptions
    @Option(help: "kexec_file_load (kexec -s) or kexec_load (kexec -c)") var syscall: KexecSyscall = .fileLoad
    @Flag(help: "Load a crash image into the crashkernel= region (kexec -p); it is only loaded") var crash = false
    @Option(name: .customLong("crashkernel"), help: "crashkernel= reservation (default: 256M with --crash, none otherwise)") var crashKernel: String?
    @Option(help: "Initrd size (0: none)") var initrd = "64M"
    @Option(name: .customLong("kernel-size"), help: "bzImage file size") var kernelSize = "14M"
    @Option(name: .customLong("init-size"), help: "setup_header.init_size (default: the scenario's decompressed kernel footprint, 64M)") var initSize: String?
    @Option(name: .customLong("kernel-alignment"), help: "setup_header.kernel_alignment (CONFIG_PHYSICAL_ALIGN), a power of two of at least 4K") var kernelAlignment = "2M"
    @Option(name: .customLong("cmdline-len"), help: "Command line length including the NUL, 1 to 1048576") var cmdlineLen: UInt64 = 128
    @Option(name: .customLong("next-kernel"), help: "Release of the kernel kexec boots, as --kernel (default: the running one's)") var nextKernel: String?
    @Flag(name: .customLong("load-only"), help: "Load without executing (kexec -l)") var loadOnly = false
    @Option(name: .customLong("next-workload"), help: "What the next kernel runs after its boot, as --workload (none, touch=SIZE|all, pagecache=SIZE, hugetlb=SIZE, rate=SIZE:SECONDS)") var nextWorkload = "none"
    @Flag(name: .customLong("dmesg"), help: "Print only the memory lines of the next kernel's dmesg, as boot --dmesg does (--json wins)") var dmesgOnly = false
    @OptionGroup var output: JSONOption
    @OptionGroup var printScenario: PrintScenarioOption
    @OptionGroup var failOn: FailOnOption
    @OptionGroup var report: ReportOption
    @OptionGroup var record: RecordOptions

    func run() throws {
        let f = try scenarioFile()
        if printScenario.on { printScenario.print(f); return }
        guard case .kexec(let k)? = f.steps.first else { return }
        try report.check(inputs: guest.inputs)
        try record.check(inputs: guest.inputs, outputs: report.report.map { [("--report", $0)] } ?? [], textReport: !output.json && !dmesgOnly)
        let r = try f.runKexec(k, calibration: try guest.calibration.load())
        let records = [("kexec", r.record)]
        if dmesgOnly && !output.json {
            // The next kernel's log; with no next kernel (load only, a failed load or reboot) there is none.
            guard let second = r.second else {
                throw CocomemError(.unsupported, "--dmesg prints the next kernel's log, and no next kernel booted (\(r.loadOutcome); \(r.rebootOutcome))")
            }
            print(second.dmesg().map(\.formatted).joined(separator: "\n"))
        } else {
            print(output.json ? r.json.embedding(f).serialized() : r.text + record.stripText(records, json: false), terminator: output.json ? "\n" : "")
        }
        try report.write(r.htmlReport)
        try record.write(records)
        try failOn.check(r.outcome)
    }
}
