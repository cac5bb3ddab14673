public import MemoryModel

/// A KVM memslot bound to a guest_memfd (`struct kvm_memory_slot` with
/// `gmem.file`): guest frames `[baseGFN, baseGFN + pages)` are file offsets
/// `[0, pages)`, backed by host frames from the file's base (the hugetlb
/// pool or buddy pages the file allocates from; contiguous within a folio).
public struct Memslot: Sendable, Equatable {
    public var id: Int
    public var baseGFN: GuestFrameNumber
    public var pages: UInt64
    public var backing: GmemBacking
    /// `(base_gfn ^ userspace_addr >> PAGE_SHIFT)` aligned to 2M and 1G.
    public var userspaceAddrAligned: Bool

    public init(id: Int, baseGFN: GuestFrameNumber, pages: UInt64, backing: GmemBacking, userspaceAddrAligned: Bool = true) {
        self.id = id; self.baseGFN = baseGFN; self.pages = pages; self.backing = backing
        self.userspaceAddrAligned = userspaceAddrAligned
    }

    public var frames: Range<GuestFrameNumber> { Range(start: baseGFN, count: pages) }

    /// Pages in one backing folio (`1 << order`).
    public var folioPages: UInt64 { UInt64(1) << UInt64(backing.order) }
}

/// guest_memfd (`virt/kvm/guest_memfd.c`): the memslots bound to files,
/// each file's folios (order and whether allocated), and the one place a
/// guest frame becomes a host frame (`kvm_gmem_get_pfn()`).
public struct GuestMemfd: Sendable {
    /// Memslots by base frame.
    public private(set) var slots: [Memslot] = []
    /// Host frame of each slot's offset 0, by slot order: each file is laid
    /// out from a 1G-aligned base, slots one after another (fixed once
    /// every slot is bound).
    private var slotHFNBase: [HostFrameNumber] = []
    /// Folio order by guest frame (log2 pages).
    public private(set) var folioOrder = IntervalMap<GuestFrameNumber, UInt8>(initial: 0)
    /// Whether the folio holding a frame is allocated.
    public private(set) var folioAllocated = IntervalMap<GuestFrameNumber, Bool>(initial: false)

    /// In-place conversion: references the host holds on each shared page
    /// of the file beyond guest_memfd's own (pins and GUPs through the
    /// file's userspace mapping: vhost, VFIO DMA, O_DIRECT).
    public private(set) var hostRefs = IntervalMap<GuestFrameNumber, UInt32>(initial: 0)

    public init() {}

    /// Adds `delta` host references to every page of `frames` (per run).
    /// - Complexity: O(log runs + runs in `frames`).
    mutating func addHostRefs(_ frames: Range<GuestFrameNumber>, _ delta: Int) {
        for (r, v) in hostRefs.runs(in: frames) {
            hostRefs.assign(r, UInt32(max(0, Int(v) + delta)))
        }
    }

    /// True if any page of `frames` has host references.
    /// - Complexity: O(log runs + runs in `frames`).
    public func hasHostRefs(_ frames: Range<GuestFrameNumber>) -> Bool { !hostRefs.allSatisfy(in: frames) { $0 == 0 } }

    /// `kvm_gmem_bind()` for `s`: checks it against the slots already bound
    /// and sets its folio orders (the backing order where a whole aligned
    /// folio fits in the slot, else 4K).
    /// - Complexity: O(slots + log runs).
    mutating func bind(_ s: Memslot) throws {
        guard s.pages > 0 else { throw CocomemError(.invalidArgument, "memslot \(s.id) has no pages") }
        if slots.contains(where: { $0.id == s.id }) { throw CocomemError(.invalidArgument, "two memslots with id \(s.id)") }
        for o in slots where o.frames.overlaps(s.frames) {
            throw CocomemError(.invalidArgument, "memslot \(s.id) overlaps memslot \(o.id)")
        }
        guard s.baseGFN.isMultiple(of: s.folioPages) else {
            throw CocomemError(.invalidArgument, "memslot \(s.id) base \(s.baseGFN.address) is not aligned to its \(s.backing.rawValue) folios")
        }
        slots.append(s)
        slots.sort { $0.baseGFN < $1.baseGFN }
        let lo = s.baseGFN.alignedUp(toMultipleOf: s.folioPages), hi = s.frames.upperBound.alignedDown(toMultipleOf: s.folioPages)
        folioOrder.assign(s.frames, 0)
        if lo < hi { folioOrder.assign(lo..<hi, s.backing.order) }
    }

    /// Places every file's host frames, once all slots are bound.
    mutating func layOutHostFrames() {
        // Each file's host frames start 1G-aligned, from the second 1G region.
        let huge = PageLevel.size1G.pages
        var base = HostFrameNumber(huge)
        slotHFNBase = []
        for s in slots { slotHFNBase.append(base); base = base + alignUp(s.pages, huge) }
    }

