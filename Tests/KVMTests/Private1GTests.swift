import CoCoGuest
import CostModel
@testable import KVM
import MemoryModel
import Reports
import Simulation
import TDXModule
import Testing

/// KVM on a module with 1G private mappings (issue 18 §3, forward-looking):
/// 1G leaves where the guest_memfd folio is a 1G hugetlb folio and
/// `lpage_info` allows it, split 1G → 2M → 4K as the guest's accept level
/// or a conversion needs, zapped and punched at 1G.
@Suite struct Private1GTests {
    static let g1 = PageLevel.size1G.pages

    /// A runnable tdx-huge TD of `gib` GiB on `backing`, the module with 1G
    /// private mappings unless `module1G` is false.
    func vm(gib: UInt64 = 2, backing: GmemBacking = .hugetlb1G, module1G: Bool = true, base: UInt64 = 0,
            _ configure: (inout KVMOptions) -> Void = { _ in }) throws -> TDXVM {
        var o = KVMOptions(); configure(&o)
        var f = TDXModuleFeatures(); f.privateMappings1G = module1G
        let vm = try TDXVM(options: o, features: f, vcpus: 2,
                           slots: [Memslot(id: 1, baseGFN: GFN(base), pages: gib * Self.g1, backing: backing)],
                           costs: CostTable(try Calibration.builtIn()))
        vm.finalize()
        return vm
    }

    func accept(_ vm: TDXVM, _ frames: Range<UInt64>, _ driver: TDXAcceptDriver = .linux) throws -> AcceptOutcome {
        let acc = TDXAcceptor(host: vm, driver: driver, costs: CostTable(try Calibration.builtIn()))
        var clock = PhaseClock(vcpus: 1)
        return acc.accept(AddressRange(frames: Range(raw: frames)), vcpu: 0, clock: &clock)
    }

    /// Linux's `try_accept_one()` at 1G succeeds: the 1G ACCEPT exits with
    /// accept level 1G, KVM AUGs the whole GiB (`max_mapping_level` from the
    /// 1G folio and `lpage_info` at 1G), and the re-executed ACCEPT maps it.
    /// Without the feature the 1G TDCALL is OPERAND_INVALID and Linux falls
    /// back to 512 2M accepts per GiB.
    @Test func linuxAcceptsAt1G() throws {
        let v = try vm()
        #expect(try accept(v, 0..<(2 * Self.g1)) == .ok)
        #expect(v.pages1G == 2 && v.pages2M == 0 && v.pages4K == 0)
        #expect(v.module.calls[leaf: .memPageAug, status: .success] == 2)
        #expect(v.module.calls[leaf: .tdgMemPageAccept, status: .success] == 2)
        #expect(v.module.isAccessible(Range(raw: 0..<(2 * Self.g1))))
        #expect(v.septPages == 1)  // the PDPT only: no PD, no 4K table
        #expect(v.checkInvariants().isEmpty)
        let old = try vm(module1G: false)
        #expect(try accept(old, 0..<(2 * Self.g1)) == .ok)
        #expect(old.pages1G == 0 && old.pages2M == 1024)
        #expect(old.module.calls[leaf: .tdgMemPageAccept, status: .operandInvalid] == 2)
    }

    /// On 2M folios the module's 1G ACCEPT exits, KVM can map only 2M (the
    /// folio order), so the retried 1G ACCEPT meets a PD: SIZE_MISMATCH
    /// (case 3), and Linux falls back to 2M.
    @Test func on2MFoliosThe1GAcceptFallsBackToSizeMismatch() throws {
        let v = try vm(gib: 1, backing: .hugetlb2M)
        #expect(try accept(v, 0..<Self.g1) == .ok)
        #expect(v.pages1G == 0 && v.pages2M == 512)
        #expect(v.module.calls[leaf: .tdgMemPageAccept, status: .pageSizeMismatch] == 1)
        #expect(v.checkInvariants().isEmpty)
    }

    /// A 4K accept inside a 1G leaf (TDVF at 4K, after the host faulted the
    /// GiB in): `tdx_honor_guest_accept_level()` splits the crossing leaves,
    /// 1G → 2M, then the 2M leaf → 4K, and sets GUEST_INHIBIT at 1G and 2M.
    @Test func a4KAcceptSplits1GThen2M() throws {
        let v = try vm()
        #expect(v.hostReadd(Range(raw: 0..<1)) == .ok && v.hostReadd(Range(raw: Self.g1..<(Self.g1 + 1))) == .ok)
        #expect(v.pages1G == 2)
        #expect(try accept(v, 0..<1, .edk2(pageSize: .size4K)) == .ok)
        #expect(v.private1G.splits == 1 && v.counters[.splitsAccept] == 2)
        #expect(v.pages1G == 1 && v.pages2M == 511 && v.pages4K == 512)
        #expect(v.lpageInfo.lpage1G.value(at: GuestRegion1G(0)).guestInhibit && v.lpageInfo.lpage2M.value(at: GuestRegion2M(0)).guestInhibit)
        #expect(v.module.calls[leaf: .memPageDemote, status: .success] == 2)
        #expect(v.module.isAccessible(Range(raw: 0..<1)) && !v.module.isAccessible(Range(raw: 1..<2)))
        #expect(v.checkInvariants().isEmpty)
        // The next region is untouched: still one 1G leaf.
        #expect(v.mmu.mirror1G.value(at: GuestRegion1G(1)))
    }

