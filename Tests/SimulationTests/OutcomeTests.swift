import CoCoGuest
import CostModel
import Firmware
import GuestKernel
import KVM
import MemoryModel
import Reports
import Simulation
import TDXModule
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
    /// out-of-memory stop: requested and given are reported. (A page-cache
    /// workload is not: the kernel reclaims the older page cache instead,
    /// `ReclaimTests` in GuestKernelTests.)
    @Test(arguments: [Workload.touch(128 << 30), .hugetlb(128 << 30)])
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

    /// A run's outcome is its first failure even after a degraded boot.
    @Test func runReportsAFailureBeforeADegradedBoot() throws {
        var s = Scenario()
        s.kernel.version = .v6_12
        s.workload = .touch(8 << 30)
        var k = ScenarioFile.KexecStep()
        k.initrdBytes = 256 << 20
        let r = try ScenarioFile(scenario: s, steps: [.kexec(k)]).run()
        #expect(r.boot?.isDegraded == true)
        #expect(OutcomeKind.of(r.outcome) == "load_failed")
        let degradedOnly = try ScenarioFile(scenario: s).run()
        #expect(degradedOnly.outcome.hasPrefix("degraded: workload touch=8G clamped: requested 8G, given "))
    }

    @Test func outcomeKinds() {
        #expect(OutcomeKind.of("ok") == "ok")
        #expect(OutcomeKind.of("degraded: a; b") == "degraded")
        #expect(OutcomeKind.of("guest_terminated: kernel panic: x") == "guest_terminated")
        #expect(OutcomeKind.of("load failed: no room") == "load_failed")
        #expect(OutcomeKind.of("vm_dead: x") == "vm_dead")
    }

    /// Options the model would ignore on this platform or firmware are
    /// errors from validate() (so scenario files get them too), naming the option.
    struct Refused: Sendable, CustomTestStringConvertible {
        var option: String
        var change: @Sendable (inout Scenario) -> Void
        var testDescription: String { option }
    }

    static let snp: @Sendable (inout Scenario) -> Void = { $0.platform = .snp; $0.firmware = .ovmfSNP }

    @Test(arguments: [
        Refused(option: "--host tdx-huge") { snp(&$0); $0.tdxHost = .tdxHuge },
        Refused(option: "--gmem hugetlb-2m") { snp(&$0); $0.gmemBacking = .hugetlb2M },
        Refused(option: "--host-mapping 2m") { $0.hostMapping = .map2M },
        Refused(option: "--snp-prefault") { $0.snpPrefault = true },
        Refused(option: "--snp-firmware-without-protocol") { $0.snpAcceptanceProtocol = false },
        Refused(option: "--no-acceptance-protocol-call") { $0.loader.stubCallsAcceptanceProtocol = false },
        Refused(option: "--fw-partial-accept 512M") { $0.partialAcceptBytes = 512 << 20 },
        Refused(option: "--fw-partial-accept 0") { snp(&$0); $0.partialAcceptBytes = 0 },
        // An eager tdvf-2022 boot is the firmware accepting everything (preAcceptPlan's eagerFirmware).
        Refused(option: "--fw-partial-accept 512M") { $0.firmware = .tdvf2022; $0.lazy = false; $0.kernel.lazyAccept = false; $0.partialAcceptBytes = 512 << 20 },
    ])
    func optionThatCannotApplyIsAnError(_ c: Refused) throws {
        var s = Scenario()
        s.memory = 2 << 30
        c.change(&s)
        let e = #expect(throws: CocomemError.self) { try s.validate() }
        #expect(e?.message.hasPrefix("\(c.option) cannot apply: ") == true)
        #expect(throws: CocomemError.self) { try BootSimulation(scenario: s, calibration: Calibration.builtIn()).run() }
    }

    /// Defaults never trigger the errors, and each option is fine where it applies.
    @Test func optionsWhereTheyApplyAreAccepted() throws {
        var snpDefaults = Scenario(); Self.snp(&snpDefaults)
        try snpDefaults.validate()
        var snp = snpDefaults
        snp.hostMapping = .map2M; snp.snpPrefault = true; snp.snpAcceptanceProtocol = false; snp.loader.stubCallsAcceptanceProtocol = false
        try snp.validate()
        var tdx = Scenario(); tdx.tdxHost = .tdxHuge; tdx.gmemBacking = .hugetlb1G
        try tdx.validate()
        var old = Scenario(); old.firmware = .tdvf2022; old.partialAcceptBytes = 0
        try old.validate()
        // Eager with tdvf-2022: accept-all (0) and the default say the same thing, and a lazy boot takes any size.
        var eager = old; eager.lazy = false; eager.kernel.lazyAccept = false
        try eager.validate()
        eager.partialAcceptBytes = Scenario().partialAcceptBytes
        try eager.validate()
        var lazy = old; lazy.partialAcceptBytes = 512 << 20
        try lazy.validate()
    }
}
