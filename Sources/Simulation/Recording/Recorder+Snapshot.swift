import CoCoGuest
import Firmware
import GuestKernel
import KVM
import MemoryModel
import SNP
import TDXModule

extension Recorder {
    typealias PageClass = SnapshotRange.PageClass

    /// Takes a snapshot labelled `label` at the current end of the time axis.
    func snapshot(_ label: String, firmwareMap: EFIMemoryMap? = nil, table: UnacceptedTable? = nil) {
        let ranges = snapshotRanges(firmwareMap: firmwareMap, table: table)
        record.snapshots.append(MemorySnapshot(label: label, time: segmentStart, ranges: ranges))
    }

    /// The guest's memory as maximal ranges, from the state the model holds
    /// now. With a kernel: its RAM, memblock reservations, the blocks on
    /// the zones' `unaccepted_pages` lists, what the allocator handed out
    /// (see `kernelClasses`), and the unaccepted table's bitmap. Before the
    /// kernel: the firmware's EFI memory map and table. The host's side
    /// (mapping level, shared, pinned) from KVM's TDX MMU or the RMP.
    /// - Complexity: O(runs of the maps read), never O(pages).
    func snapshotRanges(firmwareMap: EFIMemoryMap?, table: UnacceptedTable?) -> [SnapshotRange] {
        var classes = IntervalMap<GuestFrameNumber, PageClass>(initial: .hole)
        var acceptance = IntervalMap<GuestFrameNumber, SnapshotRange.Acceptance>(initial: .notRAM)
        var top: UInt64 = 0
        if let k = kernel {
            for r in k.ram { top = max(top, r.end); acceptance.assign(r.frames, .accepted) }
            classes = Self.kernelClasses(k)
            if let u = k.unaccepted { Self.markUnaccepted(u.table, in: &acceptance) }
        } else if let map = firmwareMap {
            for d in map.descriptors {
                let frames = d.range.frames
                switch d.type {
                case .conventional: classes.assign(frames, .free); acceptance.assign(frames, .accepted)
                case .unaccepted: classes.assign(frames, .unaccepted); acceptance.assign(frames, .unaccepted)
                case .bootServicesCode, .bootServicesData, .loaderCode, .loaderData, .runtimeServicesCode, .runtimeServicesData,
                     .acpiReclaim, .acpiNVS:
                    classes.assign(frames, .firmware); acceptance.assign(frames, .accepted)
                default:
                    // Reserved and MMIO: not RAM the guest accepts.
                    classes.assign(frames, .reserved)
                }
                if d.type != .mmio && d.type != .mmioPortSpace { top = max(top, d.range.end) }
            }
            if let t = table { Self.markUnaccepted(t, in: &acceptance) }
            // Type-15 memory the stub accepted is free; what the table still has set is unaccepted.
            var accepted: [Range<GuestFrameNumber>] = [], unaccepted: [Range<GuestFrameNumber>] = []
            classes.forEachRun(in: .lowest ..< AddressRange(start: 0, end: top).upperAddress.frameRoundingUp) { f, c in
                guard c == .unaccepted else { return }
                acceptance.forEachRun(in: f) { g, a in if a == .unaccepted { unaccepted.append(g) } else { accepted.append(g) } }
            }
            for f in accepted { classes.assign(f, .free) }
            for f in unaccepted { classes.assign(f, .unaccepted) }
        } else if let vm, !hostSlots.isEmpty {
            // A host run: no guest kernel, the memslots are the guest's memory,
            // accepted where the S-EPT has a MAPPED (or BLOCKED) leaf.
            for slot in hostSlots {
                top = max(top, slot.upperBound.address.value)
                classes.assign(slot, .unknown)
                acceptance.assign(slot, .unaccepted)
                for f in Self.acceptedFrames(vm, in: slot) { acceptance.assign(f, .accepted) }
            }
            vm.attributes.privateAttr.forEachRun(in: .lowest ..< AddressRange(start: 0, end: top).upperAddress.frameRoundingUp) { f, p in
                if !p { acceptance.assign(f, .accepted) }
            }
            var holes: [Range<GuestFrameNumber>] = []
            classes.forEachRun(in: .lowest ..< AddressRange(start: 0, end: top).upperAddress.frameRoundingUp) { f, c in if c == .hole { holes.append(f) } }
            for f in holes { acceptance.assign(f, .notRAM) }
        }
        guard top > 0 else { return [] }
        let window = GuestFrameNumber(0)..<AddressRange(start: 0, end: top).upperAddress.frameRoundingUp
        var sources = SnapshotSources()
        classes.forEachRun(in: window) { sources.classes.append(($0.upperBound, $1)) }
        acceptance.forEachRun(in: window) { sources.acceptance.append(($0.upperBound, $1)) }
        hostMapping(window).forEachRun(in: window) { sources.mapping.append(($0.upperBound, $1)) }
        hostShared(window).forEachRun(in: window) { sources.shared.append(($0.upperBound, $1)) }
        hostPinned(window).forEachRun(in: window) { sources.pinned.append(($0.upperBound, $1)) }
        return sources.merged(upTo: window.upperBound)
    }

