import CoCoGuest
import CostModel
import KVM
import MemoryModel
import Reports
import Simulation
import TDXModule
import Testing

/// A runnable TD with every upper table present and one vCPU in the guest.
func runnableTD(_ f: TDXModuleFeatures = TDXModuleFeatures()) -> TrustDomain {
    let td = TrustDomain(features: f, vcpus: 1)
    #expect(td.septAdd(gfn: GFN(0), entryLevel: 4, pageHFN: HFN(1 << 30)) == .success)
    #expect(td.septAdd(gfn: GFN(0), entryLevel: 3, pageHFN: HFN(1 << 30 | 1)) == .success)
    td.mrFinalize()
    td.enter(vcpu: 0)
    return td
}

func hugeVM(_ configure: (inout KVMOptions) -> Void = { _ in }, backing: GmemBacking = .hugetlb2M) throws -> TDXVM {
    var o = KVMOptions()
    configure(&o)
    let vm = try TDXVM(options: o, features: TDXModuleFeatures(), vcpus: 2,
                       slots: [Memslot(id: 1, baseGFN: GFN(0), pages: 8 * 512, backing: backing)])
    vm.finalize()
    return vm
}

@Suite struct TDXModuleTests {
    @Test func acceptCaseTableFollowsModuleCodeAndSpecOption() {
        for cases in AcceptWalkCases.allCases {
            var f = TDXModuleFeatures(); f.acceptWalkCases = cases
            let td = runnableTD(f)
            #expect(td.accept(gfn: GFN(0), level: .size2M) == .eptViolation(acceptLevel: .size2M))  // nothing mapped
            #expect(td.accept(gfn: GFN(0), level: .size1G) == .status(.operandInvalid))
            #expect(td.pageAug(gfn: GFN(0), level: .size2M, hfn: HFN(512)) == .success)
            #expect(td.accept(gfn: GFN(5), level: .size4K) == .eptViolation(acceptLevel: .size4K))  // 2M PENDING above
            #expect(td.accept(gfn: GFN(0), level: .size2M) == .status(.success))
            #expect(td.accept(gfn: GFN(0), level: .size2M) == .status(.pageAlreadyAccepted))
            let above: TDXStatus = cases == .moduleCode ? .pageAlreadyAccepted : .pageSizeMismatch
            #expect(td.accept(gfn: GFN(5), level: .size4K) == .status(above))
            // Host mapped 4K, guest accepts 2M: SIZE_MISMATCH.
            #expect(td.septAdd(gfn: GFN(512), entryLevel: 2, pageHFN: HFN(1 << 30 | 2)) == .success)
            #expect(td.pageAug(gfn: GFN(512), level: .size4K, hfn: HFN(4096)) == .success)
            #expect(td.accept(gfn: GFN(512), level: .size2M) == .status(.pageSizeMismatch))
            #expect(td.accept(gfn: GFN(512), level: .size4K) == .status(.success))
            #expect(td.isAccessible(Range(raw: 0..<513)) && !td.isAccessible(Range(raw: 0..<514)))
        }
    }

    @Test func demoteNeedsBlockedAndTrackedAndTheEpochRules() {
        let td = runnableTD()
        #expect(td.pageAug(gfn: GFN(0), level: .size2M, hfn: HFN(512)) == .success)
        #expect(td.demote(gfn: GFN(0), level: .size2M, pageHFN: HFN(9), pamtPagesGiven: true) == .gpaRangeNotBlocked)
        #expect(td.rangeBlock(gfn: GFN(0), level: .size2M) == .success)
        #expect(td.rangeBlock(gfn: GFN(0), level: .size2M) == .gpaRangeAlreadyBlocked)
        #expect(td.demote(gfn: GFN(0), level: .size2M, pageHFN: HFN(9), pamtPagesGiven: true) == .tlbTrackingNotDone)
        #expect(td.track() == .success)
        // vCPU 0 still runs in the blocking epoch: not tracked, and a second TRACK is busy.
        #expect(td.demote(gfn: GFN(0), level: .size2M, pageHFN: HFN(9), pamtPagesGiven: true) == .tlbTrackingNotDone)
        #expect(td.track() == .previousTLBEpochBusy)
        #expect(td.kickAll() == 1)
        td.hold(.guestEntry(gfn: GFN(0), level: .size2M), vcpu: 0)
        #expect(td.demote(gfn: GFN(0), level: .size2M, pageHFN: HFN(9), pamtPagesGiven: true) == .operandBusy)
        td.kickAll()
        #expect(td.demote(gfn: GFN(0), level: .size2M, pageHFN: HFN(9), pamtPagesGiven: true) == .success)
        #expect(td.entry(gfn: GFN(0), level: .size2M).state == .nlMapped)
        #expect(td.entry(gfn: GFN(7), level: .size4K).state == .pending)  // children unblocked, no UNBLOCK needed
        #expect(td.pamt4K.value(at: HostRegion2M(1)))  // DPAMT installed for the guest range by DEMOTE
    }

