import CoCoGuest
import CostModel
import Firmware
import GuestKernel
import MemoryModel
import Reports
import Simulation
import TestSupport
import Testing

/// Outcomes that tell the truth (issue 13): a run that completes but loses
/// or clamps memory is `degraded: <reasons>`, not `ok`.
@Suite struct OutcomeTests {
    @Test func okBootHasNoDegradations() throws {
        let r = try bootResult { $0.memory = 4 << 30 }
        #expect(r.degradations.isEmpty)
        #expect(r.outcomeString == "ok")
        #expect(r.json.serialized().contains("\"degradations\": []"))
    }

    /// A kernel without CONFIG_UNACCEPTED_MEMORY treats type 15 as reserved:
    /// the run completes, but most of the guest is gone.
    @Test func unawareKernelLosingTypeFifteenIsDegraded() throws {
        let r = try bootResult { $0.memory = 8 << 30; $0.loader.kernelSupportsUnaccepted = false }
        #expect(r.outcome == .ok)
        #expect(r.firmware.lostBytes > 0)
        #expect(r.isDegraded)
        let lost = ByteCount(r.firmware.lostBytes).description
        #expect(r.outcomeString == "degraded: kernel without CONFIG_UNACCEPTED_MEMORY: \(lost) of 8G is EFI type 15 (unaccepted), treated as reserved and lost")
        #expect(r.text.contains("Outcome: degraded: kernel without CONFIG_UNACCEPTED_MEMORY"))
        let json = r.json.serialized()
        #expect(json.contains("\"outcome\": \"degraded: kernel without CONFIG_UNACCEPTED_MEMORY"))
        #expect(json.contains("\"degradations\": ["))
    }

    /// The loader calling ExitBootServices keeps the stub from turning type 15 into RAM.
    @Test func loaderExitBootServicesLosingTypeFifteenIsDegraded() throws {
        let r = try bootResult { $0.memory = 8 << 30; $0.kernel.version = .v6_12; $0.loader.loaderCallsExitBootServices = true }
        #expect(r.firmware.lostBytes == 6 << 30)
        #expect(r.outcomeString.hasPrefix("degraded: the EFI stub did not run (the loader called ExitBootServices): "))
    }

    /// A workload larger than the guest is clamped by the allocator's
    /// out-of-memory stop: requested and given are reported.
    @Test(arguments: [Workload.touch(128 << 30), .pageCache(128 << 30), .hugetlb(128 << 30)])
    func workloadLargerThanTheGuestIsDegraded(_ w: Workload) throws {
        let r = try bootResult { $0.memory = 4 << 30; $0.workload = w }
        #expect(r.outcome == .ok)
        #expect(r.degradations.count == 1)
        let d = try #require(r.degradations.first)
        #expect(d.hasPrefix("workload ") && d.contains("=128G clamped: requested 128G, given "))
        #expect(d.hasSuffix("(page allocation failure: out of memory)"))
        #expect(r.outcomeString == "degraded: " + d)
    }

    @Test func rateWorkloadRunningOutOfMemoryIsDegraded() throws {
        let r = try bootResult { $0.memory = 4 << 30; $0.workload = .rate(bytesPerSecond: 2 << 30, seconds: 5) }
        let d = try #require(r.degradations.first)
        #expect(d.hasPrefix("workload rate=2G:5 clamped: second 2 of 5 was given "))
        #expect(d.hasSuffix("of 2G (page allocation failure: out of memory), and the workload stopped there"))
    }

    @Test func workloadThatFitsIsOk() throws {
        let r = try bootResult { $0.memory = 4 << 30; $0.workload = .phases([.touch(1 << 30), .pageCache(512 << 20)]) }
        #expect(r.outcomeString == "ok")
    }

    /// Both degradations of one run are reported, joined by "; ".
    @Test func reasonsAreJoined() throws {
        let r = try bootResult { $0.memory = 8 << 30; $0.loader.kernelSupportsUnaccepted = false; $0.workload = .touch(8 << 30) }
        #expect(r.degradations.count == 2)
        #expect(r.outcomeString == "degraded: " + r.degradations.joined(separator: "; "))
    }

    /// A kexec of a degraded guest that otherwise succeeds reports the degraded first boot.
    @Test func kexecFollowsTheFirstBoot() throws {
        var s = Scenario()
        s.memory = 8 << 30
        s.loader.kernelSupportsUnaccepted = false
        let k = try BootSimulation(scenario: s, calibration: Calibration.builtIn()).runKexec(KexecPlan())
        #expect(k.first.isDegraded)
        #expect(k.outcome.hasPrefix("degraded: kernel without CONFIG_UNACCEPTED_MEMORY"))
        #expect(k.text.contains("outcome degraded: "))
    }

    @Test func outcomeKinds() {
        #expect(OutcomeKind.of("ok") == "ok")
        #expect(OutcomeKind.of("degraded: a; b") == "degraded")
        #expect(OutcomeKind.of("guest_terminated: kernel panic: x") == "guest_terminated")
        #expect(OutcomeKind.of("load failed: no room") == "load_failed")
        #expect(OutcomeKind.of("vm_dead: x") == "vm_dead")
    }
}
