import CoCoGuest
import CostModel
import Firmware
import GuestKernel
import MemoryModel
@testable import Simulation
import TestSupport
import Testing

/// The boot CPU's tick during `mem_encrypt_init()` (`KernelConfig.earlyTickHz`,
/// `--early-tick`) cutting the SWIOTLB's MapGPA: KVM answers
/// TDVMCALL_STATUS_RETRY at the end of each 2 MiB piece (but the last) by
/// which a tick has become pending since the call began, and the guest
/// takes the interrupt and issues the rest again. Expectations come from
/// the cost table and the pool's size, not from a run.
@Suite struct EarlyTickTests {
    static func boot(hz: UInt64, shared: Bool = true, _ f: (inout Scenario) -> Void = { _ in }) throws -> BootResult {
        try bootResult { s in
            s.platform = .tdx
            s.kernel.swiotlbShared = shared
            s.kernel.earlyTickHz = hz
            f(&s)
        }
    }

    /// Without a tick the pool is one TDVMCALL (the model before); with one
    /// at 1000 Hz every piece ends a period or more after the last tick was
    /// taken (a piece is 512 4K leaves, each BLOCKed, TRACKed and REMOVEd:
    /// far over 1 ms), so every piece but the last is its own TDVMCALL. The
    /// host's work is the same (every count but the retries' equal), and
    /// the boot is longer by exactly the retries' cost.
    @Test func aTickAt1000HzCutsEveryPiece() throws {
        let none = try Self.boot(hz: 0), tick = try Self.boot(hz: 1000)
        let costs = CostTable(try Calibration.builtIn())
        let pool = try #require(tick.kernel?.swiotlbRange)
        let exits = divRoundUp(pool.size, 2 << 20)
        let leaf = costs.vcpuPicoseconds[Op.tdxBlock.index] + costs.vcpuPicoseconds[Op.tdxTrack.index] + costs.vcpuPicoseconds[Op.tdxRemove.index]
        #expect(512 * leaf > 1_000_000_000, "a piece of 4K leaves takes longer than a 1000 Hz period")
        #expect(none.sharedMemory.calls == 1 && none.sharedMemory.retries == 0 && none.counts[.tdxMapGPARetry] == 0)
        let m = tick.sharedMemory
        #expect(m.vmmExits == exits && m.retries == exits - 1 && m.calls == exits)
        var expected = none.counts
        expected.add(.tdxMapGPARetry, m.retries)
        #expect(tick.counts == expected)
        var n = none.sharedMemory
        n.calls = m.calls; n.retries = m.retries
        #expect(n == m && tick.committedBytes == none.committedBytes && tick.sharedBytes == none.sharedBytes)
        var added = PhaseClock(vcpus: 1)
        added.charge(.tdxMapGPARetry, m.retries, vcpu: 0, costs: costs)
        #expect(abs((tick.times.kernelBoot - none.times.kernelBoot) - added.seconds(costs)) < 1e-9)
        #expect(tick.outcome == .ok)
    }

    /// A slower tick cuts no more often, and never without the pool made
    /// shared (no conversion, nothing to cut); SNP has no such answer.
    @Test func fewerTicksFewerCuts() throws {
        let fast = try Self.boot(hz: 1000), slow = try Self.boot(hz: 100)
        #expect(slow.sharedMemory.retries <= fast.sharedMemory.retries && slow.sharedMemory.calls == slow.sharedMemory.retries + 1)
        let noPool = try Self.boot(hz: 1000, shared: false)
        #expect(noPool.sharedMemory == SharedMemoryStats() && noPool.counts[.tdxMapGPARetry] == 0)
        let snp = try bootResult { s in
            s.platform = .snp; s.firmware = .ovmfSNP; s.kernel.swiotlbShared = true; s.kernel.earlyTickHz = 1000
        }
        let snpNone = try bootResult { s in s.platform = .snp; s.firmware = .ovmfSNP; s.kernel.swiotlbShared = true }
        #expect(snp.sharedMemory == snpNone.sharedMemory && snp.counts == snpNone.counts)
    }

    /// Cut by ticks, the boot is the same stepped as in bulk.
    @Test func cutConversionBulkEqualsStepping() throws {
        let bulk = try Self.boot(hz: 250) { $0.memory = 2 << 30 }
        let step = try Self.boot(hz: 250) { $0.memory = 2 << 30; $0.stepByStep = true }
        #expect(bulk.sharedMemory.retries > 0)
        #expect(bulk.counts == step.counts && bulk.sharedMemory == step.sharedMemory && bulk.committedBytes == step.committedBytes)
        #expect(bulk.times.kernelBoot == step.times.kernelBoot)
    }

    /// The scenario key: off (0) by default and not printed then; the
    /// CONFIG_HZ choices only.
    @Test func scenarioKeyRoundTrips() throws {
        #expect(Scenario().kernel.earlyTickHz == 0)
        let f = try ScenarioFile.parse("guest:\n  memory: 4G\nkernel:\n  early-tick: 250\n", name: "t.yaml")
        #expect(f.scenario.kernel.earlyTickHz == 250)
        #expect(ScenarioFile(scenario: f.scenario).yaml.contains("early-tick: 250"))
        #expect(!ScenarioFile(scenario: Scenario()).yaml.contains("early-tick"))
        #expect(throws: CocomemError.self) { try ScenarioFile.parse("guest:\n  memory: 4G\nkernel:\n  early-tick: 123\n", name: "t.yaml") }
    }
}
