import CoCoGuest
import CostModel
import KVM
import MemoryModel
import Simulation
import TDXModule
import Testing

/// `tdx_track()` kicks (`kvm_make_all_cpus_request(KVM_REQ_OUTSIDE_GUEST_MODE)`)
/// only the vCPUs in guest mode: a vCPU halted in `kvm_vcpu_block()` is
/// OUTSIDE_GUEST_MODE and `kvm_request_needs_ipi()` skips it.
@Suite struct TrackKickTests {
    /// Converting an accepted private page to shared zaps its leaf: BLOCK,
    /// TRACK and one kick per vCPU in guest mode.
    @Test func onlyVCPUsInGuestModeAreKicked() throws {
        let vm = try TDXVM(options: KVMOptions(), features: TDXModuleFeatures(), vcpus: 8,
                           slots: [Memslot(id: 1, baseGFN: GFN(0), pages: 512, backing: .buddy)])
        vm.finalize()
        let acc = TDXAcceptor(host: vm, driver: .edk2(pageSize: .size4K), costs: CostTable(try Calibration.builtIn()))
        var clock = PhaseClock(vcpus: 8)
        #expect(acc.accept(AddressRange(start: 0, size: 3 << 12), vcpu: 0, clock: &clock) == .ok)
        func kicksOfZapping(_ gfn: UInt64) -> UInt64 {
            let k0 = vm.counters[.vcpuKicks]
            #expect(vm.convert(GFN(gfn)..<GFN(gfn + 1), toPrivate: false) == .ok)
            return vm.counters[.vcpuKicks] - k0
        }
        #expect(vm.vcpusInGuestMode == 8)
        #expect(kicksOfZapping(0) == 8)
        for v in 3..<8 { vm.halt(vcpu: v) }
        #expect(vm.vcpusInGuestMode == 3)
        #expect(kicksOfZapping(1) == 3)
        vm.wake(vcpu: 5)
        vm.wake(vcpu: 6)
        #expect(kicksOfZapping(2) == 5)
        #expect(vm.outcome == .ok && vm.checkInvariants().isEmpty)
    }

    /// The same through a host scenario: `halt vcpu=N` takes vCPU N out of
    /// the kicks until `wake vcpu=N`.
    @Test func haltAndWakeInAHostScenario() throws {
        let run = try HostRun(try HostScenario.parse("""
            td host=tdx vcpus=4
            slot id=1 base=0 pages=512 backing=buddy
            finalize
            accept 0x0+3 4k
            convert 0x0+1 shared
            halt vcpu=2
            halt vcpu=3
            convert 0x1+1 shared
            wake vcpu=3
            convert 0x2+1 shared
            """), calibration: try Calibration.builtIn(), log: false)
        try run.run()
        #expect(run.vm.outcome == .ok)
        #expect(run.vm.counters[.vcpuKicks] == 4 + 2 + 3)
    }

    /// A DIMM's memslot deleted from the eject write of vCPU 2 (QEMU's
    /// `acpi_memory_hotplug_write()` runs the unplug in that vCPU's thread,
    /// in its KVM_EXIT_IO): vCPU 2 is OUTSIDE_GUEST_MODE, so each TRACK
    /// kicks the other three only; a deletion from outside the guest kicks
    /// all four. vCPU 2 is back in the TD afterwards.
    @Test func theEjectingVCPUGetsNoIPIWhenItsDIMMGoesAway() throws {
        func kicksOfDeleting(ejecting: Int?) throws -> UInt64 {
            let vm = try TDXVM(options: KVMOptions(), features: TDXModuleFeatures(), vcpus: 4,
                               slots: [Memslot(id: 1, baseGFN: GFN(0), pages: 512, backing: .buddy)])
            vm.finalize()
            try vm.addMemslot(Memslot(id: 2, baseGFN: GFN(1024), pages: 512, backing: .buddy))
            let acc = TDXAcceptor(host: vm, driver: .edk2(pageSize: .size4K), costs: CostTable(try Calibration.builtIn()))
            var clock = PhaseClock(vcpus: 4)
            #expect(acc.accept(AddressRange(start: 1024 << 12, size: 8 << 12), vcpu: 0, clock: &clock) == .ok)
            let k0 = vm.counters[.vcpuKicks]
            #expect(vm.deleteMemslot(id: 2, ejectingVCPU: ejecting) == .ok)
            #expect(vm.vcpusInGuestMode == 4)
            #expect(vm.outcome == .ok && vm.checkInvariants().isEmpty)
            return vm.counters[.vcpuKicks] - k0
        }
        let outside = try kicksOfDeleting(ejecting: nil), fromVCPU2 = try kicksOfDeleting(ejecting: 2)
        #expect(outside > 0 && outside % 4 == 0)
        #expect(fromVCPU2 == outside / 4 * 3)
    }
}
