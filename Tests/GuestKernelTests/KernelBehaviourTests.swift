import CoCoGuest
import CostModel
import Firmware
import GuestKernel
import MemoryModel
import Reports
import Simulation
import TDXModule
import TestSupport
import Testing

@Suite struct KernelBehaviourTests {
    /// canonical/tdx#421: a table that starts mid-page and spills into the
    /// next page had that page neither reserved nor mapped before the Feb
    /// 2026 fix; the first accept_memory() that reads a bitmap byte there
    /// oopses. 65.5G puts the table across a page boundary; 65G does not.
    @Test func reserveUnacceptedBugCrashesOnlyAffectedSizesOnOldKernels() throws {
        let crossing = try bootResult { $0.memory = (65 << 30) + (512 << 20); $0.kernel.version = .v6_16 }
        guard case .terminated(let why) = crossing.outcome else {
            Issue.record("expected a guest termination, got \(crossing.outcome)"); return
        }
        #expect(why.contains("page fault") && why.contains("tdx#421"))
        #expect(crossing.json.serialized().contains("\"outcome\": \"guest_terminated: kernel panic"))
        let fixed = try bootResult { $0.memory = (65 << 30) + (512 << 20); $0.kernel.version = .v7_0 }
        #expect(fixed.outcome == .ok)
        let notCrossing = try bootResult { $0.memory = 65 << 30; $0.kernel.version = .v6_16 }
        #expect(notCrossing.outcome == .ok)
    }

    /// Before watermarks exist every allocation accepts a 4 MiB block
    /// (800f1059c99e: 6.14+, 6.6.86, 6.12.21, 6.13.9), so the acceptance at boot grows with the vCPU count
    /// (Dstack PR 1220: ~13 GiB at 248 vCPUs); 6.12.0 does not do this.
    @Test func earlyAcceptStormGrowsWithVCPUsOnNewKernels() throws {
        let many = try bootResult { $0.memory = 32 << 30; $0.vcpus = 248; $0.kernel.version = .v7_0 }
        let few = try bootResult { $0.memory = 32 << 30; $0.vcpus = 4; $0.kernel.version = .v7_0 }
        let old = try bootResult { $0.memory = 32 << 30; $0.vcpus = 248; $0.kernel.version = .v6_12 }
        #expect(many.acceptedKernelBoot > 12 << 30)
        #expect(few.acceptedKernelBoot < 3 << 30)
        #expect(old.acceptedKernelBoot < 3 << 30)
        // All of it on the BSP.
        #expect(many.times.earlyAllocations > 5 * few.times.earlyAllocations)
    }

    /// A rate workload is paced by wall time and accepts as it goes.
    @Test func rateWorkloadIsPacedAndAcceptsEverything() throws {
        let r = try bootResult { $0.memory = 8 << 30; $0.kernel.version = .v6_12; $0.workload = .rate(bytesPerSecond: 1 << 30, seconds: 10) }
        #expect(r.times.workload >= 5.0)
        #expect(r.kernel!.totalUnacceptedPages == 0)
        #expect(r.fullyAcceptedAfter != nil && r.fullyAcceptedAfter! > r.times.totalBoot)
        #expect(throws: CocomemError.self) { try Workload.parse("rate=1G", memory: 8 << 30) }
    }

    /// /proc/meminfo lines as the kernel prints them: the name padded to 16
    /// columns, the value right-aligned in 8, then " kB".
    @Test func meminfoUsesTheKernelFormat() throws {
        let r = try bootResult { $0.memory = 8 << 30 }
        let text = r.kernel!.procMeminfo
        for line in text.split(separator: "\n") {
            #expect(line.hasSuffix(" kB"))
            #expect(line.count >= 27)
            #expect(line.firstIndex(of: ":") != nil)
        }
        #expect(text.hasPrefix("MemTotal:  "))
        #expect(text.contains("\nUnaccepted: "))
    }
}
