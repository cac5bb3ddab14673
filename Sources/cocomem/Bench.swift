import ArgumentParser
import CoCoGuest
import Reports
import Simulation
import Validation

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time the simulator itself (wall clock, peak memory) on large guests.",
        discussion: "cocomem bench boots each size lazy and eager; cocomem bench --host-model --sizes 1T times the host model instead (fault in + accept at 2M and 4K, 10% conversions) on a TD of each size.")
    @Option(help: "Comma-separated guest sizes (default: 4G,64G,1T,4T; with --host-model: 1T)") var sizes: String?
    @Flag(name: .customLong("host-model"), help: "Time the host model (KVM's TDX MMU and the TDX module) instead of booting") var hostModel = false
    @Option(help: "With --host-model: tdx (KVM's TDX MMU and the TDX module) or snp (KVM's SEV-SNP host and the RMP)") var platform: PlatformKind?
    @Flag(help: "Time the HTML report, the trace and a 10,000-row sweep plot instead of booting") var reports = false
    @Option(name: .customLong("recording"), help: "Time what recording adds (issue 14) to a boot of each size with this workload (e.g. touch=1T), recording off against on") var recordingWorkload: String?

    func run() throws {
        if platform != nil, !hostModel { throw ValidationError("--platform chooses the host model; add --host-model") }
        if reports { print(try BenchRunner.runReports(), terminator: ""); return }
        let list = (sizes ?? (hostModel ? "1T" : "4G,64G,1T,4T")).split(separator: ",").map(String.init)
        if let w = recordingWorkload {
            for size in list { print(try BenchRunner.runRecording(size: size, workload: w), terminator: "") }
            return
        }
        if hostModel {
            for size in list {
                print(platform == .snp ? try BenchRunner.runSNPHost(size: size) : try BenchRunner.runHost(size: size), terminator: "")
            }
            return
        }
        print(try BenchRunner.run(sizes: list), terminator: "")
    }
}
