import CoCoGuest
import CostModel
import KVM
import MemoryModel
import Reports
import Simulation
import TDXModule
import Testing

func hugeVM(_ configure: (inout KVMOptions) -> Void = { _ in }, backing: GmemBacking = .hugetlb2M) throws -> TDXVM {
    var o = KVMOptions()
    configure(&o)
    let vm = try TDXVM(options: o, features: TDXModuleFeatures(), vcpus: 2,
                       slots: [Memslot(id: 1, baseGFN: GFN(0), pages: 8 * 512, backing: backing)])
    vm.finalize()
    return vm
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
        case .inPlace:
            // No folio split to fail: the 2 MiB folio stays in the file.
            #expect(broken.isEmpty && vm.counters[.conversionsFailed] == 0 && !vm.attributes.privateAttr.value(at: GFN(7)))
            #expect(vm.gmem.folioOrder.value(at: GFN(7)) == 9 && vm.counters[.foliosSplit] == 0)
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
