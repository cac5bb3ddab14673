public import MemoryModel

/// `slot->arch.lpage_info[level - 2][idx]` for one huge range: the
/// `disallow_lpage` refcount (bits 0..29) and the one-way
/// KVM_LPAGE_GUEST_INHIBIT_FLAG (bit 30). The KVM_LPAGE_MIXED_FLAG (bit 31)
/// is derived from the attributes when used, which is the value
/// `kvm_arch_post_set_memory_attributes()` caches.
public struct LpageInfo: Hashable, Sendable {
    public var disallow: UInt32 = 0
    public var guestInhibit = false
    public init(disallow: UInt32 = 0, guestInhibit: Bool = false) { self.disallow = disallow; self.guestInhibit = guestInhibit }
}

/// KVM's large-page bookkeeping (`arch/x86/kvm/mmu/mmu.c`): `lpage_info`
/// at 2M and 1G, which caps the mapping level a fault may use.
public struct LpageInfoTable: Sendable {
    /// lpage_info at 2M, by 2M region.
    public private(set) var lpage2M = IntervalMap<GuestRegion2M, LpageInfo>(initial: LpageInfo())
    /// lpage_info at 1G, by 1G region.
    public private(set) var lpage1G = IntervalMap<GuestRegion1G, LpageInfo>(initial: LpageInfo())

    public init() {}

    /// `kvm_alloc_memslot_metadata()`: `disallow_lpage` on the head and
    /// tail huge ranges slot `s` does not cover whole, and on all of them
    /// when the userspace address is `misaligned`.
    /// - Complexity: O(log runs + k).
    mutating func addSlot(_ s: Memslot, misaligned: Bool) {
        Self.disallowPartial(&lpage2M, level: .size2M, slot: s, misaligned: misaligned) { $0.region2M }
        Self.disallowPartial(&lpage1G, level: .size1G, slot: s, misaligned: misaligned) { $0.region1G }
    }

    static func disallowPartial<K: IndexSpace>(_ map: inout IntervalMap<K, LpageInfo>, level: PageLevel,
                                               slot s: Memslot, misaligned: Bool, region: (GuestFrameNumber) -> K) {
        let first = region(s.baseGFN), last = region(s.frames.upperBound - 1)
        if misaligned {
            bumpDisallow(&map, first..<(last + 1))
        } else {
            if !s.baseGFN.isAligned(to: level) { bumpDisallow(&map, first..<(first + 1)) }
            if !s.frames.upperBound.isAligned(to: level) && (last != first || s.baseGFN.isAligned(to: level)) {
                bumpDisallow(&map, last..<(last + 1))
            }
        }
    }

    static func bumpDisallow<K: IndexSpace>(_ map: inout IntervalMap<K, LpageInfo>, _ r: Range<K>) {
        for (rr, v) in map.runs(in: r) {
            var n = v; n.disallow += 1
            map.assign(rr, n)
        }
    }

    /// `hugepage_set_guest_inhibit()` at 2M: one way, never cleared.
    /// - Complexity: O(log runs).
    mutating func setGuestInhibit(_ c: GuestRegion2M) { Self.setGuestInhibit(&lpage2M, c) }

    /// `hugepage_set_guest_inhibit()` at 1G.
    mutating func setGuestInhibit(_ r: GuestRegion1G) { Self.setGuestInhibit(&lpage1G, r) }

    /// `hugepage_set_guest_inhibit()` at 1G on every region of `r` (bulk
    /// replay), keeping each run's `disallow_lpage`.
    /// - Complexity: O(log runs + runs in `r`).
    mutating func setGuestInhibit(_ r: Range<GuestRegion1G>) {
        for (rr, v) in lpage1G.runs(in: r) where !v.guestInhibit {
            var n = v; n.guestInhibit = true
            lpage1G.assign(rr, n)
        }
    }

    static func setGuestInhibit<K: IndexSpace>(_ map: inout IntervalMap<K, LpageInfo>, _ i: K) {
        var v = map.value(at: i)
        guard !v.guestInhibit else { return }
        v.guestInhibit = true
        map.assign(i..<(i + 1), v)
    }

    /// Bulk replay: puts `chunks` into `info`.
    mutating func replace(_ chunks: Range<GuestRegion2M>, _ info: LpageInfo) { lpage2M.assign(chunks, info) }
}
