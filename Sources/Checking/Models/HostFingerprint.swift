public import KVM
import MemoryModel
import TDXModule

/// A canonical fingerprint of a host (KVM + TDX module) state: every field
/// that decides what any later host command does, and nothing that only
/// counts or times what happened.
///
/// Included: the mirror and shared TDP roots, `lpage_info` (disallow counts,
/// GUEST_INHIBIT), the memory attributes, guest_memfd's folio orders and
/// allocations, KVM's DPAMT refcounts, the S-EPT pool position (under DPAMT
/// a new S-EPT page opens a 2M host range only at a pool boundary, so it
/// changes what a later split costs and whether DEMOTE's retry finds the
/// cache empty), the split cache, the TD's lifecycle, every S-EPT entry
/// (state and host frame; a blocked entry's BEPOCH only as "tracked since"
/// or not, the one thing TRACK and DEMOTE compare it for), the vCPUs' epochs
/// relative to the TD epoch, the entry locks held, the pending interrupt,
/// PAMT_4K and the per-range 4K use counts, the faults still armed and the
/// frames the host refuses to AUG, and the VM's outcome.
///
/// Excluded, with why: counters, SEAMCALL tallies, operation counts and the
/// log (they record the past, never decide the future); the absolute TD
/// epoch (only differences to it are compared); replay memos (caches of
/// results the state already determines); broken-outcome flags (a history
/// of findings: the model keeps each step's own findings in its state).
public struct HostFingerprint: Hashable, Sendable {
    public let words: [UInt64]

    /// Fingerprints `vm`.
    /// - Complexity: O(runs of every KVM and S-EPT map).
    /// - Parameter vcpuOrder: the vCPUs renamed: position j gets the
    ///   module's per-vCPU state (TLB epoch, holds) of vCPU `vcpuOrder[j]`
    ///   (symmetry reduction over identical vCPUs); nil: as they are.
    public init(_ vm: TDXVM, vcpuOrder: [Int]? = nil) {
        var w: [UInt64] = []
        func tag(_ t: UInt64) { w.append(0xF1F0_0000_0000_0000 | t) }
        func runs<K, V>(_ m: IntervalMap<K, V>, _ value: (V) -> UInt64) {
            w.append(UInt64(m.runCount))
            for (k, v) in zip(m.starts, m.values) {
                w.append(k.value)
                w.append(value(v))
            }
        }
        tag(1); runs(vm.mmu.mirror2M) { UInt64($0.rawValue) }
        tag(2); runs(vm.mmu.mirror4K) { $0 ? 1 : 0 }
        tag(3); runs(vm.mmu.mirrorPD) { $0 ? 1 : 0 }
        tag(4); runs(vm.mmu.mirrorPDPT) { $0 ? 1 : 0 }
        tag(5); runs(vm.mmu.sharedMapped) { $0 ? 1 : 0 }
        tag(6); runs(vm.lpageInfo.lpage2M) { UInt64($0.disallow) << 1 | ($0.guestInhibit ? 1 : 0) }
        tag(7); runs(vm.lpageInfo.lpage1G) { UInt64($0.disallow) << 1 | ($0.guestInhibit ? 1 : 0) }
        tag(8); runs(vm.attributes.privateAttr) { $0 ? 1 : 0 }
        tag(9); runs(vm.gmem.folioOrder) { UInt64($0) }
        tag(10); runs(vm.gmem.folioAllocated) { $0 ? 1 : 0 }
        tag(11); runs(vm.tdx.pamtRefcount) { UInt64($0) }
        tag(12); w += [vm.tdx.septPool, vm.tdx.splitCache, vm.tdx.isRunnable ? 1 : 0]
        let td = vm.module
        let epoch = td.tdEpoch
        func entry(_ e: SEPTEntry) -> UInt64 {
            let tracked: UInt64 = e.state.isBlocked ? (epoch > e.bepoch ? 2 : 1) : 0
            return UInt64(e.state.rawValue) << 2 | tracked
        }
        tag(13); runs(td.pde) { entry($0) }
        for (k, v) in zip(td.pde.starts, td.pde.values) where v.state.isLeaf { w += [k.value, v.hfnDelta] }
        tag(14); runs(td.pte) { entry($0) }
        for (k, v) in zip(td.pte.starts, td.pte.values) where v.state.isLeaf { w += [k.value, v.hfnDelta] }
        // FREE 0 and NL_MAPPED 1 as before 1G leaves existed, so that the
        // fingerprints of every state without one are unchanged.
        tag(15); runs(td.pdpte) { $0.state == .free ? 0 : $0.state == .nlMapped ? 1 : 2 + entry($0) }
        for (k, v) in zip(td.pdpte.starts, td.pdpte.values) where v.state.isLeaf { w += [k.value, v.hfnDelta] }
        tag(16); runs(td.pml4e) { $0 ? 1 : 0 }
        tag(17); runs(td.pamt4K) { $0 ? 1 : 0 }
        tag(18); runs(td.hpa4KInUse) { UInt64($0) }
        tag(19)
        w.append(UInt64(td.lifecycle.hashValueStable))
        let order = vcpuOrder.flatMap { $0.count == td.vcpuEpoch.count ? $0 : nil } ?? Array(td.vcpuEpoch.indices)
        var renamed = Array(order.indices)
        for (j, i) in order.enumerated() { renamed[i] = j }
        for i in order { w.append(td.vcpuEpoch[i].map { epoch &- $0 } ?? .max) }
        w.append(td.interruptPending ? 1 : 0)
        for h in td.holds { w.append(UInt64(renamed.indices.contains(h.vcpu) ? renamed[h.vcpu] : h.vcpu)); w.append(stableHash("\(h.hold)")) }
        tag(20)
        for (p, n) in vm.faults.remaining.sorted(by: { $0.key.rawValue < $1.key.rawValue }) where n > 0 {
            w.append(stableHash(p.rawValue)); w.append(UInt64(n))
        }
        tag(21); runs(vm.faults.refusedAUG) { $0 ? 1 : 0 }
        tag(22); w.append(stableHash("\(vm.outcome)"))
        // In place, the host's references to shared pages gate conversion.
        if vm.options.conversionPolicy == .inPlace { tag(23); runs(vm.gmem.hostRefs) { UInt64($0) } }
        // 1G private leaves in the mirror (a module with 1G private mappings).
        if vm.mmu.mirror1G.runCount > 1 { tag(24); runs(vm.mmu.mirror1G) { $0 ? 1 : 0 } }
        words = w
    }
}

/// FNV-1a of `s`'s UTF-8: stable across runs (Swift's `hashValue` is seeded
/// per process), so fingerprints and their order are deterministic.
func stableHash(_ s: String) -> UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
    return h
}

extension TDLifecycle {
    /// A stable number for the lifecycle state.
    var hashValueStable: UInt64 { stableHash("\(self)") }
}
