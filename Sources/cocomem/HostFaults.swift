import ArgumentParser
import CostModel
import KVM
import Reports

struct HostFaults: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "host-faults",
        abstract: "Time 4K accept faults on one TDX vCPU while the others idle with the tick and the host converts pages: mmu_lock and the TDX module's locks in virtual time.",
        discussion: "vCPU 0 takes --faults 4K accept faults back to back; the other vCPUs are halted and woken by their tick (--hz); --conversions-per-second zaps private 4K pages under mmu_lock held for write. Prints the cost per fault, lock waits and BUSY retries (docs/HOST.md, 'Locks on the fault path').")
    @Option(help: "vCPUs in the TD (vCPU 0 faults, the rest idle)") var vcpus = 248
    @Option(help: "Tick rate of idle vCPUs (CONFIG_HZ; 0: no tick)") var hz: UInt64 = 1000
    @Option(help: "4K accept faults on vCPU 0") var faults: UInt64 = 10_000
    @Option(name: .customLong("conversions-per-second"), help: "Private-to-shared 4K conversions a second (0: none)") var conversions: UInt64 = 0
    @Option(name: .customLong("epoch-section-ns"), help: "How long TDH.VP.ENTER and TDH.MEM.TRACK hold the TD epoch lock (an assumption)") var epochSection: UInt64 = 50
    @Option(help: "Seed of the tick phases and the scheduler's ties") var seed: UInt64 = 0
    @OptionGroup var output: JSONOption
    @OptionGroup var calibration: CalibrationOption

    func run() throws {
        let c = HostFaultContentionConfig(vcpus: vcpus, hz: hz, faults: faults, conversionsPerSecond: conversions,
                                          epochSectionNanoseconds: epochSection, seed: seed)
        try c.validate()
        let r = HostFaultContention(config: c, costs: CostTable(try calibration.load())).run()
        if output.json { print(r.json(config: c).serialized()) } else { print(r.text(config: c), terminator: "") }
    }
}