    /// Frames the guest has accepted in `frames`: S-EPT leaves MAPPED or
    /// BLOCKED at 2M, or at 4K under a non-leaf (the TDX module's state,
    /// read through its inspection view as the checker does).
    static func acceptedFrames(_ vm: TDXVM, in frames: Range<GuestFrameNumber>) -> [Range<GuestFrameNumber>] {
        var out: [Range<GuestFrameNumber>] = []
        func isAccepted(_ s: SEPTState) -> Bool { s == .mapped || s == .blocked }
        vm.module.forEach2MEntry(in: frames.covering2M) { regions, e in
            let lo = max(frames.lowerBound, regions.frames.lowerBound), hi = min(frames.upperBound, regions.frames.upperBound)
            guard lo < hi else { return }
            if isAccepted(e.state) { out.append(lo..<hi) }
            else if e.state.isNonLeaf { vm.module.forEach4KEntry(in: lo..<hi) { f, e4 in if isAccepted(e4.state) { out.append(f) } } }
        }
        return out
    }

    /// Units set in the table are unaccepted (within RAM only: the table
    /// covers holes as well, and the kernel never sets their bits).
    static func markUnaccepted(_ t: UnacceptedTable, in acceptance: inout IntervalMap<GuestFrameNumber, SnapshotRange.Acceptance>) {
        for run in t.bitmap.setRuns(in: t.allUnits) {
            let frames = t.addresses(of: run).frames
            var ram: [Range<GuestFrameNumber>] = []
            acceptance.forEachRun(in: frames) { r, a in if a != .notRAM { ram.append(r) } }
            for r in ram { acceptance.assign(r, .unaccepted) }
        }
    }

    /// The kernel's use of each frame. Memblock reservations and the zones'
    /// pending unaccepted blocks are where the kernel has them. The kernel
    /// model counts the pages the allocator hands out but not their
    /// addresses, so, as `CaptureView` does for the vmcore (the same stated
    /// simplification), they are laid into the remaining free RAM from the
    /// lowest address of the Normal zone upwards, then below 4 GiB:
    /// hugetlb folios (2 MiB-aligned) first, then the kernel's own
    /// allocations, the page cache and anonymous memory.
    static func kernelClasses(_ k: GuestKernel) -> IntervalMap<GuestFrameNumber, PageClass> {
        var classes = IntervalMap<GuestFrameNumber, PageClass>(initial: .hole)
        for r in k.ram { classes.assign(r.frames, .free) }
        for (range, kind) in k.reservations {
            let c: PageClass = switch kind {
            case .kernelImage, .percpu, .other, .initrd: .kernel
            case .pageTables: .pageTables
            case .memmap: .memmap
            case .swiotlb, .crashKernel, .unacceptedTable, .firstMegabyte, .bootServices: .reserved
            }
            classes.assign(range.frames, c)
        }
        for z in k.zones {
            for b in z.pendingUnacceptedBlocks { classes.assign(Range(start: b.first, count: b.count * Zone.blockPages), .unaccepted) }
        }
        AllocationPlacement.place(k, in: k.ram, classes: &classes, free: .free, hugetlb: .hugetlb, kernel: .kernel,
                                  pageCache: .pageCache, anonymous: .anonymous)
        return classes
    }

    /// How the host maps each frame. TDX: the mirror root's 2M leaves, its
    /// 4K leaves under a 4K table, and the shared EPT's 4K leaves
    /// (`TDPMirrorMMU`, which mirrors the S-EPT). SNP: the RMP entry's page
    /// size for assigned pages, none for unbacked.
    func hostMapping(_ window: Range<GuestFrameNumber>) -> IntervalMap<GuestFrameNumber, SnapshotRange.HostMapping> {
        var m = IntervalMap<GuestFrameNumber, SnapshotRange.HostMapping>(initial: .none)
        if let vm {
            var tables: [Range<GuestFrameNumber>] = []
            let regions = window.lowerBound.region2M..<GuestRegion2M(divRoundUp(window.upperBound.value, PageLevel.size2M.pages))
            vm.mmu.mirror2M.forEachRun(in: regions) { regions, e in
                let frames = regions.lowerBound.firstFrame..<regions.upperBound.firstFrame
                switch e {
                case .leaf: m.assign(frames, .map2M)
                case .table: tables.append(frames)
                case .none: break
                }
            }
            for t in tables {
                var leaves: [Range<GuestFrameNumber>] = []
                vm.mmu.mirror4K.forEachRun(in: t) { f, present in if present { leaves.append(f) } }
                for f in leaves { m.assign(f, .map4K) }
            }
            var shared: [Range<GuestFrameNumber>] = []
            vm.mmu.sharedMapped.forEachRun(in: window) { f, present in if present { shared.append(f) } }
            for f in shared { m.assign(f, .map4K) }
        } else if let snpVM {
            snpVM.npt.forEachRun(in: window) { f, l in
                switch l {
                case .none: break
                case .private4K, .shared4K: m.assign(f, .map4K)
                case .private2M: m.assign(f, .map2M)
                }
            }
        } else if let snp {
            snp.rmp.forEachRun(in: window) { f, s in
                switch s {
                case .unbacked: break
                case .assigned4K, .validated4K: m.assign(f, .map4K)
                case .assigned2M, .validated2M: m.assign(f, .map2M)
                }
            }
        }
        return m
    }