    @Test func demoteOnLegacyModuleIsInterruptible() {
        let td = runnableTD(.legacy)
        #expect(td.pageAug(gfn: GFN(0), level: .size2M, hfn: HFN(512)) == .success)
        #expect(td.rangeBlock(gfn: GFN(0), level: .size2M) == .success)
        #expect(td.track() == .success); td.kickAll()
        td.raiseHostInterrupt()
        #expect(td.demote(gfn: GFN(0), level: .size2M, pageHFN: HFN(9), pamtPagesGiven: false) == .interruptedRestartable)
        #expect(td.demote(gfn: GFN(0), level: .size2M, pageHFN: HFN(9), pamtPagesGiven: false) == .success)
    }

    @Test func promoteNeedsUniformContiguousChildren() {
        let td = runnableTD()
        #expect(td.septAdd(gfn: GFN(0), entryLevel: 2, pageHFN: HFN(9)) == .success)
        for g in 0..<512 as Range<UInt64> { #expect(td.pageAug(gfn: GFN(g), level: .size4K, hfn: HFN(512 + g)) == .success) }
        #expect(td.accept(gfn: GFN(3), level: .size4K) == .status(.success))  // 511 PENDING + 1 MAPPED
        #expect(td.rangeBlock(gfn: GFN(0), level: .size2M) == .success)
        #expect(td.track() == .success); td.kickAll()
        #expect(td.promote(gfn: GFN(0), level: .size2M) == .eptInvalidPromoteConditions)
    }

    /// TDH.MEM.RANGE.UNBLOCK: only a blocked entry, only once tracked, back
    /// to the state it was blocked from.
    @Test func unblockNeedsABlockedTrackedEntry() {
        let td = runnableTD()
        #expect(td.pageAug(gfn: GFN(0), level: .size2M, hfn: HFN(512)) == .success)
        #expect(td.rangeUnblock(gfn: GFN(0), level: .size2M) == .eptEntryStateIncorrect)  // not blocked
        #expect(td.rangeBlock(gfn: GFN(0), level: .size2M) == .success)
        #expect(td.entry(gfn: GFN(0), level: .size2M).state == .pendingBlocked)
        #expect(td.rangeUnblock(gfn: GFN(0), level: .size2M) == .tlbTrackingNotDone)
        #expect(td.track() == .success); td.kickAll()
        td.hold(.treeLock, vcpu: 0)
        #expect(td.rangeUnblock(gfn: GFN(0), level: .size2M) == .operandBusy)
        td.kickAll()
        #expect(td.rangeUnblock(gfn: GFN(0), level: .size2M) == .success)
        #expect(td.entry(gfn: GFN(0), level: .size2M) == SEPTEntry(.pending, mapping: GFN(0), to: HFN(512)))
        #expect(td.calls[leaf: .memRangeUnblock, status: .success] == 1)
        // The guest can accept it again as if never blocked.
        #expect(td.accept(gfn: GFN(0), level: .size2M) == .status(.success))
    }
}

@Suite struct KVMHostTests {
    @Test func acceptFirstLinuxGuestGetsInhibitAndNoSplit() throws {
        let vm = try hugeVM()
        let acc = TDXAcceptor(host: vm, driver: .edk2(pageSize: .size4K), costs: CostTable(try Calibration.builtIn()))
        var clock = PhaseClock(vcpus: 1)
        #expect(acc.accept(AddressRange(start: 0x1000, size: 0x1000), vcpu: 0, clock: &clock) == .ok)
        #expect(vm.counters[.splitsAccept] == 0 && vm.pages4K == 1 && vm.pages2M == 0)
        #expect(vm.lpageInfo.lpage2M.value(at: GuestRegion2M(0)).guestInhibit && vm.lpageInfo.lpage1G.value(at: GuestRegion1G(0)).guestInhibit)
        // The rest of that 2M range stays 4K even when accepted at 2M: SIZE_MISMATCH, then 4K.
        #expect(acc.accept(AddressRange(start: 0, size: 2 << 20), vcpu: 0, clock: &clock) == .ok)
        #expect(vm.pages2M == 0 && vm.pages4K == 512)
        #expect(vm.checkInvariants().isEmpty)
    }

