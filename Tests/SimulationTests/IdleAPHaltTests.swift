import CoCoGuest
import Firmware
import CostModel
import MemoryModel
import Simulation
import Testing

/// Issue 17 §1: an AP idle in the boot is halted (TDVMCALL(HLT), blocked in
/// `kvm_vcpu_halt()` outside guest mode), so the host's `tdx_track()`
/// would kick only the BSP after the boot, not every AP.
@Suite struct IdleAPHaltTests {
    func boot(vcpus: Int, workload: Workload = .none) throws -> BootResult {
        var s = Scenario()
        s.memory = 2 << 30
        s.vcpus = vcpus
        s.workload = workload
        return try BootSimulation(scenario: s, calibration: Calibration.builtIn()).run()
    }

    @Test func idleAPsAreHaltedAfterTheBoot() throws {
        for n in [1, 2, 8] {
            let r = try boot(vcpus: n)
            #expect(r.outcome == .ok)
            #expect(r.hostVCPUsInGuestMode == 1, "\(n) vCPUs")
        }
    }

    /// A workload runs on every vCPU: the APs are woken for it and idle again after it.
    @Test func apsIdleAgainAfterAWorkload() throws {
        let r = try boot(vcpus: 4, workload: .touch(256 << 20))
        #expect(r.outcome == .ok)
        #expect(r.hostVCPUsInGuestMode == 1)
    }

    @Test func snpHasNoHostVCPUState() throws {
        var s = Scenario()
        s.memory = 2 << 30
        s.platform = .snp
        s.firmware = .ovmfSNP
        let r = try BootSimulation(scenario: s, calibration: Calibration.builtIn()).run()
        #expect(r.hostVCPUsInGuestMode == nil)
    }
}
