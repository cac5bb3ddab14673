import CoCoGuest
import CostModel
@testable import KVM
import MemoryModel
import Reports
import TDXModule
import Testing

/// Bulk replay that is proportional to ranges, not chunks (issue 15): spans
/// that run into 1G and 512G regions without tables, and S-EPT pool events
/// taken arithmetically or by repeating state. Each is held equal to
/// stepping on seeded random configurations.
@Suite struct ReplayAcrossRegionsTests {
    /// Everything the host model tallies or holds that a replay could get
    /// wrong, as one comparable string.
    static func summary(_ vm: TDXVM) -> String {
        var s = vm.statsJSON.serialized()
        s += "\nops \(vm.ops.vector) context \(vm.contextOps.vector) \(vm.contextCalls.vector) \(vm.contextCounters.vector)"
        s += "\npool \(vm.septPool) cache \(vm.splitCache) epoch \(vm.module.tdEpoch)"
        s += "\nmirror2M \(vm.mmu.mirror2M) mirror4K \(vm.mmu.mirror4K) pd \(vm.mmu.mirrorPD) pdpt \(vm.mmu.mirrorPDPT) 1g \(vm.mmu.mirror1G)"
        s += "\npde \(vm.module.pde) pte \(vm.module.pte) pdpte \(vm.module.pdpte) pml4e \(vm.module.pml4e)"
        s += "\npamt \(vm.module.pamt4K) inuse \(vm.module.hpa4KInUse) refcount \(vm.tdx.pamtRefcount)"
        s += "\nlpage \(vm.lpageInfo.lpage2M) \(vm.lpageInfo.lpage1G) gmem \(vm.gmem.folioAllocated) \(vm.gmem.folioOrder)"
        return s
    }

