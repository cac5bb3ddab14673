import CoCoGuest
import CostModel
import KVM
import MemoryModel
import TDXModule
import Testing

/// TDVMCALL_STATUS_RETRY of a MapGPA (KVM's `tdx_complete_vmcall_map_gpa()`:
/// after each 2 MiB piece but the last, `kvm_vcpu_has_events()` ends the
/// call with R11 = the next piece). The guest's `tdx_map_gpa()` issues the
/// rest again from R11; a conversion cut into several TDVMCALLs must leave
/// the host exactly as one uncut call does. The reference is the uncut
/// call on a twin VM.
@Suite struct MapGPARetryTests {
    static let pages: UInt64 = 48 * 512

    /// The guest's `tdx_map_gpa()` loop against `vm`, `events` answering
    /// each of KVM's checks: the calls issued, the checks asked, and the
    /// results in order.
    static func mapInPieces(_ vm: TDXVM, _ frames: Range<GuestFrameNumber>, toPrivate: Bool,
                            events: () -> Bool) -> (calls: Int, asks: Int, results: [MapGPAResult]) {
        var start = frames.lowerBound, calls = 0, asks = 0
        var results: [MapGPAResult] = []
        while true {
            calls += 1
            let m = vm.mapGPA(start..<frames.upperBound, toPrivate: toPrivate, hasEvents: { _ in asks += 1; return events() })
            results.append(m)
            guard m.failure == nil, let next = m.retryAt else { break }
            start = next
        }
        return (calls, asks, results)
    }

    /// Seeded random conversions on twin VMs (buddy and hugetlb 2M folios, 1
    /// to 6 vCPUs, accepted at 2M and 4K so ranges mix leaf sizes): one VM
    /// converts each range in one call, the other in as many as a seeded
    /// event source cuts it into. After each conversion the two are
    /// identical (S-EPT, PAMT, epochs, counters, operations); the exits add
    /// up; KVM is asked once per piece end but the last of each call and
    /// every RETRY's R11 is a 2 MiB step from where the call began.
    @Test func cutConversionEqualsOneCall() throws {
        let costs = CostTable(try Calibration.builtIn())
        var retries = 0
        for seed in 0..<24 as Range<UInt64> {
            var rng = SplitMix64(seed: seed)
            let backing: GmemBacking = seed % 3 == 0 ? .buddy : .hugetlb2M
            let vcpus = 1 + Int(rng.next() % 6)
            let a = try BulkZapTests.make(dpamt: seed % 2 == 0, backing: backing, vcpus: vcpus, steps: false)
            let b = try BulkZapTests.make(dpamt: seed % 2 == 0, backing: backing, vcpus: vcpus, steps: false)
            for step in 0..<6 {
                let start = GFN(step == 0 ? 0 : rng.next() % (Self.pages - 1))
                let n = step == 0 ? Self.pages : 1 + rng.next() % (Self.pages / 2)
                let r = start..<min(start + n, GFN(Self.pages))
                let toPrivate = step % 3 == 2
                let acceptLinux = rng.next() % 2 == 0
                let cutEvery = 1 + rng.next() % 4
                for vm in [a, b] where step % 3 == 0 {
                    // Accept what is private, so that a conversion to shared has leaves to zap.
                    let acc = TDXAcceptor(host: vm, driver: acceptLinux ? .linux : .edk2(pageSize: .size4K), costs: costs)
                    var clock = PhaseClock(vcpus: vcpus)
                    for (p, isPrivate) in vm.attributes.privateAttr.runs(in: r) where isPrivate {
                        _ = acc.accept(AddressRange(frames: p), vcpu: 0, clock: &clock)
                    }
                }
                let whole = a.mapGPA(r, toPrivate: toPrivate)
                var k: UInt64 = 0
                let (calls, asks, results) = Self.mapInPieces(b, r, toPrivate: toPrivate, events: { k += 1; return k % cutEvery == 0 })
                #expect(whole.retryAt == nil)
                #expect(BulkZapTests.snapshot(a) == BulkZapTests.snapshot(b), "seed \(seed) step \(step)")
                let pieces = divRoundUp(r.length, 512)
                #expect(results.reduce(0) { $0 + $1.vmmExits } == whole.vmmExits, "seed \(seed) step \(step)")
                if whole.failure == nil {
                    #expect(whole.vmmExits == pieces)
                    // Each call but the last was cut; each cut after a check that said yes.
                    #expect(calls == 1 + results.filter { $0.retryAt != nil }.count)
                    #expect(UInt64(asks) == pieces - 1, "seed \(seed) step \(step)")
                    #expect(UInt64(calls - 1) == (pieces - 1) / cutEvery)
                    for m in results { if let g = m.retryAt { #expect((g - r.lowerBound) % 512 == 0 && g > r.lowerBound && g < r.upperBound) } }
                }
                retries += calls - 1
            }
        }
        #expect(retries > 50, "only \(retries) RETRY answers")
    }

    /// A host asked after every piece and always told yes cuts a 256 MiB
    /// conversion into 128 TDVMCALLs of one exit each.
    @Test func alwaysPendingMakesOneCallAPiece() throws {
        let costs = CostTable(try Calibration.builtIn())
        let vm = try TDXVM(options: KVMOptions(), features: TDXModuleFeatures(), vcpus: 4,
                           slots: [Memslot(id: 1, baseGFN: GFN(0), pages: 0x20000, backing: .buddy)])
        vm.finalize()
        var clock = PhaseClock(vcpus: 4)
        let pool = AddressRange(start: 0x67ff000, size: 256 << 20)
        #expect(TDXAcceptor(host: vm, driver: .linux, costs: costs).accept(pool, vcpu: 0, clock: &clock) == .ok)
        let (calls, asks, results) = Self.mapInPieces(vm, pool.framesCovering, toPrivate: false, events: { true })
        #expect(calls == 128 && asks == 127 && results.allSatisfy { $0.vmmExits == 1 && $0.failure == nil })
        #expect(results.reduce(0) { $0 + $1.zappedLeaves } == 65536)
    }
}
