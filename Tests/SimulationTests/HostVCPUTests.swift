import CostModel
import KVM
import MemoryModel
import Simulation
import Testing

/// The host command language's `vcpu=N` on `accept` and `access` (issue 20):
/// the command runs on that vCPU's clock and the TDX module and KVM see that
/// vCPU; bounded by the td line's vcpus.
@Suite struct HostVCPUTests {
    let header = "td vcpus=2 host=tdx-huge sept-ve-disable=on\nslot id=1 base=0 pages=1024\nfinalize\n"

    func run(_ commands: String) throws -> HostRun {
        let r = try HostRun(try HostScenario.parse(header + commands), calibration: try Calibration.builtIn(), log: true, record: false)
        try r.run()
        return r
    }

    @Test func parsesTheVCPUOfEachGuestCommand() throws {
        let s = try HostScenario.parse(header + "accept 0x0+512 linux vcpu=1\naccept 0x200+512 vcpu=1\naccess 0x5 vcpu=1\naccess 0x6\n")
        #expect(s.commandVCPUs == [0, 1, 1, 1, 0])
        #expect(s.commands[1] == .accept(Range(start: GuestFrameNumber(0), count: 512), nil))
        #expect(s.commands[2] == .accept(Range(start: GuestFrameNumber(0x200), count: 512), nil))
    }

    /// The same accept on vCPU 1 charges vCPU 1's clock, not vCPU 0's.
    @Test func anAcceptChargesItsVCPU() throws {
        let a = try run("accept 0x0+512 linux vcpu=1\n")
        #expect(a.clock.vcpuPicoseconds[0] == 0)
        #expect(a.clock.vcpuPicoseconds[1] > 0)
        let b = try run("accept 0x0+512 linux\n")
        #expect(b.clock.vcpuPicoseconds[1] == 0)
        #expect(b.clock.vcpuPicoseconds[0] == a.clock.vcpuPicoseconds[1])
    }

    /// Two vCPUs accept the same range: the second gets ALREADY_ACCEPTED at
    /// every level and Linux gives up (the double accept the accepting list
    /// prevents), and a touch by vCPU 1 of memory nobody accepted kills the TD.
    @Test func aSecondVCPUsAcceptOfTheSameRangeFails() throws {
        let r = try run("accept 0x0+512 linux vcpu=0\naccept 0x0+512 linux vcpu=1\n")
        #expect(r.vm.operationLog.lines.contains { $0.contains("guest: TDX: Failed to accept memory") })
        let t = try run("access 0x200 vcpu=1\n")
        #expect(t.vm.isDead)
        #expect("\(t.vm.outcome)".contains("on vCPU 1"), "\(t.vm.outcome)")
    }

    @Test func badVCPUsAreRefusedWithTheirLine() throws {
        for (line, want) in [("accept 0x0+512 linux vcpu=2", "line 4: vcpu=2, but the TD has 2 vCPUs"),
                             ("access 0x5 vcpu=x", "line 4: vcpu must be a vCPU index"),
                             ("access 0x5 vcpu=0 vcpu=1", "line 4: access takes one vcpu="),
                             ("accept 0x0+512 vcpu=1 4x", "line 4: accept driver must be 4k, 2m (TDVF) or linux")] {
            #expect { try HostScenario.parse(header + line + "\n") } throws: { e in
                (e as? CocomemError)?.message.contains(want) ?? false
            }
        }
    }
}
