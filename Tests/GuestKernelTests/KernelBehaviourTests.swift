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

    /// canonical/tdx#421 against the sources, by hand: the stub's
    /// `allocate_pool(EFI_ACPI_RECLAIM_MEMORY, 24 + S)` is served by edk2's
    /// `CoreAllocatePoolI()` from fresh pages (block over 2688 bytes), so the
    /// table sits after the 24-byte `POOL_HEAD`, at page offset 0x18, and ends
    /// at offset 48 + S. The old `reserve_unaccepted()` reserved
    /// `PAGE_ALIGN(24 + S)` from the page start, so the table spills into an
    /// unreserved, unmapped page exactly when (48 + S) mod 4096 is in 1...24.
    /// With q35's 2 GiB below 4 GiB, `phys_base` is 4 GiB and
    /// S = ceil(ceil((memory - 2 GiB) / 2 MiB) / 8): the panics form windows
    /// 66817M...67200M and 132353M...132736M, not every size above 64 GiB.
    @Test func reserveUnacceptedPanicsExactlyWhenTheTableSpillsPastItsReservation() throws {
        func spills(_ memory: UInt64) -> Bool {
            let units = divRoundUp(memory - (2 << 30), 2 << 20)
            let bitmapBytes = divRoundUp(units, 8)
            let spill = (48 + bitmapBytes) % 4096
            return spill >= 1 && spill <= 24
        }
        func panics(_ memory: UInt64) throws -> Bool {
            let r = try bootResult { $0.memory = memory; $0.kernel.version = .v6_16 }
            return r.outcome != .ok
        }
        let mib: UInt64 = 1 << 20
        // The issue and its lore thread: 66900M and 67000M crash; 67G,
        // 68608M, 6960M and 33960M boot. Boundaries of the first two windows.
        for m: UInt64 in [66900, 67000, 66817, 67200, 132353, 132736] {
            #expect(try panics(m * mib), "\(m)M")
            #expect(spills(m * mib), "\(m)M")
        }
        for m: UInt64 in [68608, 6960, 33960, 66816, 67201, 67328, 67583, 96000, 130000, 132352, 132737] {
            #expect(try !panics(m * mib), "\(m)M")
        }
        var rng = SplitMix64(seed: 421)
        for _ in 0..<40 {
            let m = UInt64.random(in: 65_536...140_000, using: &rng) * mib
            #expect(try panics(m) == spills(m), "\(m / mib)M")
        }
        // The issue's 67000M oops: a 0xfdc-byte bitmap at page offset 0x30,
        // the fault on the 8-byte word at page offset 0x008 of the next page.
        let r = try bootResult { $0.memory = 67000 * mib; $0.kernel.version = .v6_16 }
        let table = try #require(r.kernel?.unaccepted?.table)
        #expect(table.size == 0xfdc && table.address.value % 4096 == 0x18)
        guard case .terminated(let why) = r.outcome else { Issue.record("expected the 67000M oops"); return }
        let expectedAddress = alignUp(table.address.value, 4096) + 8
        #expect(why.contains("address \(hex16(expectedAddress))"))
    }

    /// Before watermarks exist every allocation accepts a 4 MiB block
    /// (800f1059c99e: 6.14+, 6.6.86, 6.12.21, 6.13.9), so the acceptance at boot grows with the vCPU count
    /// (Dstack PR 1220: ~13 GiB at 248 vCPUs); 6.12.0 does not do this. With deferred struct page init
    /// off the whole unaccepted list is there during SMP bring-up and each call, counted per AP from
    /// the code (`SMPBringup`), takes a block; with it on, only the Normal zone's first section is.
    @Test func earlyAcceptStormGrowsWithVCPUsOnNewKernels() throws {
        let many = try bootResult { $0.memory = 32 << 30; $0.vcpus = 248; $0.kernel.version = .v7_0; $0.kernel.deferredStructPageInit = false }
        let few = try bootResult { $0.memory = 32 << 30; $0.vcpus = 4; $0.kernel.version = .v7_0; $0.kernel.deferredStructPageInit = false }
        let old = try bootResult { $0.memory = 32 << 30; $0.vcpus = 248; $0.kernel.version = .v6_12; $0.kernel.deferredStructPageInit = false }
        let deferred = try bootResult { $0.memory = 32 << 30; $0.vcpus = 248; $0.kernel.version = .v7_0 }
        // Six forks per AP (idle, cpuhp, migration, ksoftirqd, two kworkers): a stack each and a task_struct slab every three.
        let forks = UInt64(247 * 6)
        let calls = KernelConfig().preSMPAllocations + forks + (forks + 2) / 3
        let k = try #require(many.kernel)
        #expect(k.earlyAllocationPages == calls)
        #expect(many.acceptedKernelBoot > calls * (4 << 20))
        #expect(few.acceptedKernelBoot < 3 << 30)
        #expect(old.acceptedKernelBoot < 3 << 30)
        #expect(deferred.acceptedKernelBoot < 3 << 30)
        // All of it on the BSP.
        #expect(many.times.earlyAllocations > 5 * few.times.earlyAllocations)
        // The APs idled through it, one HLT exit a tick.
        #expect(k.idleTickExits > 0 && k.idleTickExits < UInt64(247.0 * many.times.earlyAllocations * 1000))
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