    @Test func accessBeforeAcceptSplitsUnderTheWriteLock() throws {
        let run = try HostRun(try HostScenario.parse("""
            td host=tdx-huge sept-ve-disable=off
            slot id=1 base=0 pages=4096
            finalize
            access 0x205
            """), calibration: try Calibration.builtIn(), log: true)
        try run.run()
        #expect(run.vm.counters[.splitsAccept] == 1)
        #expect(run.vm.pages2M == 0 && run.vm.pages4K == 512)
        #expect(run.vm.module.calls[leaf: .memPageDemote, status: .success] == 1)
        #expect(run.vm.outcome == .ok && run.vm.checkInvariants().isEmpty)
        // With SEPT_VE_DISABLE (Linux), touching the PENDING page kills the VM.
        let linux = try HostRun(try HostScenario.parse("td host=tdx-huge\nslot id=1 base=0 pages=4096\nfinalize\naccess 0x205\n"),
                                calibration: try Calibration.builtIn(), log: false)
        try linux.run()
        #expect(linux.vm.isDead)
    }

    /// Converting one accepted 4K page of a 2M mapping to shared, with the
    /// folio split failing, under each policy.
    @Test(arguments: ConversionPolicy.allCases)
    func conversionWithFolioSplitFailure(_ policy: ConversionPolicy) throws {
        let text = """
            td host=tdx-huge policy=\(policy.rawValue)
            slot id=1 base=0 pages=4096 backing=hugetlb-2m
            finalize
            accept 0x0+512 2m
            inject folio-split-nomem
            convert 0x7+1 shared
            check
            """
        let run = try HostRun(try HostScenario.parse(text), calibration: try Calibration.builtIn(), log: false)
        try run.run()
        let vm = run.vm
        let broken = vm.brokenOutcomes.joined(separator: "; ")
        switch policy {
        case .zapBeforeFolioSplit:
            #expect(broken.contains("after private memory was zapped") && broken.contains("neither private-mapped nor shared"))
        case .wipHugetlb, .septSplitFirst:
            #expect(broken.isEmpty, "\(broken)")
            #expect(vm.counters[.conversionsFailed] == 1 && vm.attributes.privateAttr.value(at: GFN(7)))
        case .multiFolio:
            #expect(broken.isEmpty && vm.counters[.conversionsFailed] == 0 && !vm.attributes.privateAttr.value(at: GFN(7)))
        }
        #expect(!broken.contains("invariant"))
    }

    @Test func wipHugetlbMapsLargerThanItsFolioOnSplitFailure() throws {
        let run = try HostRun(try HostScenario.parse("""
            td host=tdx-huge policy=wip-hugetlb
            slot id=1 base=0 pages=4096
            finalize
            accept 0x0+512 2m
            inject split-cache-nomem
            convert 0x7+1 shared
            """), calibration: try Calibration.builtIn(), log: false)
        try run.run()
        #expect(run.vm.brokenOutcomes.contains { $0.contains("larger than its folio") })
    }

    @Test func busyDemoteIsRetriedOnceWithNoVCPUs() throws {
        let run = try HostRun(try HostScenario.parse("""
            td host=tdx-huge
            slot id=1 base=0 pages=4096
            finalize
            accept 0x0+512 2m
            inject demote-busy
            inject block-busy
            convert 0x7+1 shared
            """), calibration: try Calibration.builtIn(), log: false)
        try run.run()
        let vm = run.vm
        #expect(vm.outcome == .ok && vm.counters[.splitsConversion] == 1)
        #expect(vm.module.calls[leaf: .memPageDemote, status: .operandBusy] == 1)
        #expect(vm.module.calls[leaf: .memRangeBlock, status: .operandBusy] == 1)
        #expect(vm.counters[.noVCPURetries] == 2)
        // tdh_do_no_vcpus() retries only TDX_OPERAND_BUSY: a TRACK that finds a
        // vCPU in the previous epoch bugs the VM.
        let track = try HostRun(try HostScenario.parse("td host=tdx-huge\nslot id=1 base=0 pages=4096\nfinalize\naccept 0x0+512 2m\ninject track-busy\nconvert 0x7+1 shared\n"),
                                calibration: try Calibration.builtIn(), log: false)
        try track.run()
        #expect(track.vm.module.calls[leaf: .memTrack, status: .previousTLBEpochBusy] == 1)
        if case .vmBugged = track.vm.outcome {} else { Issue.record("expected a bugged VM, got \(track.vm.outcomeString)") }
    }

