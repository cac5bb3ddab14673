import CoCoGuest
import CostModel
import KVM
import MemoryModel
import Reports
import TDXModule
import Testing

/// The bulk zap (`TDXVM.zapLeaves`): converting a large range to shared
/// removes each private 4K or 2M leaf with BLOCK, TRACK (kicking every vCPU
/// in guest mode) and REMOVE (`tdx_sept_remove_private_spte()`); done at
/// once it must leave exactly what stepping leaf by leaf leaves. The
/// reference is the stepped path (`stepsZaps`), run on a twin VM.
@Suite struct BulkZapTests {
    static let pages: UInt64 = 48 * 512

    static func make(dpamt: Bool, backing: GmemBacking, vcpus: Int, steps: Bool) throws -> TDXVM {
        var f = TDXModuleFeatures(); f.dynamicPAMT = dpamt
        let vm = try TDXVM(options: KVMOptions(), features: f, vcpus: vcpus,
                           slots: [Memslot(id: 1, baseGFN: GFN(0), pages: pages, backing: backing)])
        vm.finalize()
        vm.stepsZaps = steps
        return vm
    }

    /// Everything a zap can change: the S-EPT and PAMT, the mirror, epochs,
    /// every counter, SEAMCALL and operation, the outcome and flags.
    static func snapshot(_ vm: TDXVM) -> String {
        let m = vm.module
        return "\(vm.statsJSON.serialized()) \(m.pde.starts) \(m.pde.values) \(m.pte.starts) \(m.pte.values) "
            + "\(m.pamt4K.starts) \(m.pamt4K.values) \(m.hpa4KInUse.starts) \(m.hpa4KInUse.values) \(m.tdEpoch) \(m.vcpuEpoch) "
            + "\(m.hostPriority4K.starts) \(m.acceptCounter.starts) \(vm.tdx.pamtRefcount.starts) \(vm.tdx.pamtRefcount.values) "
            + "\(vm.mmu.mirror2M.starts) \(vm.mmu.mirror2M.values) \(vm.mmu.mirror4K.starts) \(vm.mmu.mirror4K.values) "
            + "\(vm.ops) \(vm.counters) \(m.calls) \(vm.outcome) \(vm.brokenOutcomes) \(vm.gmem.folioAllocated.starts)"
    }

    /// Seeded random sequences on twin VMs (static and Dynamic PAMT, buddy
    /// and hugetlb 2M folios, 1 to 6 vCPUs, some halted or lagging an epoch):
    /// accepts at 2M and 4K (so ranges mix 2M and 4K leaves), conversions to
    /// shared by KVM_SET_MEMORY_ATTRIBUTES, the guest_memfd ioctl and
    /// MapGPA, and back. After every step the two are identical, and the
    /// bulk path did remove most of the leaves.
    @Test func bulkZapEqualsStepping() throws {
        let costs = CostTable(try Calibration.builtIn())
        var bulkLeaves: UInt64 = 0, stepped: UInt64 = 0, twoM: UInt64 = 0
        for seed in 0..<36 as Range<UInt64> {
            var rng = SplitMix64(seed: seed)
            let dpamt = seed % 2 == 0
            let backing: GmemBacking = seed % 3 == 0 ? .buddy : .hugetlb2M
            let vcpus = 1 + Int(rng.next() % 6)
            let a = try Self.make(dpamt: dpamt, backing: backing, vcpus: vcpus, steps: false)
            let b = try Self.make(dpamt: dpamt, backing: backing, vcpus: vcpus, steps: true)
            for step in 0..<10 {
                let start = GFN(rng.next() % (Self.pages - 1))
                let n = step == 0 ? Self.pages : 1 + rng.next() % (Self.pages / 2)
                let r = start..<min(start + n, GFN(Self.pages))
                let op = step == 0 ? 0 : rng.next() % 8
                for vm in [a, b] {
                    switch op {
                    case 0, 1:
                        // Accept the private parts: at 2M where aligned (Linux), or at 4K (edk2 4K).
                        let acc = TDXAcceptor(host: vm, driver: op == 0 ? .linux : .edk2(pageSize: .size4K), costs: costs)
                        var clock = PhaseClock(vcpus: vcpus)
                        for (p, isPrivate) in vm.attributes.privateAttr.runs(in: r) where isPrivate {
                            _ = acc.accept(AddressRange(start: p.lowerBound.value << 12, size: p.length << 12), vcpu: 0, clock: &clock)
                        }
                    case 2: _ = vm.setMemoryAttributes(r, private: false)
                    case 3: _ = vm.convert(r, toPrivate: false)
                    case 4: _ = vm.mapGPA(r, toPrivate: false)
                    case 5: _ = vm.setMemoryAttributes(r, private: true)
                    case 6:
                        let v = Int(start.value % UInt64(vcpus))
                        if vm.isInGuestMode(vcpu: v) { vm.halt(vcpu: v) } else { vm.wake(vcpu: v) }
                    default:
                        // A vCPU that has not exited since the last TRACK: the first TRACK is BUSY.
                        let v = Int(start.value % UInt64(vcpus))
                        if vm.isInGuestMode(vcpu: v) { vm.module.lag(vcpu: v) }
                    }
                }
                #expect(Self.snapshot(a) == Self.snapshot(b), "seed \(seed) step \(step) op \(op)")
            }
            bulkLeaves += a.bulkZappedLeaves
            stepped += b.counters[.zapsPrivate4K] + b.counters[.zapsPrivate2M]
            twoM += a.counters[.zapsPrivate2M]
            #expect(b.bulkZappedLeaves == 0)
        }
        #expect(bulkLeaves > stepped / 2, "the bulk path removed \(bulkLeaves) of \(stepped) leaves")
        #expect(twoM > 100, "only \(twoM) 2M leaves zapped")
    }

    /// 256 MiB of 4K leaves (the 4 GiB guest's SWIOTLB) made shared by MapGPA
    /// from a start that is not 2M-aligned: 65536 BLOCKs, TRACKs, REMOVEs,
    /// 4 kicks each with 4 vCPUs in the guest, all but the first leaf of each
    /// run in bulk, and the same tallies as stepping.
    @Test func aSWIOTLBSizedMapGPA() throws {
        let costs = CostTable(try Calibration.builtIn())
        func run(_ steps: Bool) throws -> TDXVM {
            let vm = try TDXVM(options: KVMOptions(), features: TDXModuleFeatures(), vcpus: 4,
                               slots: [Memslot(id: 1, baseGFN: GFN(0), pages: 0x20000, backing: .buddy)])
            vm.finalize()
            vm.stepsZaps = steps
            var clock = PhaseClock(vcpus: 4)
            let pool = AddressRange(start: 0x67ff000, size: 256 << 20)
            #expect(TDXAcceptor(host: vm, driver: .linux, costs: costs).accept(pool, vcpu: 0, clock: &clock) == .ok)
            let m = vm.mapGPA(pool.framesCovering, toPrivate: false)
            #expect(m.failure == nil && m.vmmExits == 128 && m.zappedLeaves == 65536)
            #expect(m.counts[.tdxBlock] == 65536 && m.counts[.tdxTrack] == 65536 && m.counts[.kvmVCPUKick] == 4 * 65536)
            return vm
        }
        let a = try run(false), b = try run(true)
        #expect(Self.snapshot(a) == Self.snapshot(b))
        #expect(a.bulkZappedLeaves > 65000)
    }
}