    /// Shared frames: KVM's memory attributes without PRIVATE (TDX). The
    /// SNP model keeps all guest memory private.
    func hostShared(_ window: Range<GuestFrameNumber>) -> IntervalMap<GuestFrameNumber, Bool> {
        var m = IntervalMap<GuestFrameNumber, Bool>(initial: false)
        if let vm { vm.attributes.privateAttr.forEachRun(in: window) { f, p in if !p { m.assign(f, true) } } }
        if let snpVM { snpVM.attributes.privateAttr.forEachRun(in: window) { f, p in if !p { m.assign(f, true) } } }
        return m
    }

    /// Pinned frames: host memory the host cannot reclaim while the guest
    /// runs: allocated guest_memfd folios (TDX) or RMP-assigned pages (SNP).
    func hostPinned(_ window: Range<GuestFrameNumber>) -> IntervalMap<GuestFrameNumber, Bool> {
        var m = IntervalMap<GuestFrameNumber, Bool>(initial: false)
        if let vm { vm.gmem.folioAllocated.forEachRun(in: window) { f, a in if a { m.assign(f, true) } } }
        else if let snpVM { snpVM.gmem.folioAllocated.forEachRun(in: window) { f, a in if a { m.assign(f, true) } } }
        else if let snp { snp.rmp.forEachRun(in: window) { f, s in if s.isBacked { m.assign(f, true) } } }
        return m
    }
}

/// The runs of each per-frame map, as (end, value) in address order, and
/// their merge into snapshot ranges.
struct SnapshotSources {
    var classes: [(GuestFrameNumber, SnapshotRange.PageClass)] = []
    var acceptance: [(GuestFrameNumber, SnapshotRange.Acceptance)] = []
    var mapping: [(GuestFrameNumber, SnapshotRange.HostMapping)] = []
    var shared: [(GuestFrameNumber, Bool)] = []
    var pinned: [(GuestFrameNumber, Bool)] = []

    /// Sweeps the five run lists together; a range ends wherever one of
    /// them changes, and equal neighbours are joined.
    /// - Complexity: O(total runs).
    func merged(upTo end: GuestFrameNumber) -> [SnapshotRange] {
        var out: [SnapshotRange] = []
        var i = (0, 0, 0, 0, 0)
        var at = GuestFrameNumber(0)
        while at < end {
            let c = classes[i.0], a = acceptance[i.1], m = mapping[i.2], s = shared[i.3], p = pinned[i.4]
            let next = Swift.min(c.0, a.0, m.0, s.0, p.0, end)
            let range = at.address..<next.address
            let acc: SnapshotRange.Acceptance = c.1 == .hole ? .notRAM : a.1
            if let last = out.last, last.range.upperBound == range.lowerBound, last.acceptance == acc, last.pageClass == c.1,
               last.hostMapping == m.1, last.shared == s.1, last.pinned == p.1 {
                out[out.count - 1].range = last.range.lowerBound..<range.upperBound
            } else {
                out.append(SnapshotRange(range: range, acceptance: acc, pageClass: c.1, hostMapping: m.1, shared: s.1, pinned: p.1))
            }
            at = next
            if c.0 == next { i.0 += 1 }
            if a.0 == next { i.1 += 1 }
            if m.0 == next { i.2 += 1 }
            if s.0 == next { i.3 += 1 }
            if p.0 == next { i.4 += 1 }
        }
        return out
    }
}

extension BootResult {
    /// The boot's record with the snapshot `at the crash`: the guest's
    /// memory when it panics into kdump (`cocomem dump` crashes it at the
    /// end of the run), what the capture kernel's vmcore is taken from.
    /// Empty when the scenario does not record.
    /// - Complexity: O(runs of the maps read).
    public var recordAtTheCrash: RunRecord {
        var record = self.record
        guard scenario.record, let k = kernel else { return record }
        let rec = Recorder(costs: k.costs, vcpus: scenario.vcpus)
        rec.kernel = k
        rec.vm = host
        rec.snp = (k.platform as? SNPGuestPlatform)?.platform
        rec.snpVM = (k.platform as? SNPHostPlatform)?.vm
        rec.segmentStart = record.phases.last?.end ?? 0
        rec.snapshot("at the crash")
        record.snapshots += rec.record.snapshots
        return record
    }
}
