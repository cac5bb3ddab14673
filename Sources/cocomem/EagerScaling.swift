import ArgumentParser
import CostModel
import GuestKernel
import MemoryModel
import Reports
import Simulation


struct EagerScaling: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eager-scaling",
        abstract: "Time eager acceptance (accept_memory=eager) of a TDX guest's RAM above 4 GiB against the vCPU count: memblock_free_all() on the boot CPU, deferred init's padata workers, the host's locks and the write bandwidth in virtual time.",
        discussion: "One row per --vcpus value and the knee: the vCPU count from which the next count listed gains less than 10% (docs/CALIBRATION.md, 'Eager acceptance on many vCPUs'; docs/QUESTIONS.md).")
    @Option(help: "Guest memory (32G, 256G)") var memory = "32G"
    @Option(help: "Comma-separated vCPU counts") var vcpus = "1,2,4,8,16,32,64,128,256"
    @Option(name: .customLong("deferred-init"), help: "CONFIG_DEFERRED_STRUCT_PAGE_INIT (off: the boot CPU accepts everything in memblock_free_all())") var deferred: OnOff = .on
    @Option(help: "Host private mappings: tdx (4K, mainline KVM) or tdx-huge (2M)") var host: TDXHostModel = .tdx
    @Option(name: .customLong("tdx-module"), help: "TDX module S-EPT locking: 1.0 (AUG and SEPT.ADD exclusive) or 1.5 (shared)") var module: TDXModuleSEPTLocking = .v1_5
    @Option(help: "Guest kernel release (6.5 to 7.1; 6.5.0-6.5.8 hold unaccepted_memory_lock across the accept)") var kernel = "7.0"
    @Option(name: .customLong("gmem-lock-ns"), help: "How long adding one folio holds the guest_memfd mapping's xa_lock (an assumption)") var gmemLock: UInt64 = 100
    @Option(help: "Seed of the scheduler's ties") var seed: UInt64 = 0
    @OptionGroup var output: JSONOption
    @OptionGroup var calibration: CalibrationOption

    func run() throws {
        var c = EagerAcceptConfig(memoryBytes: try ByteCount.parseGuestMemory(memory).value, vcpus: 1)
        c.deferredStructPageInit = deferred.isOn
        c.host = host; c.module = module; c.gmemLockNanoseconds = gmemLock; c.seed = seed
        c.locking = try KernelVersion(parsing: kernel).acceptMemoryLocking
        let counts = try vcpus.split(separator: ",").map { f -> Int in
            guard let n = Int(f.filter { $0 != " " }), n >= 1 else {
                throw CocomemError(.invalidArgument, "--vcpus '\(vcpus)': expected comma-separated counts from 1 to 4096")
            }
            return n
        }
        guard !counts.isEmpty, counts.count <= 64 else { throw CocomemError(.invalidArgument, "--vcpus: 1 to 64 counts") }
        try c.validate()
        for n in counts { var k = c; k.vcpus = n; try k.validate() }
        let rows = try EagerAcceptScaling.sweep(c, vcpus: counts, calibration: try calibration.load())
        if output.json { print(EagerScalingReport.json(config: c, rows: rows).serialized()) }
        else { print(EagerScalingReport.text(config: c, rows: rows), terminator: "") }
    }
}