    /// A TD whose one memslot straddles the 512 GiB boundary, accepted by a
    /// sequence of random calls (edk2 at 2M, whose calls span many regions,
    /// and Linux), in bulk and stepping every TDCALL: the same state,
    /// counts and guest time.
    @Test(arguments: [1, 2, 3, 4, 5, 6] as [UInt64])
    func acceptsAcross512GEqualStepping(seed: UInt64) throws {
        var rng = SplitMix64(seed: seed)
        let huge = rng.next() % 3 != 0
        var (options, features) = huge ? (KVMOptions(), TDXModuleFeatures()) : (KVMOptions.upstream4K, TDXModuleFeatures())
        features.dynamicPAMT = huge ? rng.next() % 4 != 0 : rng.next() % 4 == 0
        options.lpagePrecheck = rng.next() % 2 == 0
        if huge { options.acceptLevelPolicy = [.guestInhibit, .perFault, .ignored][Int(rng.next() % 3)] }
        let backing: GmemBacking = huge ? (rng.next() % 2 == 0 ? .hugetlb2M : .hugetlb1G) : .buddy
        // Stepping 4K-mapped memory is 512 TDCALLs a chunk: keep those guests smaller.
        var chunks = huge ? 1800 + rng.next() % 1200 : 600 + rng.next() % 500
        let boundary = GuestRegion512G(1).firstFrame
        var base = boundary - (chunks / 2 + rng.next() % 64) * PageLevel.size2M.pages
        if backing == .hugetlb1G {
            // guest_memfd's 1G folios need a 1G-aligned slot of whole folios.
            base = base.alignedDown(to: .size1G)
            chunks = chunks / 512 * 512
        }
        let slot = Memslot(id: 1, baseGFN: base, pages: chunks * PageLevel.size2M.pages, backing: backing)
        // Accept calls: random lengths in 2M chunks, some with a 4K tail.
        var calls: [(Range<GuestFrameNumber>, linux: Bool)] = []
        var g = base
        while g < slot.frames.upperBound {
            let n = 1 + rng.next() % chunks
            let end = min(slot.frames.upperBound, g + n * PageLevel.size2M.pages + (rng.next() % 4 == 0 ? rng.next() % 512 : 0))
            calls.append((g..<end, rng.next() % 3 == 0))
            g = end
        }
        let costs = CostTable(try Calibration.builtIn())
        // Some configurations make an accept fail (a 4K accept where KVM
        // maps 2M): that is the model's answer, and stepping must give it too.
        func run(step: Bool) throws -> (TDXVM, PhaseClock, [AcceptOutcome]) {
            let vm = try TDXVM(options: options, features: features, vcpus: 2, slots: [slot], costs: costs)
            vm.finalize()
            vm.logEnabled = !step
            let linux = TDXAcceptor(host: vm, driver: .linux, costs: costs)
            let edk2 = TDXAcceptor(host: vm, driver: .edk2(pageSize: .size2M), costs: costs)
            linux.stepByStep = step; edk2.stepByStep = step
            var clock = PhaseClock(vcpus: 2)
            let outcomes = calls.map { r, useLinux in (useLinux ? linux : edk2).accept(AddressRange(frames: r), vcpu: 0, clock: &clock) }
            return (vm, clock, outcomes)
        }
        let (bulk, bulkClock, bulkOutcomes) = try run(step: false), (step, stepClock, stepOutcomes) = try run(step: true)
        #expect(bulkOutcomes == stepOutcomes)
        #expect(Self.summary(bulk) == Self.summary(step))
        #expect(bulkClock.counts == stepClock.counts)
        #expect(bulkClock.seconds(costs) == stepClock.seconds(costs))
        #expect(bulk.checkInvariants() == step.checkInvariants())
        if bulkOutcomes.allSatisfy({ $0 == .ok }) { #expect(bulk.module.pml4e.value(at: GuestRegion512G(1))) }
        // An edk2 call over more than three 1G regions replays a span longer
        // than one region (the second region it enters already has a memo).
        let longest = bulk.log.compactMap { $0.hasPrefix("replayed ") ? UInt64($0.split(separator: " ")[1]) : nil }.max() ?? 0
        if bulkOutcomes.allSatisfy({ $0 == .ok }), calls.contains(where: { !$0.linux && $0.0.count > 3 * 512 * 512 }) {
            #expect(longest > 512)
        }
    }

    /// With 1G private mappings (issue 18 §3): random accept calls (Linux,
    /// whose 1G TDCALL maps whole GiBs now, edk2 at 2M, and short edk2 4K
    /// calls) on 1G or 2M folios across the 512 GiB boundary, some GiBs
    /// faulted in at 1G by the host first (`KVM_PRE_FAULT_MEMORY`): bulk
    /// equals stepping, 1G leaves, splits and all.
    @Test(arguments: [1, 2, 3, 4, 5, 6, 7, 8] as [UInt64])
    func acceptsWith1GPrivateMappingsEqualStepping(seed: UInt64) throws {
        var rng = SplitMix64(seed: seed &* 31 &+ 1000)
        let g1 = PageLevel.size1G.pages, chunk = PageLevel.size2M.pages
        var features = TDXModuleFeatures(); features.privateMappings1G = true
        features.dynamicPAMT = rng.next() % 4 != 0
        var options = KVMOptions(); options.lpagePrecheck = rng.next() % 2 == 0
        let backing: GmemBacking = rng.next() % 3 == 0 ? .hugetlb2M : .hugetlb1G
        let gib = 3 + rng.next() % 3
        let base = GuestRegion512G(1).firstFrame - (1 + rng.next() % 2) * g1
        let slot = Memslot(id: 1, baseGFN: base, pages: gib * g1, backing: backing)
        let prefault = (0..<gib).filter { _ in rng.next() % 3 == 0 }
        // Accept calls: linux, edk2 2M, or a short edk2 4K call.
        var calls: [(Range<GuestFrameNumber>, driver: Int)] = []
        var g = base
        while g < slot.frames.upperBound {
            let d = Int(rng.next() % 3)
            let n = d == 2 ? 1 + rng.next() % 600 : (1 + rng.next() % (gib * 512)) * chunk
            let end = min(slot.frames.upperBound, g + n)
            calls.append((g..<end, d))
            g = end
        }
        let costs = CostTable(try Calibration.builtIn())
        func run(step: Bool) throws -> (TDXVM, PhaseClock, [AcceptOutcome]) {
            let vm = try TDXVM(options: options, features: features, vcpus: 2, slots: [slot], costs: costs)
            vm.finalize()
            vm.logEnabled = !step
            for r in prefault { _ = vm.hostReadd(Range(start: base + r * g1, count: 1)) }
            let drivers: [TDXAcceptDriver] = [.linux, .edk2(pageSize: .size2M), .edk2(pageSize: .size4K)]
            let acc = drivers.map { TDXAcceptor(host: vm, driver: $0, costs: costs) }
            for a in acc { a.stepByStep = step }
            var clock = PhaseClock(vcpus: 2)
            let outcomes = calls.map { r, d in acc[d].accept(AddressRange(frames: r), vcpu: 0, clock: &clock) }
            return (vm, clock, outcomes)
        }
        let (bulk, bulkClock, bulkOutcomes) = try run(step: false), (step, stepClock, stepOutcomes) = try run(step: true)
        #expect(bulkOutcomes == stepOutcomes)
        #expect(Self.summary(bulk) == Self.summary(step))
        #expect(bulkClock.counts == stepClock.counts)
        #expect(bulkClock.seconds(costs) == stepClock.seconds(costs))
        #expect(bulk.checkInvariants() == step.checkInvariants())
        #expect(bulk.checkInvariants().isEmpty)
        if backing == .hugetlb1G && calls.contains(where: { $0.driver == 0 && $0.0.count >= 2 * g1 }) { #expect(bulk.pages1G > 0) }
    }

    /// Linux's `tdx_accept_memory()` over many GiB: the failed 1G TDCALL at
    /// each region start and the region's chunks are replayed for whole
    /// regions at once, equal to stepping, in fewer replays than regions.
    @Test(arguments: [false, true])
    func linuxAcceptOverManyRegionsEqualsStepping(huge: Bool) throws {
        let costs = CostTable(try Calibration.builtIn())
        let (options, features) = huge ? (KVMOptions(), TDXModuleFeatures()) : (KVMOptions.upstream4K, TDXModuleFeatures())
        // 4K-mapped memory steps 512 TDCALLs a chunk: a smaller range there.
        let gib: UInt64 = huge ? 9 : 4
        let base = GuestRegion512G(1).firstFrame - 2 * PageLevel.size1G.pages - 3 * PageLevel.size2M.pages
        let frames = base..<(base + gib * PageLevel.size1G.pages + 77)
        func run(step: Bool) throws -> (TDXVM, PhaseClock, AcceptOutcome) {
            let vm = try TDXVM(options: options, features: features, vcpus: 2,
                               slots: [Memslot(id: 1, baseGFN: base, pages: UInt64(frames.count), backing: huge ? .hugetlb2M : .buddy)], costs: costs)
            vm.finalize()
            vm.logEnabled = !step
            let linux = TDXAcceptor(host: vm, driver: .linux, costs: costs)
            linux.stepByStep = step
            var clock = PhaseClock(vcpus: 2)
            let o = linux.accept(AddressRange(frames: frames), vcpu: 0, clock: &clock)
            return (vm, clock, o)
        }
        let (bulk, bulkClock, bulkOutcome) = try run(step: false), (step, stepClock, stepOutcome) = try run(step: true)
        #expect(bulkOutcome == .ok && stepOutcome == .ok)
        #expect(Self.summary(bulk) == Self.summary(step))
        #expect(bulkClock.counts == stepClock.counts && bulkClock.seconds(costs) == stepClock.seconds(costs))
        // A 1G attempt at each 1G-aligned frame with a GiB left: the range
        // starts 3 chunks before one and ends 77 frames past a GiB multiple.
        #expect(bulkClock.counts[.tdxAccept1GOperandInvalid] == gib - 1)
        // Once the contexts of a region's first chunks are memoised, the rest replays in one span.
        let replays = bulk.log.filter { $0.hasPrefix("replayed ") }.count
        if huge { #expect(replays < Int(gib) - 1) }
    }

    /// S-EPT pool events replayed `k` times at once equal running them one
    /// by one: pool pages, split-cache top-ups and dequeues, the PAMT.ADDs
    /// of the pool ranges they open, with the pool starting anywhere in a
    /// 2M range and sequences that repeat only after several chunks.
    @Test(arguments: Array(UInt64(1)...12))
    func poolEventsInBulkEqualStepping(seed: UInt64) throws {
        var rng = SplitMix64(seed: 100 + seed)
        var features = TDXModuleFeatures()
        features.dynamicPAMT = rng.next() % 4 != 0
        // Each atom is a sequence the model really issues: a fault's 4K
        // table, a PD or PDPT link, a 2M split (top-up, the S-EPT page from
        // the cache, the guest range's pair).
        let atoms: [[PoolEvent]] = [[.septPage(viaSplitCache: false)], [.upperTablePage],
                                    [.splitTopup, .septPage(viaSplitCache: true), .dequeueGuestPair]]
        var events: [PoolEvent] = []
        for _ in 0..<(1 + rng.next() % 4) { events += atoms[Int(rng.next() % 3)] }
        let before = rng.next() % 1500, k = 1 + rng.next() % 3000
        func make() throws -> TDXVM {
            let vm = try TDXVM(options: KVMOptions(), features: features, vcpus: 2,
                               slots: [Memslot(id: 1, baseGFN: GFN(0), pages: 512, backing: .hugetlb2M)])
            vm.finalize()
            for _ in 0..<before { _ = vm.allocSeptPage(viaSplitCache: false) }
            return vm
        }
        let bulk = try make(), step = try make()
        bulk.replayPoolEvents(events, times: k)
        for _ in 0..<k {
            for e in events {
                switch e {
                case .septPage(let via): _ = step.allocSeptPage(viaSplitCache: via)
                case .upperTablePage: _ = step.allocUpperTablePage()
                case .splitTopup: _ = step.topUpSplitCache()
                case .dequeueGuestPair: _ = step.dequeueGuestPair()
                }
            }
        }
        #expect(Self.summary(bulk) == Self.summary(step))
        #expect(bulk.module.calls == step.module.calls && bulk.counters == step.counters)
        // Plain pages alone take the arithmetic path.
        let plainBulk = try make(), plainStep = try make()
        plainBulk.takeSeptPages(k)
        for _ in 0..<k { _ = plainStep.allocSeptPage(viaSplitCache: false) }
        #expect(Self.summary(plainBulk) == Self.summary(plainStep))
    }
}
