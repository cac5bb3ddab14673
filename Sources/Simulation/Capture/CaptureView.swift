public import CrashDump
import Firmware
import GuestKernel
import MemoryModel

/// Builds the capture kernel's view of a booted guest (`/proc/vmcore`):
/// which pages hold what, from the simulated state.
///
/// Placement is a stated simplification: the kernel model counts pages
/// handed out by the page allocator but not their addresses, so those
/// pages are laid into accepted free memory from the lowest address of the
/// Normal zone upwards, then DMA32: first the early kernel allocations
/// (slab) and later kernel allocations such as kexec's
/// source pages, then the page cache, then anonymous memory. Memblock
/// reservations, unaccepted units and zeroed free memory are where the
/// simulation put them.
public enum CaptureView {
    /// - Parameters:
    ///   - structures: generate the kernel structures and the VMCOREINFO
    ///     that points at them (kernels with 6.12 page types only).
    ///   - transparentHugepages: `transparent_hugepage=always`: anonymous
    ///     memory is in 2 MiB folios wherever an aligned 2 MiB block of it is whole.
    ///   - slabOrder: SLUB's slab order (`slub_min_order=`/`slub_max_order=`):
    ///     slab memory in 2^N-page slab folios; 0, order-0 slab pages.
    ///   - uptime: virtual seconds from power-on to the crash; nil: the
    ///     boot and its workload (a kernel kexec booted crashes later:
    ///     the wall clock ran through the kernels before it).
    public static func image(from r: BootResult, structures: Bool = true, seed: UInt64,
                             transparentHugepages: Bool = false, slabOrder: UInt64 = 0, uptime: Double? = nil) throws -> GuestMemoryImage {
        guard let k = r.kernel else { throw CocomemError(.invalidScenario, "the guest did not reach the kernel; there is no vmcore to take") }
        try r.scenario.refuseHotplug(in: "dump")
        var classes = IntervalMap<GuestFrameNumber, PageClass>(initial: .freeZero)
        var crashKernel: AddressRange? = nil
        for (range, kind) in k.reservations {
            let pfns = range.frames
            switch kind {
            case .kernelImage:
                let half = pfns.lowerBound + pfns.length / 2
                classes.assign(pfns.lowerBound..<half, .kernelText)
                classes.assign(half..<pfns.upperBound, .kernelData)
            case .memmap: classes.assign(pfns, .memmap)
            case .pageTables: classes.assign(pfns, .pageTables)
            case .crashKernel: crashKernel = range; classes.assign(pfns, .crashKernel)
            // Reserved struct pages (PG_reserved): no dump level excludes them.
            case .percpu, .swiotlb, .other, .unacceptedTable, .initrd, .firstMegabyte, .bootServices: classes.assign(pfns, .kernelData)
            }
        }
        if let u = k.unaccepted {
            let t = u.table
            for run in t.bitmap.setRuns(in: t.allUnits) {
                // Units are whole frames (unit_size is a multiple of 4 KiB).
                classes.assign(t.addresses(of: run).frames, .unaccepted)
            }
        }
        let loads = GuestMemoryImage.loads(ram: k.ram, excluding: crashKernel)
        // Pages the allocator handed out, laid into zeroed free memory.
        AllocationPlacement.place(k, in: loads, classes: &classes, free: .freeZero, hugetlb: .hugetlb, kernel: .slab,
                                  pageCache: .pageCache, anonymous: .anonymous)
        var image = GuestMemoryImage(loads: loads, classes: classes, content: PageContent(seed: seed), cpus: r.scenario.vcpus, vmcoreinfo: nil)
        if structures, k.config.version.hasPageUnacceptedType {
            var input = try kernelInput(r, k, seed: seed, uptime: uptime ?? r.times.totalBoot + r.times.workload)
            input.transparentHugepages = transparentHugepages
            if slabOrder > 0 {
                // Slab folios are generated with 6.15's struct folio page[1]; 6.12-6.14's differs.
                guard k.config.version.release.series >= KernelRelease(6, 15).series else {
                    throw CocomemError(.invalidArgument, "slub order \(slabOrder) lays slabs out in folios with 6.15's struct folio (page[1]); kernel \(k.config.version) is older, whose page[1] layout is not generated; use 6.15 or later")
                }
                input.slabOrder = slabOrder
            }
            let ks = try KernelStructures(input, classes: classes)
            image.kernel = ks
            image.vmcoreinfo = ks.vmcoreinfo
        }
        return image
    }

    /// The simulated guest's wall clock at power-on (2026-01-01 00:00:00
    /// UTC), fixed so runs are deterministic. CRASHTIME is `get_seconds()`,
    /// seconds since the epoch; makedumpfile rejects a CRASHTIME of 0.
    public static let bootEpoch: Int64 = 1_767_225_600

    /// What the kernel structures are generated from: the memblock
    /// reservations and each zone's pending unaccepted blocks.
    static func kernelInput(_ r: BootResult, _ k: GuestKernel, seed: UInt64, uptime: Double) throws -> KernelStructuresInput {
        func reservation(_ kind: MemblockReservation) throws -> AddressRange {
            guard let x = k.reservation(kind) else {
                throw CocomemError(.invalidScenario, "the guest kernel has no '\(kind)' reservation to build its structures from")
            }
            return x
        }
        var blocks: [Range<GuestFrameNumber>] = []
        for z in k.zones {
            for b in z.pendingUnacceptedBlocks { blocks.append(Range(start: b.first, count: b.count * Zone.blockPages)) }
        }
        blocks.sort { $0.lowerBound < $1.lowerBound }
        let v = k.config.version
        var input = KernelStructuresInput(
            ram: k.ram, kernelImage: try reservation(.kernelImage), pageTablesArea: try reservation(.pageTables),
            otherArea: try reservation(.other), memmapArea: try reservation(.memmap),
            unacceptedBlocks: blocks, release: "\(v.release.uname)-cocomem",
            crashTime: bootEpoch + Int64(uptime),
            hasUnacceptedType: v.hasPageUnacceptedType, exportsUnacceptedNumber: v.exportsUnacceptedMapcount, seed: seed)
        input.compoundInfo = v.namesCompoundInfo
        // Each node's pglist_data span (VMCOREINFO's node_data, node_online_map).
        input.nodes = k.nodeSpans.map {
            PglistNode(startPFN: $0.pfns.lowerBound, spannedPages: $0.pfns.upperBound - $0.pfns.lowerBound,
                       presentPages: $0.presentPages, zoneSpannedPages: $0.zoneSpannedPages)
        }
        if !k.numa.isSingleNode {
            // sparse_init_nid(): one memmap buffer per node, in node order (`memmapPerNode()`).
            input.memmapAreas = k.reservations.filter { $0.kind == .memmap }.map(\.range)
            // set_page_node(): the node of each SRAT range, from where it changes.
            var previous = 0
            for m in k.numa.memory.sorted(by: { $0.range.start < $1.range.start }) where m.node != previous {
                input.nodeStarts.append((m.range.start / 4096, m.node))
                previous = m.node
            }
        }
        return input
    }
}
