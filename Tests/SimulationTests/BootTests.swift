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

@Suite struct BootTests {
    /// One configuration for the bulk-versus-stepping check.
    struct BulkCase: Sendable, CustomTestStringConvertible {
        var platform: PlatformKind, host: HostMappingPolicy, lazy: Bool
        var kernel: KernelVersion = .v7_0, firmware: FirmwareGeneration? = nil
        var memory: UInt64 = 3_200 << 20, vcpus = 3, deferred = true, prefault = false
        var workload: Workload = .touch(512 << 20)
        var testDescription: String {
            "\(platform) \(host) \(lazy ? "lazy" : "eager") \(kernel.rawValue) \(ByteCount(memory)) x\(vcpus)"
        }
    }

    /// Bulk replay must give exactly the state, counts and time of stepping
    /// every TDCALL/PVALIDATE, on small guests of every platform, policy,
    /// firmware and kernel generation, including sizes that are not a
    /// multiple of 1 GiB (so replays cross 1G regions whose S-EPT PD is missing).
    @Test(arguments: [
        BulkCase(platform: .tdx, host: .map4K, lazy: true),
        BulkCase(platform: .tdx, host: .map4K, lazy: false, memory: 3_300 << 20),
        BulkCase(platform: .tdx, host: .map2M, lazy: false, kernel: .v6_12),
        BulkCase(platform: .tdx, host: .map2M, lazy: true, kernel: .v6_5, firmware: .tdvf2022, memory: 3_074 << 20, vcpus: 2),
        BulkCase(platform: .tdx, host: .map4K, lazy: true, kernel: .v6_16, memory: 3_000 << 20, vcpus: 1, deferred: false,
                 workload: .pageCache(700 << 20)),
        BulkCase(platform: .snp, host: .map4K, lazy: false),
        BulkCase(platform: .tdx, host: .map2M, lazy: true, vcpus: 4, workload: .rate(bytesPerSecond: 700 << 20, seconds: 4)),
        BulkCase(platform: .snp, host: .map2M, lazy: true),
        BulkCase(platform: .snp, host: .map2M, lazy: true, kernel: .v6_11, memory: 4_610 << 20, vcpus: 5, prefault: true),
    ])
    func bulkEqualsStepByStep(_ c: BulkCase) throws {
        func run(_ step: Bool) throws -> BootResult {
            try bootResult { s in
                s.platform = c.platform; s.memory = c.memory; s.vcpus = c.vcpus; s.lazy = c.lazy
                // host-mapping is SNP's host; TDX's is the host model (validate() refuses the other).
                if c.platform == .snp { s.hostMapping = c.host } else { s.tdxHost = c.host == .map2M ? .tdxHuge : .tdx }
                s.firmware = c.firmware ?? (c.platform == .tdx ? .tdvf : .ovmfSNP); s.stepByStep = step
                s.workload = c.workload; s.kernel.version = c.kernel; s.kernel.deferredStructPageInit = c.deferred
                s.snpPrefault = c.prefault
            }
        }
        let bulk = try run(false), step = try run(true)
        #expect(bulk.counts == step.counts)
        #expect(bulk.committedBytes == step.committedBytes)
        #expect(bulk.times.totalBoot == step.times.totalBoot)
        #expect(bulk.kernel?.unaccepted?.table.bitmap == step.kernel?.unaccepted?.table.bitmap)
        #expect(bulk.json.serialized() == step.json.serialized())
    }

    /// Bulk replay equals stepping on seeded random TDX guests: memory
    /// between 1 and 5 GiB at a MiB granularity (so spans start and end
    /// anywhere in a 1G region), either host, lazy or eager, any vCPU count.
    @Test(arguments: [11, 12, 13] as [UInt64])
    func randomTDXBootsBulkEqualStepping(seed: UInt64) throws {
        var rng = SplitMix64(seed: seed)
        let memory = (1024 + rng.next() % 4096) << 20, vcpus = 1 + Int(rng.next() % 6)
        let lazy = rng.next() % 2 == 0, huge = rng.next() % 2 == 0
        let kernel: KernelVersion = [.v6_12, .v7_0, .v6_16][Int(rng.next() % 3)]
        func run(_ step: Bool) throws -> BootResult {
            try bootResult { s in
                s.memory = memory; s.vcpus = vcpus; s.lazy = lazy; s.tdxHost = huge ? .tdxHuge : .tdx
                s.kernel.version = kernel; s.stepByStep = step
            }
        }
        let bulk = try run(false), step = try run(true)
        #expect(bulk.counts == step.counts && bulk.committedBytes == step.committedBytes)
        #expect(bulk.times.totalBoot == step.times.totalBoot)
        #expect(bulk.json.serialized() == step.json.serialized())
    }

