import CostModel
import KVM
import MemoryModel
import Testing

/// The 4K accept fault on the host among idle ticking vCPUs and
/// conversions (`HostFaultContention`), against what the locks allow.
@Suite struct HostFaultContentionTests {
    static let costs = CostTable(try! Calibration.builtIn())

    static func run(_ c: HostFaultContentionConfig) -> HostFaultContentionResult {
        HostFaultContention(config: c, costs: costs).run()
    }

    /// Without a converter nothing takes a lock exclusive: bulk replay
    /// equals stepping every event, on 2-8 vCPUs and several seeds and rates.
    @Test func bulkEqualsStepping() {
        var random = SplitMix64(seed: 17)
        for _ in 0..<24 {
            let vcpus = 2 + Int(random.next() % 7)
            let hz: UInt64 = [0, 100, 250, 1000, 10_000][Int(random.next() % 5)]
            let faults = 1 + random.next() % 3000
            let seed = random.next()
            var c = HostFaultContentionConfig(vcpus: vcpus, hz: hz, faults: faults, seed: seed)
            let bulk = Self.run(c)
            c.stepEverything = true
            var stepped = Self.run(c)
            #expect(stepped.events > 0)
            stepped.events = 0
            #expect(bulk == stepped, "vcpus \(vcpus) hz \(hz) faults \(faults)")
        }
    }

    /// The source's reading: ticking idle vCPUs take only shared module
    /// locks and no `mmu_lock`, so the fault costs the same with 1 or 248
    /// vCPUs at any HZ, and exactly the uncontended path.
    @Test func idleTicksDoNotSlowTheFault() {
        let alone = Self.run(HostFaultContentionConfig(vcpus: 1, hz: 1000, faults: 2000, stepEverything: true))
        let busy = Self.run(HostFaultContentionConfig(vcpus: 248, hz: 1000, faults: 2000, stepEverything: true))
        #expect(busy.idleTicks > 0)
        #expect(alone.perFaultPicoseconds == alone.uncontendedFaultPicoseconds)
        #expect(busy.perFaultPicoseconds == alone.perFaultPicoseconds)
        #expect(busy.mmuRead.contended == 0 && busy.augBusy == 0 && busy.faulterEnterBusy == 0 && busy.idleEnterBusy == 0)
        // Dstack PR 1220's idle figure: ~8 us a fault.
        #expect((7_000_000...9_000_000).contains(busy.perFaultPicoseconds))
    }

    /// Conversions take `mmu_lock` for write: faults wait for them, and the
    /// waits and the fault's cost come out of the steps.
    @Test func conversionsMakeFaultsWait() {
        let none = Self.run(HostFaultContentionConfig(vcpus: 8, hz: 1000, faults: 5000, stepEverything: true))
        let conv = Self.run(HostFaultContentionConfig(vcpus: 8, hz: 1000, faults: 5000, conversionsPerSecond: 20_000, stepEverything: true))
        #expect(conv.conversions > 0)
        #expect(conv.mmuRead.contended > 0 && conv.mmuRead.waitPicoseconds > 0)
        #expect(conv.perFaultPicoseconds > none.perFaultPicoseconds)
        #expect(conv.lockOrderViolations == 0)
    }

    /// TDH.MEM.TRACK meets entering vCPUs in `epoch_lock` more often the
    /// more vCPUs take ticks; each time `tdh_do_no_vcpus()` retries.
    @Test func ticksMakeTrackBusy() {
        func busy(_ vcpus: Int, _ hz: UInt64) -> HostFaultContentionResult {
            Self.run(HostFaultContentionConfig(vcpus: vcpus, hz: hz, faults: 20_000, conversionsPerSecond: 20_000,
                                               epochSectionNanoseconds: 500, seed: 3))
        }
        let few = busy(2, 100), many = busy(248, 1000)
        #expect(many.trackBusy > few.trackBusy)
        #expect(many.doNoVCPUsRetries > 0 && many.doNoVCPUsRetries <= many.trackBusy)
        #expect(many.lockOrderViolations == 0 && few.lockOrderViolations == 0)
    }

    /// Same seed, same result; another seed moves the tick phases.
    @Test func sameSeedSameResult() {
        let c = HostFaultContentionConfig(vcpus: 64, hz: 1000, faults: 4000, conversionsPerSecond: 10_000, seed: 9)
        #expect(Self.run(c) == Self.run(c))
        var d = c; d.seed = 10
        #expect(Self.run(d).idleTicks > 0)
    }

    /// The module's try-locks: shared meets only exclusive; exclusive meets anyone.
    @Test func tryLockRules() {
        var l = ShareExclusiveTryLock()
        let got = [l.tryShared(at: 0, hold: 10), l.tryShared(at: 5, hold: 10), l.tryExclusive(at: 10, hold: 5),
                   l.tryExclusive(at: 15, hold: 5), l.tryShared(at: 17, hold: 1), l.tryShared(at: 20, hold: 1)]
        #expect(got == [true, true, false, true, false, true])
        #expect(l.sharedBusy == 1 && l.exclusiveBusy == 1)
    }

    @Test func badConfigurationIsOneError() {
        let bad = [HostFaultContentionConfig(vcpus: 0), HostFaultContentionConfig(faults: 0), HostFaultContentionConfig(hz: 100_000)]
        for c in bad { #expect(throws: CocomemError.self) { try c.validate() } }
    }
}