    @Test func hugePagesNeedTheModuleFeatureOrTheWorkaround() throws {
        let legacy = try TDXVM(options: KVMOptions(), features: .legacy, vcpus: 1, slots: [Memslot(id: 1, baseGFN: GFN(0), pages: 512, backing: .hugetlb2M)])
        #expect(!legacy.hugePagesEnabled)
        var o = KVMOptions(); o.demoteRestartableLoop = true
        let loop = try TDXVM(options: o, features: .legacy, vcpus: 1, slots: [Memslot(id: 1, baseGFN: GFN(0), pages: 512, backing: .hugetlb2M)])
        #expect(loop.hugePagesEnabled)
    }

    @Test func seed004ScenarioShapes() throws {
        func run(_ f: (inout HostScenario) -> Void) throws -> TDXVM {
            var s = try HostScenario.parse(HostScenario.seed004)
            f(&s)
            let r = try HostRun(s, calibration: try Calibration.builtIn(), log: false)
            try r.run()
            return r.vm
        }
        let inhibit = try run { _ in }
        let noPrecheck = try run { $0.options.lpagePrecheck = false }
        #expect(inhibit.outcome == .ok && inhibit.brokenOutcomes.isEmpty)
        // The published shapes: thousands of 4K accepts where 2M was possible,
        // few accept-level write locks with the pre-check, many without.
        #expect(inhibit.counters[.accept4KWhere2MPossible] > 2000)
        #expect(inhibit.counters[.writeLockAcceptLevel] < 20)
        #expect(noPrecheck.counters[.writeLockAcceptLevel] > 100 * inhibit.counters[.writeLockAcceptLevel])
        #expect(inhibit.pages2M > 1000 && inhibit.pages2M == noPrecheck.pages2M)
    }

    @Test func badHostScenariosAreClearErrors() {
        for text in ["slot id=1 base=0", "td bogus=1\nslot id=1 base=0 pages=1", "td\nslot id=1 base=0 pages=8\nconvert 0x1 sideways",
                     "td\nslot id=1 base=0 pages=8\naccept 0x1+zz", "td\nslot id=1 base=0 pages=8\nfly"] {
            #expect(throws: CocomemError.self) { try HostScenario.parse(text) }
        }
    }
}

/// Seeded random operation sequences against the host, with faults; every
/// invariant is checked after every operation and GUEST_INHIBIT must never
/// clear. A failure prints the shortest failing sequence found by removing
/// operations one at a time.
@Suite struct HostRandomizedTests {
    static let verbs = ["accept 4k", "accept 2m", "access", "convert shared", "convert private", "punch",
                        "inject folio-split-nomem", "inject split-cache-nomem", "inject demote-busy", "inject block-busy",
                        "attributes shared", "attributes private"]

    static func sequence(seed: UInt64, length: Int) -> [String] {
        var rng = SplitMix64(seed: seed)
        return (0..<length).map { _ in
            let v = verbs[Int(rng.next() % UInt64(verbs.count))]
            let chunk = rng.next() % 4, off = rng.next() % 512
            let parts = v.split(separator: " ")
            switch parts[0] {
            case "accept":
                let start = chunk * 512 + (parts[1] == "2m" ? 0 : off)
                return "accept \(hex(start))+\(parts[1] == "2m" ? 512 : min(1 + rng.next() % 8, 2048 - start)) \(parts[1])"
            case "access": return "access \(hex(chunk * 512 + off))"
            case "convert", "attributes":
                let start = chunk * 512 + off
                return "\(parts[0]) \(hex(start))+\(min(1 + rng.next() % 4, 2048 - start)) \(parts[1])"
            case "punch": return "punch \(hex(chunk * 512))+512"
            default: return v
            }
        }
    }

    static func hex(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }

