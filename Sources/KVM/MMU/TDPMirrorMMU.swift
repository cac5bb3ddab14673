public import MemoryModel

/// What the mirror (KVM's private TDP root) holds at a 2M-level entry.
public enum MirrorEntry: UInt8, Sendable, Equatable {
    case none
    /// Non-leaf pointing at a 4K page table.
    case table
    /// 2M leaf.
    case leaf
}

/// KVM's TDP MMU roots for a TD (`arch/x86/kvm/mmu/tdp_mmu.c`): the mirror
/// root for private memory, whose changes KVM propagates to the S-EPT
/// through the external hooks (`link_external_spt`, `set_external_spte`,
/// `remove_external_spte`, `split_external_spte`), and the shared EPT root.
///
/// State is per range: 2M-level entries by 2M region, 4K leaves by guest
/// frame (only meaningful under a `.table` 2M entry), the PD and PDPT
/// levels by 1G and 512G region.
public struct TDPMirrorMMU: Sendable {
    /// Mirror 2M-level entries.
    public private(set) var mirror2M = IntervalMap<GuestRegion2M, MirrorEntry>(initial: .none)
    /// Mirror 4K leaves (under a `.table` 2M entry).
    public private(set) var mirror4K = IntervalMap<GuestFrameNumber, Bool>(initial: false)
    /// Mirror non-leaves at 1G and 512G.
    public private(set) var mirrorPD = IntervalMap<GuestRegion1G, Bool>(initial: false)
    public private(set) var mirrorPDPT = IntervalMap<GuestRegion512G, Bool>(initial: false)
    /// Mirror 1G leaves (a TDX module with 1G private mappings): where one
    /// is present the region has no PD (`mirrorPD` false) and no 2M entries.
    public private(set) var mirror1G = IntervalMap<GuestRegion1G, Bool>(initial: false)
    /// Shared EPT 4K leaves (shared memory is mapped at 4K with in-place
    /// conversion).
    public private(set) var sharedMapped = IntervalMap<GuestFrameNumber, Bool>(initial: false)

    public init() {}

    /// True if a private leaf maps `gfn` in the mirror.
    /// - Complexity: O(log runs).
    public func isMapped(_ gfn: GuestFrameNumber) -> Bool {
        if mirror1G.value(at: gfn.region1G) { return true }
        return switch mirror2M.value(at: gfn.region2M) {
        case .leaf: true
        case .table: mirror4K.value(at: gfn)
        case .none: false
        }
    }

    /// `pages_4k`: 4K leaves in both roots.
    /// - Complexity: O(runs).
    public var pages4K: UInt64 {
        mirror4K.measure(in: .lowest ..< .highest) { $0 } + sharedMapped.measure(in: .lowest ..< .highest) { $0 }
    }

    /// `pages_2m`: 2M leaves.
    /// - Complexity: O(runs).
    public var pages2M: UInt64 { mirror2M.measure(in: .lowest ..< .highest) { $0 == .leaf } }

    /// `pages_1g`: 1G leaves (private only: shared memory is mapped at 4K).
    /// - Complexity: O(runs).
    public var pages1G: UInt64 { mirror1G.measure(in: .lowest ..< .highest) { $0 } }

    /// Page-table pages below the root: one per 4K table, PD and PDPT
    /// (each mirrored by one S-EPT page).
    /// - Complexity: O(runs).
    public var tablePages: UInt64 {
        mirror2M.measure(in: .lowest ..< .highest) { $0 == .table } + mirrorPD.measure(in: .lowest ..< .highest) { $0 }
            + mirrorPDPT.measure(in: .lowest ..< .highest) { $0 }
    }

    /// Unmaps the shared 4K leaves in `frames` (`kvm_unmap_gfn_range()` on
    /// the shared root); returns how many there were.
    /// - Complexity: O(log runs + k).
    mutating func zapShared(_ frames: Range<GuestFrameNumber>) -> UInt64 {
        let n = sharedMapped.measure(in: frames) { $0 }
        if n > 0 { sharedMapped.assign(frames, false) }
        return n
    }

    mutating func setMirror2M(_ r: Range<GuestRegion2M>, _ e: MirrorEntry) { mirror2M.assign(r, e) }
    mutating func setMirror4K(_ r: Range<GuestFrameNumber>, _ present: Bool) { mirror4K.assign(r, present) }
    mutating func linkPD(_ r: Range<GuestRegion1G>) { mirrorPD.assign(r, true) }
    /// The PD of `r` freed (a merge to a 1G leaf): the 2M entries go with it.
    mutating func unlinkPD(_ r: Range<GuestRegion1G>) {
        mirrorPD.assign(r, false)
        mirror2M.assign(r.lowerBound.firstFrame.region2M..<r.upperBound.firstFrame.region2M, .none)
    }
    mutating func setMirror1G(_ r: Range<GuestRegion1G>, _ leaf: Bool) { mirror1G.assign(r, leaf) }
    mutating func linkPDPT(_ r: Range<GuestRegion512G>) { mirrorPDPT.assign(r, true) }
    mutating func mapShared(_ r: Range<GuestFrameNumber>, _ present: Bool) { sharedMapped.assign(r, present) }
}