    /// Bulk replay equals stepping with 2 to 8 vCPUs at once (issue 17):
    /// SMP bring-up with its idle ticks, deferred init on or off, and a
    /// lazy workload whose accepts meet on the accepting list and the zone
    /// lock. Times, counts, the waits and the allocation latencies agree.
    @Test(arguments: [21, 22, 23] as [UInt64])
    func concurrentVCPUsBulkEqualStepping(seed: UInt64) throws {
        var rng = SplitMix64(seed: seed)
        let memory = (1024 + rng.next() % 1024) << 20, vcpus = 2 + Int(rng.next() % 7)
        let deferred = rng.next() % 2 == 0, touch = (128 + rng.next() % 256) << 20
        let kernel: KernelVersion = [.v6_12, .v7_0, .v6_16][Int(rng.next() % 3)]
        func run(_ step: Bool) throws -> BootResult {
            try bootResult { s in
                s.memory = memory; s.vcpus = vcpus; s.kernel.version = kernel; s.kernel.deferredStructPageInit = deferred
                s.workload = .touch(touch); s.stepByStep = step
            }
        }
        let bulk = try run(false), step = try run(true)
        #expect(bulk.counts == step.counts && bulk.committedBytes == step.committedBytes)
        #expect(bulk.times.totalBoot == step.times.totalBoot && bulk.times.workload == step.times.workload)
        #expect(bulk.kernel?.idleTickExits == step.kernel?.idleTickExits)
        #expect(bulk.kernel?.allocationStalls == step.kernel?.allocationStalls)
        #expect(bulk.json.serialized() == step.json.serialized())
    }

    /// Before 50e782a86c98 (6.5.0 to 6.5.8) `unaccepted_memory_lock` is held
    /// across each accept: concurrent accepters wait whether they overlap or
    /// not, so 6.5.0 spins more, and longer, than 6.5.9 (the list: only
    /// neighbours that share a guard unit wait).
    @Test func theLockHeldAcrossTheAcceptSerialisesAccepters() throws {
        func run(_ k: String) throws -> BootResult {
            try bootResult { s in
                s.memory = 8 << 30; s.vcpus = 8; s.kernel.version = try! KernelVersion(parsing: k); s.workload = .touch(2 << 30)
            }
        }
        let held = try run("6.5"), listed = try run("6.5.9")
        let h = try #require(held.kernel), l = try #require(listed.kernel)
        #expect(h.acceptingListWaits > l.acceptingListWaits, "\(h.acceptingListWaits) vs \(l.acceptingListWaits)")
        #expect(h.acceptingListWaitPicoseconds > l.acceptingListWaitPicoseconds)
        #expect(held.counts == listed.counts)
    }

    @Test func lazyLeavesHighMemoryUnacceptedAndEagerDoesNot() throws {
        let lazy = try bootResult { $0.memory = 64 << 30; $0.kernel.version = .v6_12 }
        let eager = try bootResult { $0.memory = 64 << 30; $0.lazy = false; $0.kernel.version = .v6_12 }
        let unaccepted = lazy.kernel!.totalUnacceptedPages
        #expect(unaccepted > (50 << 30) >> 12)
        #expect(eager.kernel!.totalUnacceptedPages == 0)
        // Unaccepted memory counts in MemTotal and MemFree.
        #expect(lazy.kernel!.totalFreePages > unaccepted)
        #expect(eager.times.totalBoot > 4 * lazy.times.totalBoot)
        #expect(lazy.outcome == .ok && eager.outcome == .ok)
    }

    @Test func twoMegHostMappingsCutExits() throws {
        let m4 = try bootResult { $0.memory = 16 << 30; $0.lazy = false }
        let m2 = try bootResult { $0.memory = 16 << 30; $0.lazy = false; $0.tdxHost = .tdxHuge }
        #expect(m2.counts[.tdxEPTViolationExit] * 100 < m4.counts[.tdxEPTViolationExit])
        #expect(m2.counts[.tdxAccept2MSuccess] > 0 && m4.counts[.tdxAccept2MSizeMismatch] > 0)
    }

    @Test func unawareKernelLosesTypeFifteenMemory() throws {
        let r = try bootResult { $0.memory = 16 << 30; $0.loader.kernelSupportsUnaccepted = false }
        #expect(r.firmware.lostBytes == 14 << 30)
    }

    @Test func snpWithoutProtocolCallAcceptsAllAtExitBootServices() throws {
        let r = try bootResult { s in
            s.platform = .snp; s.firmware = .ovmfSNP; s.memory = 8 << 30; s.loader.stubCallsAcceptanceProtocol = false
        }
        #expect(r.events.contains { $0.contains("first ExitBootServices() failed") })
        #expect(r.kernel!.totalUnacceptedPages == 0)
    }

    @Test func sameSeedSameBytes() throws {
        let a = try bootResult { $0.memory = 8 << 30; $0.seed = 5; $0.workload = .touch(2 << 30) }
        let b = try bootResult { $0.memory = 8 << 30; $0.seed = 5; $0.workload = .touch(2 << 30) }
        #expect(a.json.serialized() == b.json.serialized())
    }
}