    /// A 2M accept inside a 1G leaf splits it to 2M only; later 2M accepts
    /// in the region find GUEST_INHIBIT at 1G, so the region is never mapped
    /// at 1G again.
    @Test func a2MAcceptSplits1GOnly() throws {
        let v = try vm(gib: 1)
        #expect(v.hostReadd(Range(raw: 0..<1)) == .ok)  // KVM_PRE_FAULT_MEMORY maps the GiB
        #expect(v.pages1G == 1)
        #expect(try accept(v, 512..<1024, .edk2(pageSize: .size2M)) == .ok)
        #expect(v.private1G.splits == 1 && v.pages1G == 0 && v.pages2M == 512 && v.pages4K == 0)
        #expect(v.maxPrivateLevel(GFN(0)) == .size2M)
        #expect(v.checkInvariants().isEmpty)
    }

    /// Conversion to shared of one page (in place: the folio stays): the
    /// 1G and 2M leaves crossing it split, the page is zapped at 4K.
    @Test func convertingOnePageSplitsAndZapsAt4K() throws {
        let v = try vm(gib: 1) { $0.conversionPolicy = .inPlace }
        #expect(try accept(v, 0..<Self.g1) == .ok)
        #expect(v.convert(Range(raw: 700..<701), toPrivate: false) == .ok)
        #expect(v.private1G.splits == 1 && v.counters[.splitsConversion] == 2 && v.counters[.zapsPrivate4K] == 1)
        #expect(v.pages2M == 511 && v.pages4K == 511)
        #expect(v.checkInvariants().isEmpty)
        // A 1G leaf is never made over mixed attributes.
        #expect(v.maxPrivateLevel(GFN(200 * 512)) == .size2M)
    }

    /// Punching the whole 1G folio zaps the 1G leaf at 1G: BLOCK, TRACK,
    /// REMOVE at 1G, WBINVD of its 262,144 pages.
    @Test func punchingTheFolioZapsAt1G() throws {
        let v = try vm(gib: 2)
        #expect(try accept(v, 0..<(2 * Self.g1)) == .ok)
        let wbinvd = v.module.calls[leaf: .phymemPageWbinvd, status: .success]
        #expect(v.punchHole(Range(raw: Self.g1..<(2 * Self.g1))) == .ok)
        #expect(v.private1G.zaps == 1 && v.pages1G == 1)
        #expect(v.module.calls[leaf: .memPageRemove, status: .success] == 1)
        #expect(v.module.calls[leaf: .phymemPageWbinvd, status: .success] - wbinvd == Self.g1)
        #expect(v.checkInvariants().isEmpty)
    }

    /// `lpage_info` at 1G: with a misaligned userspace address (and the
    /// gmem FIXUP off) `kvm_alloc_memslot_metadata()` sets `disallow_lpage`
    /// on every huge range, 1G included: 4K only.
    @Test func disallowLpageAt1GHoldsBack1G() throws {
        var f = TDXModuleFeatures(); f.privateMappings1G = true
        var o = KVMOptions(); o.gmemIgnoresUaddrAlignment = false
        let v = try TDXVM(options: o, features: f, vcpus: 1,
                          slots: [Memslot(id: 1, baseGFN: GFN(0), pages: Self.g1, backing: .hugetlb1G, userspaceAddrAligned: false)])
        v.finalize()
        #expect(v.lpageInfo.lpage1G.value(at: GuestRegion1G(0)).disallow > 0)
        #expect(v.maxPrivateLevel(GFN(0)) == .size4K)
        #expect(try vm(gib: 1).maxPrivateLevel(GFN(0)) == .size1G)
    }

    /// A booted Linux TD gets no 1G mapping, even with the option and 1G
    /// folios: the kernel accepts 4 MiB blocks with 2M TDCALLs, and each 2M
    /// ACCEPT's `tdx_honor_guest_accept_level()` sets GUEST_INHIBIT at 1G
    /// (TDVF's 2M accepts do the same below 4 GiB). What pays off is a 1G
    /// ACCEPT of a whole GiB or the host mapping first (tests above).
    @Test func aBootedLinuxTDGetsNo1GMapping() throws {
        var s = Scenario()
        s.memory = ByteCount.gib(8).value; s.tdxHost = .tdxHuge; s.gmemBacking = .hugetlb1G; s.tdxModule1G = true
        let r = try BootSimulation(scenario: s, calibration: try Calibration.builtIn()).run()
        let host = try #require(r.host)
        #expect(host.module.features.privateMappings1G && host.pages1G == 0 && host.pages2M > 0)
        #expect(r.counts[.tdxAccept1GSuccess] == 0 && r.counts[.tdxAccept2MSuccess] > 0)
        // The first high GiB, which the kernel accepts from: inhibited at 1G.
        #expect(host.lpageInfo.lpage1G.value(at: GuestRegion1G(4)).guestInhibit)
    }

    /// The host file key and its report block.
    @Test func hostFileKeyTurnsItOn() throws {
        let body = "\nslot id=1 base=0 pages=0x40000 backing=hugetlb-1g\nfinalize\naccept 0x0+0x40000 linux\n"
        let s = try HostScenario.parse("td host=tdx-huge module-1g=on" + body)
        #expect(s.features.privateMappings1G)
        let run = try HostRun(s, calibration: try Calibration.builtIn(), log: false)
        try run.run()
        #expect(run.vm.pages1G == 1)
        #expect(run.vm.statsText.contains("pages_1g 1"))
        #expect(run.vm.statsJSON.serialized().contains("\"pages_1g\""))
        // Off (the default), the report has no 1G block.
        let off = try HostRun(try HostScenario.parse("td host=tdx-huge" + body),
                              calibration: try Calibration.builtIn(), log: false)
        try off.run()
        #expect(!off.vm.statsJSON.serialized().contains("pages_1g") && off.vm.pages1G == 0)
        #expect(throws: (any Error).self) { try HostScenario.parse("td module-1g=maybe\n") }
    }
}
