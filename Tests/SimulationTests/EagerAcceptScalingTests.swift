import CostModel
import GuestKernel
import MemoryModel
import Reports
import Simulation
import Testing

/// Eager acceptance on several vCPUs as actors (`EagerAcceptScaling`):
/// replaying a worker's steps in bulk equals stepping every block (2-8
/// vCPUs, seeded), the same seed gives the same bytes, and the mechanisms
/// behave as the source says (no deferred init: no scaling; the 6.5.0
/// lock: serial; TDX module 1.0's exclusive S-EPT lock binds where 1.5's
/// shared one does not).
@Suite struct EagerAcceptScalingTests {
    static func run(_ c: EagerAcceptConfig, _ cal: Calibration? = nil) throws -> EagerAcceptResult {
        try EagerAcceptScaling(config: c, calibration: cal ?? Calibration.builtIn()).run()
    }

    @Test func bulkEqualsSteppingOnTwoToEightVCPUs() throws {
        var random = SplitMix64(seed: 17)
        var inline: UInt64 = 0
        for round in 0..<24 {
            var c = EagerAcceptConfig(memoryBytes: (3 << 30) + (random.next() % 12 + 1) * (128 << 20) + (random.next() % 8) * (4 << 20),
                                      vcpus: Int(2 + random.next() % 7))
            c.deferredStructPageInit = random.next() % 4 != 0
            c.host = random.next() % 3 == 0 ? .tdxHuge : .tdx
            c.module = random.next() % 2 == 0 ? .v1_0 : .v1_5
            c.locking = random.next() % 3 == 0 ? .lockHeldAcrossAccept : .acceptingList
            c.gmemLockNanoseconds = [0, 100, 2000][Int(random.next() % 3)]
            c.seed = random.next()
            var stepped = c; stepped.stepEverything = true
            var bulk = try Self.run(c)
            let step = try Self.run(stepped)
            #expect(step.inlineSteps == 0)
            inline += bulk.inlineSteps
            bulk.inlineSteps = 0
            #expect(bulk == step, "round \(round): \(c)")
            #expect(bulk.totalPicoseconds > 0)
        }
        // The replay ran: some steps were taken inline rather than queued.
        #expect(inline > 0)
    }

    @Test func sameSeedSameBytes() throws {
        var c = EagerAcceptConfig(memoryBytes: 8 << 30, vcpus: 6)
        c.seed = 42
        let rows1 = try EagerAcceptScaling.sweep(c, vcpus: [1, 3, 6], calibration: Calibration.builtIn())
        let rows2 = try EagerAcceptScaling.sweep(c, vcpus: [1, 3, 6], calibration: Calibration.builtIn())
        #expect(EagerScalingReport.text(config: c, rows: rows1) == EagerScalingReport.text(config: c, rows: rows2))
        #expect(EagerScalingReport.json(config: c, rows: rows1).serialized() == EagerScalingReport.json(config: c, rows: rows2).serialized())
    }

    /// Without deferred struct page init `memblock_free_all()` accepts
    /// everything on the boot CPU: the vCPU count changes nothing.
    @Test func withoutDeferredInitTheBootCPUAcceptsAlone() throws {
        var c = EagerAcceptConfig(memoryBytes: 8 << 30, vcpus: 1)
        c.deferredStructPageInit = false
        let one = try Self.run(c)
        c.vcpus = 8
        let eight = try Self.run(c)
        #expect(one.totalPicoseconds == eight.totalPicoseconds)
        #expect(eight.padataBlocks == 0 && eight.bspBlocks == (6 << 30) / (4 << 20))
    }

    /// With 6.5.0-6.5.8's lock across the accept, the padata job is at least
    /// as long as all its accepts one after another.
    @Test func lockAcrossAcceptSerialisesTheWorkers() throws {
        var c = EagerAcceptConfig(memoryBytes: 6 << 30, vcpus: 8)
        c.locking = .lockHeldAcrossAccept
        let locked = try Self.run(c)
        c.vcpus = 1
        let alone = try Self.run(c)
        let structPages = try Calibration.builtIn()[.kernelStructPageInit].nanoseconds * 1024 * 1000
        let acceptsAlone = Double(alone.padataPicoseconds) - Double(alone.padataBlocks) * structPages
        #expect(Double(locked.padataPicoseconds) >= acceptsAlone * 0.999)
        #expect(locked.unacceptedLock.contended > 0)
        c.locking = .acceptingList; c.vcpus = 8
        #expect(try Self.run(c).padataPicoseconds < locked.padataPicoseconds)
    }

    /// With the write bandwidth out of the way, TDX module 1.0's exclusive
    /// AUG and SEPT.ADD bind at many vCPUs; 1.5's shared lock does not.
    @Test func moduleOneZeroExclusiveSEPTLockBinds() throws {
        var cal = try Calibration.builtIn()
        cal.sharedWriteGiBPerSecond = 10_000
        var c = EagerAcceptConfig(memoryBytes: 20 << 30, vcpus: 128)
        c.gmemLockNanoseconds = 0
        c.module = .v1_0
        let old = try Self.run(c, cal)
        c.module = .v1_5
        let new = try Self.run(c, cal)
        #expect(old.dominantBound == .septLock)
        #expect(new.dominantBound == .vcpu)
        #expect(old.padataPicoseconds > new.padataPicoseconds)
    }

    /// At the built-in calibration the shared write bandwidth binds once a
    /// few vCPUs accept: the accept-90g plateau read as bandwidth.
    @Test func bandwidthBindsAtEightVCPUs() throws {
        let r = try Self.run(EagerAcceptConfig(memoryBytes: 32 << 30, vcpus: 8))
        #expect(r.dominantBound == .bandwidth)
        let one = try Self.run(EagerAcceptConfig(memoryBytes: 32 << 30, vcpus: 1))
        #expect(one.dominantBound == .vcpu)
    }

    @Test func kneeIsTheFirstStepBelowTenPercent() {
        #expect(EagerAcceptScaling.knee([(1, 100), (2, 50), (4, 30), (8, 28), (16, 27)]) == 4)
        #expect(EagerAcceptScaling.knee([(1, 100), (2, 50), (4, 25)]) == nil)
        #expect(EagerAcceptScaling.knee([(1, 100), (4, 99), (8, 99)]) == 1)
    }

    @Test func badConfigurationsAreOneError() {
        #expect(throws: CocomemError.self) { try EagerAcceptConfig(memoryBytes: 8 << 30, vcpus: 0).validate() }
        #expect(throws: CocomemError.self) { try EagerAcceptConfig(memoryBytes: (8 << 30) + 4096, vcpus: 1).validate() }
        #expect(throws: CocomemError.self) { try EagerAcceptConfig(memoryBytes: 64 << 20, vcpus: 1).validate() }
    }
}
