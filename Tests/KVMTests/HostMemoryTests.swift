import CostModel
@testable import KVM
import MemoryModel
import Simulation
import TDXModule
import Testing

/// Host memory over time (issue 18 §5): private and shared, the VMM's own
/// shared memory under VM-wide attributes and the double backing it makes,
/// pinned against reclaimable, as a series of host runs' records.
@Suite struct HostMemoryTests {
    func run(_ commands: String, td: String = "td vcpus=2 host=tdx-huge") throws -> HostRun {
        let r = try HostRun(try HostScenario.parse(td + "\nslot id=1 base=0 pages=2048 backing=hugetlb-2m\nfinalize\n" + commands),
                            calibration: try Calibration.builtIn(), log: false)
        try r.run()
        return r
    }

    /// With VM-wide attributes a host process touching guest memory through
    /// the VMM's shared mapping populates pages for private GPAs too: both
    /// backings are held, guest_memfd's pinned, the VMM's reclaimable.
    @Test func aHostTouchingThePrivateGPAsAliasesBacksThemTwice() throws {
        let r = try run("accept 0x0+512 linux\nhostmap 0x0+512\n")
        let m = r.vm.hostMemory
        #expect(m.vmmSharedPages == 512 && m.doubleBackedPages == 512)
        #expect(m.pinnedPages == r.vm.committedPages && m.reclaimablePages == 512)
        #expect(m.totalPages == r.vm.committedPages + 512)
        // In place there is no second backing: the touch is SIGBUS.
        let ip = try run("accept 0x0+512 linux\nhostmap 0x0+512\n", td: "td vcpus=2 host=tdx-huge policy=in-place")
        #expect(ip.vm.hostMemory.vmmSharedPages == 0 && ip.vm.hostMemory.doubleBackedPages == 0)
        #expect(ip.vm.inPlace.sigbus == 1)
    }

    /// The guest's shared accesses populate the VMM's memory; converting the
    /// range to private discards it (QEMU's `ram_block_discard_range()`).
    @Test func sharedPagesLiveInTheVMMUntilConvertedBack() throws {
        let shared = try run("convert 0x10+4 shared\naccess 0x10+4\n")
        #expect(shared.vm.hostMemory.vmmSharedPages == 4)
        let back = try run("convert 0x10+4 shared\naccess 0x10+4\nconvert 0x10+4 private\n")
        #expect(back.vm.hostMemory.vmmSharedPages == 0)
    }

    /// Host runs record the four columns as series, one point per command;
    /// boots do not have them.
    @Test func theRecordCarriesTheSeries() throws {
        // hostmap takes no virtual time, so an accept separates the two touches.
        let r = try run("accept 0x0+512 linux\nhostmap 0x0+256\naccept 0x200+512 linux\nhostmap 0x100+256\n")
        let series = r.record.series
        let double = try #require(series.first { $0.name == "host_double_backed_bytes" })
        #expect(double.points.first?.value == 0)
        #expect(double.points.contains { $0.value == Double(256 * 4096) })
        #expect(double.points.last?.value == Double(512 * 4096))
        #expect(series.contains { $0.name == "host_pinned_bytes" } && series.contains { $0.name == "host_reclaimable_bytes" })
        #expect(series.contains { $0.name == "host_vmm_shared_bytes" })
    }
}