    /// Runs the sequence; returns the first violation, if any.
    static func failure(_ ops: [String], policy: ConversionPolicy) -> String? {
        let head = "td host=tdx-huge sept-ve-disable=off policy=\(policy.rawValue)\nslot id=1 base=0 pages=2048\nfinalize\n"
        guard let s = try? HostScenario.parse(head + ops.joined(separator: "\n")),
              let run = try? HostRun(s, calibration: try Calibration.builtIn(), log: false) else { return "scenario did not parse" }
        var inhibited = Set<UInt64>()
        for (i, c) in s.commands.enumerated() {
            do { try run.execute(c, line: i) } catch { return "threw \(error)" }
            let v = run.vm.checkInvariants()
            if !v.isEmpty { return "after op \(i): \(v[0])" }
            for g in 0..<4 as Range<UInt64> where run.vm.lpageInfo.lpage2M.value(at: GuestRegion2M(g)).guestInhibit { inhibited.insert(g) }
            for g in inhibited where !run.vm.lpageInfo.lpage2M.value(at: GuestRegion2M(g)).guestInhibit { return "GUEST_INHIBIT cleared at chunk \(g)" }
            if run.vm.isDead { break }
        }
        return nil
    }

    static func shrink(_ ops: [String], policy: ConversionPolicy) -> [String] {
        var cur = ops
        var i = 0
        while i < cur.count {
            var t = cur; t.remove(at: i)
            if failure(t, policy: policy) != nil { cur = t } else { i += 1 }
        }
        return cur
    }

    @Test(arguments: [ConversionPolicy.septSplitFirst, .multiFolio])
    func invariantsHoldOnRandomSequences(_ policy: ConversionPolicy) {
        for seed in 0..<600 as Range<UInt64> {
            let ops = Self.sequence(seed: seed &* 7919 &+ UInt64(policy.rawValue.count), length: 24)
            if let f = Self.failure(ops, policy: policy) {
                let short = Self.shrink(ops, policy: policy)
                Issue.record("seed \(seed), \(policy.rawValue): \(f)\nshortest sequence:\n\(short.joined(separator: "\n"))")
                return
            }
        }
    }
}

@Suite struct HostBulkTests {
    /// Piecewise conversion in bulk equals converting page by page: same
    /// state, SEAMCALL counts, counters, pool and epoch.
    @Test(arguments: [false, true])
    func convertInPiecesBulkEqualsStepByStep(_ dpamt: Bool) throws {
        func make() throws -> TDXVM {
            var f = TDXModuleFeatures(); f.dynamicPAMT = dpamt
            let vm = try TDXVM(options: KVMOptions(), features: f, vcpus: 4,
                               slots: [Memslot(id: 1, baseGFN: GFN(0), pages: 40 * 512, backing: .hugetlb2M)])
            vm.finalize()
            let acc = TDXAcceptor(host: vm, driver: .linux, costs: CostTable(try Calibration.builtIn()))
            var clock = PhaseClock(vcpus: 1)
            #expect(acc.accept(AddressRange(start: 0, size: 40 << 21), vcpu: 0, clock: &clock) == .ok)
            return vm
        }
        let bulk = try make(), step = try make()
        for (vm, s) in [(bulk, false), (step, true)] {
            #expect(vm.convertInPieces(Range(raw: 300..<(30 * 512 + 7)), toPrivate: false, stepByStep: s) == .ok)
            #expect(vm.convertInPieces(Range(raw: 300..<(20 * 512)), toPrivate: true, stepByStep: s) == .ok)
        }
        #expect(bulk.statsJSON.serialized() == step.statsJSON.serialized())
        #expect(bulk.mmu.mirror2M == step.mmu.mirror2M && bulk.mmu.mirror4K == step.mmu.mirror4K && bulk.attributes.privateAttr == step.attributes.privateAttr)
        #expect(bulk.module.pde == step.module.pde && bulk.module.pte == step.module.pte)
        #expect(bulk.tdx.pamtRefcount == step.tdx.pamtRefcount && bulk.module.pamt4K == step.module.pamt4K)
        #expect(bulk.gmem.folioOrder == step.gmem.folioOrder && bulk.septPool == step.septPool && bulk.splitCache == step.splitCache)
        #expect(bulk.module.tdEpoch == step.module.tdEpoch && bulk.ops == step.ops)
        #expect(bulk.checkInvariants().isEmpty)
        #expect(bulk.counters[.splitsConversion] == 31)  // chunks 0...30, the last one partly
    }
}