    /// A memslot bound after the others were laid out (a hot-plugged
    /// device's memory backend): its file's host frames start 1G-aligned
    /// after the highest file's, and no other file moves.
    /// - Complexity: O(slots + log runs).
    mutating func bindLate(_ s: Memslot) throws {
        let huge = PageLevel.size1G.pages
        var base: [Int: HostFrameNumber] = [:]
        var next = HostFrameNumber(huge)
        for (o, b) in zip(slots, slotHFNBase) {
            base[o.id] = b
            next = max(next, b + alignUp(o.pages, huge))
        }
        try bind(s)
        base[s.id] = next
        slotHFNBase = slots.map { base[$0.id]! }
    }

    /// `kvm_gmem_unbind()` when the memslot is deleted and the memory backend
    /// closes the file: its folios are freed and the slot forgotten.
    /// - Complexity: O(slots + log runs).
    mutating func unbind(id: Int) {
        guard let i = slots.firstIndex(where: { $0.id == id }) else { return }
        let s = slots[i]
        free(s.frames, order: 0)
        slots.remove(at: i)
        slotHFNBase.remove(at: i)
    }

    /// The memslot containing `gfn` (`gfn_to_memslot()`).
    /// - Complexity: O(slots).
    public func slot(_ gfn: GuestFrameNumber) -> Memslot? { slots.first { $0.frames.contains(gfn) } }

    /// Host frame backing `gfn`: the one place a guest frame becomes a host
    /// frame, as `kvm_gmem_get_pfn()` does through the memslot's file
    /// offset. A frame outside every slot has no backing; it maps to the
    /// equal host frame number so that callers (which check the slot
    /// first) never see a failure here.
    /// - Complexity: O(slots).
    public func hfn(_ gfn: GuestFrameNumber) -> HostFrameNumber {
        guard let i = slots.firstIndex(where: { $0.frames.contains(gfn) }) else { return HostFrameNumber(gfn.value) }
        return slotHFNBase[i] + (gfn - slots[i].baseGFN)
    }

    /// `kvm_gmem_get_pfn()`'s allocation: the folio(s) backing `frames`
    /// are allocated on first use, clipped to the slot.
    /// - Complexity: O(log runs).
    mutating func allocate(_ frames: Range<GuestFrameNumber>) {
        var lo = frames.lowerBound, hi = frames.upperBound
        let o = UInt64(1) << UInt64(folioOrder.value(at: lo))
        lo = lo.alignedDown(toMultipleOf: o)
        let o2 = UInt64(1) << UInt64(folioOrder.value(at: hi - 1))
        hi = (hi - 1).alignedDown(toMultipleOf: o2) + o2
        if let s = slot(frames.lowerBound) { lo = max(lo, s.baseGFN); hi = min(hi, s.frames.upperBound) }
        folioAllocated.assign(lo..<hi, true)
    }

    /// The folios overlapping `frames`, as ranges with their order.
    /// - Complexity: O(folios).
    public func folios(overlapping frames: Range<GuestFrameNumber>) -> [(range: Range<GuestFrameNumber>, order: UInt8)] {
        var out: [(Range<GuestFrameNumber>, UInt8)] = []
        var g = frames.lowerBound
        while g < frames.upperBound {
            let o = folioOrder.value(at: g)
            let size = UInt64(1) << UInt64(o)
            let start = g.alignedDown(toMultipleOf: size)
            out.append((Range(start: start, count: size), o))
            g = start + size
        }
        return out
    }

    /// True if the folio holding `gfn` is at least 2M.
    /// - Complexity: O(log runs).
    public func hasHugeFolio(_ gfn: GuestFrameNumber) -> Bool { folioOrder.value(at: gfn) >= UInt8(PageLevel.size2M.frameShift) }

    /// Sets the folio order over `frames` (a split to 4K or a merge back).
    mutating func setOrder(_ frames: Range<GuestFrameNumber>, _ order: UInt8) { folioOrder.assign(frames, order) }

    /// `kvm_gmem_punch_hole()`: the folios of `frames` are freed and the
    /// file's backing order restored there.
    /// The host's references stay on the truncated pages, not on the new
    /// folios a later fault allocates, so the file's count drops to none.
    mutating func free(_ frames: Range<GuestFrameNumber>, order: UInt8) {
        folioAllocated.assign(frames, false)
        hostRefs.assign(frames, 0)
        folioOrder.assign(frames, order)
    }

    /// Bulk replay: sets the host references of `frames`.
    mutating func setHostRefs(_ frames: Range<GuestFrameNumber>, _ v: UInt32) { hostRefs.assign(frames, v) }

    /// Bulk replay: puts `frames` into the given folio state.
    mutating func replace(_ frames: Range<GuestFrameNumber>, allocated: Bool, order: UInt8) {
        folioAllocated.assign(frames, allocated)
        folioOrder.assign(frames, order)
    }

    /// Allocated guest pages.
    /// - Complexity: O(runs).
    public var allocatedPages: UInt64 { folioAllocated.measure(in: .lowest ..< .highest) { $0 } }
}
