public import CoCoGuest
public import CostModel
import Firmware
public import MemoryModel

/// Kernel configuration a scenario chooses.
public struct KernelConfig: Sendable {
    public var version: KernelVersion = .v7_0
    /// `accept_memory=lazy|eager`.
    public var lazyAccept = true
    /// CONFIG_DEFERRED_STRUCT_PAGE_INIT: Normal-zone struct pages are
    /// initialised (and, eagerly, accepted) by padata threads on all vCPUs.
    public var deferredStructPageInit = true
    /// Decompressed kernel footprint accepted by the decompressor at 16 MiB.
    public var kernelInitBytes: UInt64 = 64 << 20
    /// Page-allocator calls the kernel makes between the buddy allocator
    /// coming up (`mm_core_init()`) and `smp_init()`, outside SMP bring-up
    /// (workqueue and kthreadd set-up, early initcalls): each accepts a
    /// 4 MiB block on 6.16+ while watermarks are zero. An assumption: no
    /// count from the source stands behind it (docs/CALIBRATION.md). What
    /// bring-up allocates per AP is counted from the code (`SMPBringup`).
    public var preSMPAllocations: UInt64 = 300
    /// CONFIG_HZ: the periodic tick idle vCPUs take during early boot
    /// (x86_64_defconfig sets HZ_1000; tick_nohz only stops the tick once
    /// high-resolution timers are on, after the clocksource switch at
    /// fs_initcall).
    public var hz: UInt64 = 1000
    /// `idle=poll` on the command line: `idle_setup()` calls
    /// `cpu_idle_poll_ctrl(true)`, so `do_idle()` spins in `cpu_idle_poll()`
    /// instead of halting. An idle vCPU then stays in guest mode (every
    /// `tdx_track()` kicks it) and takes no HLT exits (`idleTickExits` 0;
    /// a tick's other exits are modelled in neither mode). Default false:
    /// idle vCPUs halt (`tdx_safe_halt()`; `GuestKernel+Idle.swift`).
    public var idlePoll = false
    /// A workload phase's allocations on several vCPUs run as one actor per
    /// vCPU on the seeded `VirtualTimeScheduler` (`WorkloadActors`): every
    /// vCPU that finds the zone short calls `cond_accept_memory()` itself,
    /// each block's pages free at its `__free_pages_ok()` step's time. Off
    /// (the default): `allocate()`'s least-loaded loop, with the accepting
    /// list's wait from the phase's timelines (`--workload-actors`,
    /// `kernel.workload-actors`).
    public var workloadActors = false
    /// `crashkernel=` size (0: none).
    public var crashKernelBytes: UInt64 = 0
    /// `/sys/kernel/mm/transparent_hugepage/enabled` at boot
    /// (`transparent_hugepage=`, CONFIG_TRANSPARENT_HUGEPAGE_ALWAYS/MADVISE):
    /// with `always` or `madvise` khugepaged starts and raises
    /// `min_free_kbytes` (`set_recommended_min_free_kbytes()`).
    public var transparentHugepage: TransparentHugepage = .madvise
    /// `mem_encrypt_setup_arch()` sizes SWIOTLB at 6% of memory for this
    /// guest. True for every kernel the version table covers, built as
    /// distributions build them (CONFIG_AMD_MEM_ENCRYPT=y, so the code ran
    /// for a TD even before Alexander Shishkin's 2023 "x86/sev: Move
    /// sev_setup_arch() to mem_encrypt.c"). False is the TD of 2021:
    /// before 4d96f9109109 ("x86/sev: Replace occurrences of sev_active()
    /// with cc_platform_has()", v5.16) `sev_setup_arch()` returned for
    /// anything but SEV, and a TD kept IO_TLB_DEFAULT_SIZE (64 MiB). The
    /// published 2021 boot ratios (seed 002, measured for the August 2021
    /// v1 of the unaccepted memory series) ran such a kernel.
    public var swiotlbSizedFromMemory = true
    /// `swiotlb_update_mem_attributes()` (from `mem_encrypt_init()`) makes
    /// the SWIOTLB pool shared with `set_memory_decrypted()`, as every
    /// TDX and SNP kernel does: `mem_encrypt_init()` returns early only
    /// without CC_ATTR_MEM_ENCRYPT, which `intel_cc_platform_has()` and
    /// `amd_cc_platform_has()` give every TD and SNP guest, and the
    /// platforms' to-shared hooks (`tdx_enc_status_changed()`,
    /// `snp_set_memory_shared()`) are older (5.19) than the oldest release
    /// the version table knows (6.5). Off by default all the same: on, the
    /// host's per-leaf zap (BLOCK, TRACK, REMOVE, WBINVD at their assumed
    /// costs, 22 us a 4K leaf) takes `validate`'s kata-128g row out of its
    /// band (42.3 s against 35 s), so it waits for those costs to be
    /// measured (`--swiotlb-shared`, `kernel.swiotlb-shared: true`).
    public var swiotlbShared = false
    /// The guest's other shared memory, as the kernel makes it shared
    /// (`GuestKernel+EarlyDecrypted.swift`): on SNP, `__bss_decrypted`
    /// (`sme_postprocess_startup()`) and each vCPU's GHCB page
    /// (`sev_es_init_vc_handling()` → `init_ghcb()`), both through the GHCB
    /// MSR protocol, and the unused part of `__bss_decrypted` made private
    /// again by `mem_encrypt_free_decrypted_mem()`. TDX makes none of these
    /// shared (`sme_me_mask` is 0 in a TD, so `sme_postprocess_startup()`
    /// leaves `__bss_decrypted` private; a TD has no GHCB). Off by default:
    /// on, it moves SNP boots' times and counts (`--early-decrypted`,
    /// `kernel.early-decrypted: true`).
    public var earlyDecrypted = false
    /// CONFIG_HZ of a periodic tick on the boot CPU while start_kernel()
    /// converts memory after `local_irq_enable()` (0: none). Only a global
    /// clockevent device ticks then (HPET, or the PIT when the local APIC
    /// lacks TSC-deadline mode: `hpet_time_init()` from `x86_late_time_init()`);
    /// the local APIC timer is set up later, in `native_smp_prepare_cpus()`
    /// (`x86_init.timers.setup_percpu_clockev()`). A TD with `hpet=off` and
    /// TSC-deadline has none, hence 0 by default. A pending tick cuts a TDX
    /// MapGPA into TDVMCALLs (`--early-tick`, `kernel.early-tick`).
    public var earlyTickHz: UInt64 = 0
    /// The values `earlyTickHz` takes: 0 (no tick) or a CONFIG_HZ choice
    /// of kernel/Kconfig.hz (HZ_100, HZ_250, HZ_300, HZ_1000).
    public static let earlyTickChoices: [UInt64] = [0, 100, 250, 300, 1000]
    /// `efi=debug` on the command line: EFI_DBG, which keeps EFI boot
    /// services memory reserved for good (`efi_free_boot_services()`).
    public var efiDebug = false
    /// `swiotlb=` on the command line (nil: not given).
    public var swiotlbParameter: SWIOTLBParameter? = nil
    /// `vm.min_free_kbytes` written before user space (a `sysctl.vm.` boot
    /// parameter or systemd-sysctl); nil: the kernel's own value.
    public var minFreeKbytes: UInt64? = nil
    /// `vm.watermark_scale_factor` written before user space; nil: the
    /// kernel's default of 10 (0.1% of a zone between watermarks).
    public var watermarkScaleFactor: UInt64? = nil
    /// How hot-added memory reaches the page allocator (issue 16 §4):
    /// mainline, or one of the series proposed to fix it.
    public var hotplugAcceptance: HotplugAcceptance = .mainline
    public init() {}

    /// `min_free_kbytes_sysctl_handler()`: `proc_dointvec_minmax` with
    /// `extra1 = SYSCTL_ZERO`, an int.
    public static let minFreeKbytesRange: ClosedRange<UInt64> = 0...UInt64(Int32.max)
    /// `watermark_scale_factor_sysctl_handler()`: `SYSCTL_ONE` to
    /// `SYSCTL_THREE_THOUSAND` (mm/page_alloc.c's sysctl table).
    public static let watermarkScaleFactorRange: ClosedRange<UInt64> = 1...3000
}

/// `transparent_hugepage=` / `/sys/kernel/mm/transparent_hugepage/enabled`.
/// Ubuntu and Debian build CONFIG_TRANSPARENT_HUGEPAGE_MADVISE (the model's
/// default); mainline's Kconfig default and RHEL build ALWAYS. Both start
/// khugepaged (`hugepage_flags_enabled()` / `hugepage_pmd_enabled()`).
public enum TransparentHugepage: String, Sendable, CaseIterable {
    case always, madvise, never
    /// Whether khugepaged runs, and so raises `min_free_kbytes`.
    public var startsKhugepaged: Bool { self != .never }
}

/// The memblock allocations of early boot and the rule that sizes each.
public struct MemblockPlan: Sendable {
    /// The struct page array under SPARSEMEM_VMEMMAP: `sparse_buffer_init()`
    /// takes one PMD-aligned buffer of 2 MiB (`section_map_size()`) per
    /// present 128 MiB section, which `vmemmap_populate_hugepages()` then
    /// maps section by section in order.
    public var memmap: UInt64
    /// Per-CPU first chunk: 256 KiB a vCPU, in 2 MiB atoms (pcpu_embed_first_chunk).
    public var percpu: UInt64
    /// Direct-map page tables: one 4 KiB PMD page per GiB plus 16 KiB.
    public var pageTables: UInt64
    /// SWIOTLB bounce buffer forced on in TDX/SNP guests, sized from
    /// memblock's memory (`mem_encrypt_setup_arch()`, `swiotlb_init_remap()`).
    public var swiotlb: SWIOTLBSizing
    /// Everything else memblock allocates early (log buffer, ACPI copies, ...): 16 MiB.
    public var other: UInt64

    /// `memblockBytes` is `memblock_phys_mem_size()` when
    /// `mem_encrypt_setup_arch()` runs: the E820 RAM plus what
    /// `reserve_unaccepted()` added with `memblock_add()` (efi_init() runs
    /// before `e820__memblock_setup()`).
    public init(ram: [AddressRange], vcpus: Int, memblockBytes: UInt64? = nil, adjustsSWIOTLB: Bool = true, swiotlbParameter: SWIOTLBParameter? = nil) {
        let ramBytes = ram.reduce(0) { $0 + $1.size }
        memmap = Sparsemem.presentSectionCount(ram) * Sparsemem.sectionMapBytes
        percpu = alignUp(UInt64(vcpus) * (256 << 10), 2 << 20)
        pageTables = alignUp(divRoundUp(ramBytes, PageLevel.size1G.bytes) * 4096 + (16 << 10), 4096)
        swiotlb = SWIOTLBSizing(totalMemBytes: memblockBytes ?? ramBytes, possibleCPUs: vcpus, adjustsSize: adjustsSWIOTLB, parameter: swiotlbParameter)
        other = 16 << 20
    }
}

/// What a memblock reservation holds: the caller of `memblock_reserve()`
/// or `memblock_alloc*()` that made it. The raw value is the label the
/// text output prints.
public enum MemblockReservation: String, Sendable, CaseIterable, CustomStringConvertible {
    /// The decompressed kernel, `_text` to `_end` (`early_reserve_memory()`).
    case kernelImage = "kernel image"
    /// Direct-map page tables (`alloc_low_pages()`).
    case pageTables = "page tables"
    /// The struct page array (`sparse_buffer_init()`).
    case memmap
    /// The per-CPU first chunk (`pcpu_embed_first_chunk()`).
    case percpu = "per-cpu areas"
    /// The SWIOTLB bounce buffer (`swiotlb_init_remap()`).
    case swiotlb
    /// Every other early allocation (log buffer, ACPI copies, ...).
    case other
    /// `crashkernel=` (`reserve_crashkernel()`).
    case crashKernel = "crash kernel"
    /// The EFI unaccepted table (`reserve_unaccepted()`).
    case unacceptedTable = "unaccepted table"
    /// The initrd a boot loader or kexec left (`reserve_initrd()`).
    case initrd
    /// The first 1 MiB: `reserve_real_mode()` (arch/x86/realmode/init.c,
    /// `x86_platform.realmode_reserve`) places the real-mode trampoline
    /// below 1M and then `memblock_reserve(0, SZ_1M)` unconditionally
    /// ("x86/setup: Always reserve the first 1M of RAM", v5.13, so every
    /// release the model has). TDX and SNP guests on KVM keep the default
    /// hook (only Hyper-V VTL replaces it).
    case firstMegabyte = "first 1M"
    /// EFI boot services code and data that `efi_reserve_boot_services()`
    /// (arch/x86/platform/efi/quirks.c) reserved and owns: freed late
    /// (`freeBootServices`).
    case bootServices = "EFI boot services"
    public var description: String { rawValue }
}

/// A Linux guest kernel's memory: memblock, zones, the unaccepted table and
/// the page allocator's acceptance policy.
public final class GuestKernel {
    public let config: KernelConfig
    public let vcpus: Int
    public let costs: CostTable
    public let platform: any GuestPlatform
    public let unaccepted: UnacceptedMemory?
    /// Every node's zones, node by node, each node's in `ZoneKind` order:
    /// zone index `node * 3 + kind` (one node: DMA, DMA32, Normal).
    public internal(set) var zones: [Zone]
    /// The nodes, from the SRAT (one node without NUMA).
    public let numa: NUMATopology
    /// RAM the kernel manages (E820 RAM ranges).
    public let ram: [AddressRange]
    /// memblock reservations and what each is for, in the order they were made.
    public private(set) var reservations: [(range: AddressRange, kind: MemblockReservation)] = []
    /// The reserved ranges alone.
    public var reserved: [AddressRange] { reservations.map(\.range) }
    public internal(set) var events: [String] = []
    /// EFI boot services memory (`GuestKernel+LowMemory.swift`): the ranges
    /// `efi_reserve_boot_services()` reserved to free later, those it could
    /// not own (left to whoever reserved them, or to `memblock_free_all()`),
    /// those given back to the page allocator and when, and those
    /// `memblock_free_late()` skipped (struct pages not yet initialised).
    public internal(set) var bootServices = BootServicesMemory()
    /// The SWIOTLB bounce buffer `swiotlb_init_remap()` mapped (0: none).
    public internal(set) var swiotlbBytes: UInt64 = 0
    /// Where that buffer is (nil: none).
    public internal(set) var swiotlbRange: AddressRange? = nil
    /// Ranges this kernel made shared with `set_memory_decrypted()` and has
    /// not made private again, in the order it did.
    public internal(set) var decryptedRanges: [AddressRange] = []
    /// SNP with `earlyDecrypted`: the 2 MiB of `__bss_decrypted` that
    /// `sme_postprocess_startup()` made shared (nil: none).
    public internal(set) var bssDecrypted: AddressRange? = nil
    /// SNP with `earlyDecrypted`: each vCPU's GHCB page, made shared by
    /// `init_ghcb()` and still shared (`snp_kexec_finish()` turns them
    /// private last, through the MSR protocol).
    public internal(set) var ghcbPages: [AddressRange] = []
    /// `min_free_kbytes` once watermarks are set up (boot value, raised by
    /// khugepaged, or written by the scenario's sysctl); 0 before.
    public internal(set) var minFreeKbytesInEffect: UInt64 = 0
    /// Set once watermarks are initialised.
    public private(set) var watermarksReady = false
    func watermarksReadySet() { watermarksReady = true }
    /// Anonymous/user pages and page-cache pages handed out.
    public internal(set) var allocatedPages: UInt64 = 0
    public internal(set) var pageCachePages: UInt64 = 0
    /// Reclaim's `/proc/vmstat` counters since boot (`GuestKernel+Reclaim.swift`).
    public internal(set) var reclaim = ReclaimCounters()
    /// The first time a kswapd the model woke met the endless-reclaim state
    /// of kernels before 807174a93d24, if it did.
    public internal(set) var endlessReclaim: EndlessReclaim? = nil
    /// Pages of the hugetlb pool (`nr_hugepages`), taken from the buddy allocator in 2 MiB folios.
    public internal(set) var hugetlbPages: UInt64 = 0
    /// What `allocate()` took from each node's zones.
    public internal(set) var nodeUsage: [NodeUsage]
    /// Pages the kernel itself took from the allocator before watermarks
    /// existed (counted in `allocatedPages` too).
    public internal(set) var earlyAllocationPages: UInt64 = 0
    /// Pages the kernel allocated for itself after boot (counted in
    /// `allocatedPages` too), such as kexec's source copies.
    public internal(set) var kernelPages: UInt64 = 0
    /// Pages `allocate()` took from each zone while set (nil: not counted),
    /// so a caller can give back a temporary buffer to the zones it came
    /// from (`freeTallied(_:use:)`).
    var allocationTally: [Int: UInt64]? = nil
    /// The order-0 allocations `allocate()` made and the extra time those
    /// that found the zone short of accepted pages paid accepting
    /// (`cond_accept_memory()` / `try_to_accept_memory()`), for the
    /// allocation-latency distribution (issue 14). Cleared by its owner.
    public var allocationStalls = AllocationStalls()
    /// The first Normal-zone address whose struct pages are not yet
    /// initialised (`pgdat->first_deferred_pfn`), and where Normal-zone RAM
    /// ends: with deferred struct page init, memmap_init leaves
    /// `[deferredFrom, deferredEnd)` to `deferred_grow_zone()` and to
    /// `page_alloc_init_late()`. Both `UInt64.max` when nothing is deferred.
    /// Per node (`NODE_DATA(nid)->first_deferred_pfn`).
    public private(set) var deferredFrom: [UInt64] = []
    public private(set) var deferredEnd: [UInt64] = []
    /// The zone each node defers (nil: none), `defer_init()`'s highest zone.
    public private(set) var deferredZone: [ZoneKind?] = []
    /// What `memblock_free_all()` left to deferred init, one range a node at
    /// most, as it was then (`deferredRanges` shrinks as zones grow).
    public private(set) var deferredAtFreeAll: [AddressRange] = []
    /// How long each node's `pgdatinit` thread ran in deferred init, in
    /// picoseconds of its busiest vCPU (0: the node deferred nothing).
    public private(set) var deferredInitNodePicoseconds: [UInt64] = []
    /// Sections `deferred_grow_zone()` initialised on demand.
    public internal(set) var deferredGrownSections: UInt64 = 0
    /// Accepts that found an overlapping accept of another vCPU on the
    /// accepting list and spun (`accept_memory()`'s retry loop), or, before
    /// 50e782a86c98, found `unaccepted_memory_lock` held across another
    /// vCPU's accept, and the virtual time they spun, in picoseconds, since boot.
    public internal(set) var acceptingListWaits: UInt64 = 0
    public internal(set) var acceptingListWaitPicoseconds: UInt64 = 0
    /// Timer ticks idle APs took (one HLT exit each) during SMP bring-up
    /// and up to the watermarks.
    public internal(set) var idleTickExits: UInt64 = 0
    /// What workload phases run as actors met, since boot (`WorkloadActors`).
    public internal(set) var workloadActorStats = WorkloadActorStats()
    /// The seed of the actors' scheduler (the scenario's `seed`).
    package var actorSeed: UInt64 = 0
    /// Step every block even when one actor is left (`--step-by-step`, tests).
    package var actorsStepEverything = false
    /// Called after each batch of acceptance the page allocator makes
    /// (`cond_accept_memory()` in `allocate()`) and after each deferred
    /// init padata chunk, with the phase's clock as it stands: where a
    /// recorder samples, never per page.
    public var onAcceptBatch: ((PhaseClock) -> Void)? = nil
    /// Hot-added memory still present (DIMMs, virtio-mem blocks), in the
    /// order it was added (`GuestKernel+Hotplug.swift`).
    public internal(set) var hotplugged: [HotplugBlock] = []
    /// Hot-added ranges the buddy allocator holds that nobody accepted
    /// (mainline's `generic_online_page()`), in free-list order: the pages
    /// an allocation reaches once the accepted free pages before them are
    /// used. Zone Normal's; counted in its `freePages`.
    var unacceptedInBuddy: [AddressRange] = []
    /// Per vCPU, whether it runs guest code or is halted in the idle loop
    /// (`GuestKernel+Idle.swift`).
    var vcpuRunning: [Bool] = []

    /// `ram` is the E820 RAM as the firmware or the previous kernel handed
    /// it over; the kernel's memblock memory is that after `trim_bios_range()`.
    public init(config: KernelConfig, vcpus: Int, costs: CostTable, platform: any GuestPlatform,
                ram: [AddressRange], unaccepted: UnacceptedMemory?, numa: NUMATopology? = nil) {
        let numa = numa ?? .single(vcpus: vcpus)
        self.numa = numa
        zones = (0..<numa.nodeCount).flatMap { n in ZoneKind.allCases.map { Zone(kind: $0, node: n) } }
        nodeUsage = Array(repeating: NodeUsage(), count: numa.nodeCount)
        self.config = config
        self.vcpus = vcpus
        self.costs = costs
        self.platform = platform
        self.ram = Self.trimBIOSRange(ram)
        self.unaccepted = unaccepted
        unaccepted?.locking = config.version.acceptMemoryLocking
        // The kernel starts with every AP in the firmware's mailbox loop, in
        // guest mode (`GuestKernel+Idle.swift`): a halted one (the previous
        // kernel's, after kexec) is back in that loop.
        vcpuRunning = Array(repeating: true, count: vcpus)
        for v in 0..<vcpus { platform.wake(vcpu: v) }
    }

    /// The zone an address is in: its node's zone of its kind.
    func zoneIndex(_ addr: UInt64) -> Int { numa.node(of: addr) * ZoneKind.allCases.count + X86Zones.index(ofAddress: addr) }

    /// The zone of `kind` on `node`.
    public func zoneIndex(node: Int, kind: ZoneKind) -> Int { node * ZoneKind.allCases.count + ZoneKind.allCases.firstIndex(of: kind)! }

    /// `r` cut at node and zone boundaries, in address order: (zone index, part).
    /// - Complexity: O(nodes' SRAT ranges).
    func zoneParts(_ r: AddressRange) -> [(zone: Int, range: AddressRange)] {
        var out: [(zone: Int, range: AddressRange)] = []
        for (node, part) in numa.split(r) {
            for kind in ZoneKind.allCases {
                let zpart = part.clamped(to: AddressRange(start: kind.range.lowerBound, end: kind.range.upperBound))
                if !zpart.isEmpty { out.append((zoneIndex(node: node, kind: kind), zpart)) }
            }
        }
        return out
    }

    // MARK: Early boot

    /// `extract_kernel()` accepting the decompression output: `image`, the
    /// kernel's load address (16 MiB from a boot loader, the kexec kernel
    /// segment after kexec) for `init_size` bytes, through the boot code's
    /// `arch_accept_memory()` (`acceptor`; nil: the kernel's own).
    public func decompress(image: AddressRange, clock: inout PhaseClock, acceptor: (any ArchAcceptor)? = nil) -> AcceptOutcome {
        guard let u = unaccepted else { return .ok }
        return u.bootAcceptMemory(start: image.start, end: image.end, vcpu: 0, clock: &clock, using: acceptor)
    }

    /// `memblock_reserve()` of a range early boot must keep (the initrd a
    /// boot loader or kexec left, `reserve_initrd()`).
    public func reserve(_ r: AddressRange, _ kind: MemblockReservation) { reservations.append((r, kind)) }

    /// Takes `r` out of the reservations of `kind` (what a late free such as
    /// `free_reserved_area()` of boot services memory gives back), keeping
    /// the rest of each and its place in the order.
    /// - Complexity: O(reservations).
    func unreserve(_ r: AddressRange, _ kind: MemblockReservation) {
        reservations = reservations.flatMap { entry -> [(range: AddressRange, kind: MemblockReservation)] in
            guard entry.kind == kind, entry.range.overlaps(r) else { return [entry] }
            return [entry.range].subtracting([r]).filter { !$0.isEmpty }.map { ($0, kind) }
        }
    }

    /// The first reservation of `kind`, if any.
    public func reservation(_ kind: MemblockReservation) -> AddressRange? {
        reservations.first(where: { $0.kind == kind })?.range
    }

    /// `free_reserved_area()` of a reservation no longer needed (the initrd
    /// once unpacked, `free_initrd_mem()`): its pages, written by whoever
    /// loaded them and so accepted, go to the buddy allocator page by page.
    public func freeReservation(_ kind: MemblockReservation) {
        guard let i = reservations.firstIndex(where: { $0.kind == kind }) else { return }
        let r = reservations.remove(at: i).range
        for (zi, part) in zoneParts(r) {
            zones[zi].managed += part.bytes.frames()
            zones[zi].freePages += part.bytes.frames()
        }
    }

    /// `reserve_unaccepted()`: memblock_add/reserve of the table's pages.
    /// Before the Feb 2026 fix only the size was page-aligned, from the
    /// page-aligned-down start, so a table starting mid-page and ending in
    /// the next page had that last page unreserved (canonical/tdx issue 421).
    /// The unreserved tail is not in memblock, so `init_mem_mapping()`
    /// leaves it out of the direct map: the kernel faults on the first read
    /// of a bitmap byte in it. Returns the unreserved tail, if any.
    public func reserveUnacceptedTable() -> AddressRange? {
        guard let t = unaccepted?.table else { return nil }
        let start = alignDown(t.address.value, 4096)
        let needed = AddressRange(start: start, end: alignUp(t.address.value + t.totalBytes, 4096))
        let reservedRange = config.version.reserveUnacceptedEndAligned
            ? needed : AddressRange(start: start, size: alignUp(t.totalBytes, 4096))
        reservations.append((reservedRange, .unacceptedTable))
        if reservedRange.end < needed.end {
            let tail = AddressRange(start: reservedRange.end, end: needed.end)
            events.append("reserve_unaccepted(): table \(AddressRange(start: t.address.value, size: t.totalBytes)) reserved only \(reservedRange); \(tail) is neither reserved nor in the direct map")
            let bitmapStart = t.address.value + UnacceptedTable.headerSize
            unaccepted?.unmappedBitmapBytes = (tail.start - bitmapStart)..<t.size
            return tail
        }
        return nil
    }

    /// Allocates `bytes` top-down from RAM below `limit` the way
    /// `memblock_alloc_range_nid()` does, and accepts it.
    func memblockAlloc(_ bytes: UInt64, below limit: UInt64, align: UInt64 = 4096, what: MemblockReservation, vcpu: Int,
                       clock: inout PhaseClock, reportFailure: Bool = true) -> (AddressRange?, AcceptOutcome) {
        let size = alignUp(bytes, 4096)
        for r in ram.reversed() {
            var top = min(r.end, limit)
            // Skip down past reservations overlapping the candidate.
            while top > r.start, top - r.start >= size, alignDown(top - size, align) >= r.start {
                let cand = AddressRange(start: alignDown(top - size, align), end: alignDown(top - size, align) + size)
                if let clash = reservations.first(where: { $0.range.overlaps(cand) }) { top = clash.range.start; continue }
                reservations.append((cand, what))
                let o = unaccepted?.acceptMemory(start: cand.start, size: cand.size, vcpu: vcpu, clock: &clock) ?? .ok
                return (cand, o == .ok ? zeroMemblock(cand, vcpu: vcpu, clock: &clock) : o)
            }
        }
        if reportFailure { events.append("memblock: cannot allocate \(ByteCount(size)) for \(what)") }
        return (nil, .ok)
    }

    /// The early memblock allocations, each accepted as it is made.
    /// `bootServices` are the EFI map's boot services code and data
    /// descriptors in map order (none for a kernel kexec started: the
    /// previous kernel's `efi_free_boot_services()` took them out of the
    /// EFI memmap it passed on).
    public func memblockAllocations(kernelImage: AddressRange, bootServices bs: [AddressRange] = [], clock: inout PhaseClock) -> AcceptOutcome {
        reservations.append((kernelImage, .kernelImage))
        // setup_arch(): efi_reserve_boot_services(), then
        // x86_platform.realmode_reserve(), before init_mem_mapping()'s page tables.
        reserveBootServices(bs)
        reserveFirstMegabyte()
        let ramBytes = ram.reduce(0) { $0 + $1.size }
        let plan = MemblockPlan(ram: ram, vcpus: vcpus, memblockBytes: ramBytes + (reservation(.unacceptedTable)?.size ?? 0),
                                adjustsSWIOTLB: config.swiotlbSizedFromMemory, swiotlbParameter: config.swiotlbParameter)
        var items: [(UInt64, UInt64, MemblockReservation)] = [(plan.pageTables, .max, .pageTables)]
        items += numa.isSingleNode ? [(plan.memmap, .max, .memmap)] : memmapPerNode()
        items.append((plan.percpu, .max, .percpu))
        func allocate(_ items: [(UInt64, UInt64, MemblockReservation)]) -> AcceptOutcome {
            for (size, limit, what) in items {
                let align: UInt64 = what == .memmap ? Sparsemem.sectionMapBytes : 4096
                let (_, o) = memblockAlloc(size, below: limit, align: align, what: what, vcpu: 0, clock: &clock)
                if o != .ok { return o }
            }
            return .ok
        }
        // With the GHCBs' runtime data allocated by name (sevESInitVCHandling), the lump is smaller by as much.
        let named = sevESRuntimeDataReserved
        if plan.other > named { items.append((plan.other - named, .max, .other)) }
        // reserve_crashkernel(): crashkernel=X is reserved below 4 GiB
        // (CRASH_ADDR_LOW_MAX) through memblock, so it is accepted here.
        if config.crashKernelBytes > 0 { items.append((config.crashKernelBytes, 1 << 32, .crashKernel)) }
        let o = allocate(items)
        if o != .ok { return o }
        // trap_init() → sev_es_init_vc_handling(): the per-CPU GHCBs (SNP, earlyDecrypted).
        let g = sevESInitVCHandling(clock: &clock)
        if g != .ok { return g }
        // Last: swiotlb_init_remap() runs in mem_init() (pci_iommu_alloc()),
        // after setup_arch()'s reservations (crashkernel=) and the per-CPU areas.
        return allocateSWIOTLB(plan.swiotlb, clock: &clock)
    }

    /// `sparse_init()` with several nodes: each node's struct pages in one
    /// buffer on that node (`sparse_init_nid()` → `sparse_buffer_init(size,
    /// nid)`), top-down below the node's last address, nodes in section
    /// order. A section that two nodes share is the first node's
    /// (`memory_present()` keeps the nid it first set).
    func memmapPerNode() -> [(UInt64, UInt64, MemblockReservation)] {
        var out: [(UInt64, UInt64, MemblockReservation)] = []
        var lastSection: UInt64? = nil
        for n in 0..<numa.nodeCount {
            let nodeRAM = ram.flatMap { r in numa.split(r).filter { $0.node == n }.map(\.range) }
            guard let first = nodeRAM.first, let top = nodeRAM.last?.end else { continue }
            var sections = Sparsemem.presentSectionCount(nodeRAM)
            if let l = lastSection, first.start / Sparsemem.sectionBytes == l { sections -= 1 }
            lastSection = (top - 1) / Sparsemem.sectionBytes
            if sections > 0 { out.append((sections * Sparsemem.sectionMapBytes, top, .memmap)) }
        }
        return out
    }

    /// `swiotlb_init_remap()`: the buffer below 4 GiB (`memblock_alloc_low()`,
    /// halved while it does not fit), then its slot array anywhere; the
    /// kernel's lines about it go to `events` (see `SWIOTLBSizing`).
    func allocateSWIOTLB(_ sizing: SWIOTLBSizing, clock: inout PhaseClock) -> AcceptOutcome {
        let mb = { (b: UInt64) in b >> 20 }
        var lines = sizing.messages
        // swiotlb=noforce: swiotlb_init_remap() returns before allocating.
        guard !sizing.disabled else {
            if !lines.isEmpty { events.append("software IO TLB: " + lines.joined(separator: "; ")) }
            events.append("swiotlb=noforce: swiotlb_init_remap() allocates no bounce buffer (swiotlb_force_disable)")
            return .ok
        }
        for slabs in sizing.attempts {
            let (got, o) = memblockAlloc(slabs * SWIOTLBSizing.slabBytes, below: 1 << 32, what: .swiotlb, vcpu: 0,
                                         clock: &clock, reportFailure: false)
            if o != .ok { return o }
            guard let buffer = got else { continue }
            if slabs != sizing.slabs { lines.append("SWIOTLB bounce buffer size adjusted \(sizing.slabs) -> \(slabs) slabs") }
            lines.append("mapped [mem \(hex16(buffer.start))-\(hex16(buffer.end))] (\(mb(buffer.size))MB)")
            events.append("software IO TLB: " + lines.joined(separator: "; "))
            swiotlbBytes = buffer.size
            swiotlbRange = buffer
            let (_, so) = memblockAlloc(SWIOTLBSizing.slotArrayBytes(slabs: slabs), below: .max, what: .swiotlb, vcpu: 0, clock: &clock)
            return so
        }
        events.append("software IO TLB: " + (lines + ["No low mem"]).joined(separator: "; "))
        return .ok
    }

    // MARK: memblock_free_all and deferred init

    /// Free RAM: RAM minus memblock reservations.
    func freeRanges() -> [AddressRange] { ram.subtracting(reserved) }

    /// `memblock_free_all()` on the boot CPU: every RAM page's struct page is
    /// initialised and free memory goes to buddy in greedy aligned chunks up
    /// to MAX_PAGE_ORDER, whole unaccepted 4 MiB blocks to the zone's list
    /// (lazy) or accepted first (eager). With deferred struct page init,
    /// `memmap_init_range()` stops the node's highest zone after its first
    /// section (`defer_init()`: "We start only with one section of pages");
    /// the rest waits for `deferred_grow_zone()` (`growDeferredZone`) and
    /// `page_alloc_init_late()` (`deferredInit`), which runs after
    /// `smp_init()` in `kernel_init_freeable()`.
    ///
    /// Each node defers on its own (`NODE_DATA(nid)->first_deferred_pfn`),
    /// and only in the zone that ends where the node ends: `defer_init()`
    /// returns false while `end_pfn < pgdat_end_pfn()` ("Always populate
    /// low zones for address-constrained allocations"). That is Normal on a
    /// node with memory above 4 GiB and DMA32 on one without (a one-node
    /// guest below 2816 MiB), counted from that zone's first page.
    public func freeAll(early: inout PhaseClock) -> AcceptOutcome {
        deferredFrom = []; deferredEnd = []; deferredZone = []
        for n in 0..<numa.nodeCount {
            let nodeRAM = ram.flatMap { r in numa.split(r).filter { $0.node == n }.map(\.range) }
            let (kind, zoneRAM) = Self.highestZone(of: nodeRAM)
            // Nothing deferred: both at the top of the address space.
            if config.deferredStructPageInit, let first = Self.firstDeferred(zoneRAM), let end = zoneRAM.last?.end {
                deferredFrom.append(first); deferredEnd.append(end); deferredZone.append(kind)
            } else {
                deferredFrom.append(.max); deferredEnd.append(.max); deferredZone.append(nil)
            }
        }
        deferredAtFreeAll = deferredRanges
        deferredInitNodePicoseconds = Array(repeating: 0, count: numa.nodeCount)
        let allPages = ram.reduce(0) { $0 + $1.bytes.frames() }
        early.charge(.kernelStructPageInit, allPages - deferredPagesLeft, vcpu: 0, costs: costs)
        return freeRAM(outside: deferredRanges, vcpu: 0, clock: &early)
    }

    /// The highest zone holding some of `nodeRAM` (the zone whose span ends
    /// at `pgdat_end_pfn()`), and the node's RAM in it.
    static func highestZone(of nodeRAM: [AddressRange]) -> (ZoneKind?, [AddressRange]) {
        for kind in ZoneKind.allCases.reversed() {
            let z = AddressRange(start: kind.range.lowerBound, end: kind.range.upperBound)
            let parts = nodeRAM.map { $0.clamped(to: z) }.filter { !$0.isEmpty }
            if !parts.isEmpty { return (kind, parts) }
        }
        return (nil, [])
    }

    /// The ranges still waiting for deferred init, one a node at most.
    var deferredRanges: [AddressRange] {
        zip(deferredFrom, deferredEnd).compactMap { $0 < $1 ? AddressRange(start: $0, end: $1) : nil }
    }

    /// RAM pages whose struct pages are not initialised yet.
    /// - Complexity: O(nodes × RAM ranges).
    public var deferredPagesLeft: UInt64 { zip(deferredFrom, deferredEnd).reduce(0) { $0 + ramPages(from: $1.0, to: $1.1) } }

    /// `defer_init()`: counting the highest zone's pages from its start, the
    /// first section-aligned frame after more than PAGES_PER_SECTION
    /// (128 MiB) were initialised. Nil when the zone is no larger.
    static func firstDeferred(_ normalRAM: [AddressRange]) -> UInt64? {
        let section: UInt64 = 128 << 20
        var counted: UInt64 = 0
        for r in normalRAM {
            let a = alignUp(counted >= section ? r.start : r.start + (section - counted), section)
            if a < r.end { return a }
            counted += r.size
        }
        return nil
    }

    /// RAM pages in `[from, to)`.
    func ramPages(from: UInt64, to: UInt64) -> UInt64 {
        guard from < to else { return 0 }
        return ram.reduce(0) { $0 + $1.clamped(to: AddressRange(start: from, end: to)).bytes.frames() }
    }

    /// Frees the free RAM in `[from, below)` zone by zone (`__free_pages_memory()`).
    func freeRAM(from: UInt64 = 0, below end: UInt64, vcpu: Int, clock: inout PhaseClock) -> AcceptOutcome {
        freeRAM(freeRanges().map { $0.clamped(to: AddressRange(start: from, end: end)) }, vcpu: vcpu, clock: &clock)
    }

    /// Frees the free RAM outside `cuts` (the deferred ranges) zone by zone.
    func freeRAM(outside cuts: [AddressRange], vcpu: Int, clock: inout PhaseClock) -> AcceptOutcome {
        freeRAM(freeRanges().subtracting(cuts), vcpu: vcpu, clock: &clock)
    }

    /// `__free_pages_memory()` over each part of `ranges` in each node's zones
    /// (memblock regions carry their node, so no free crosses one).
    func freeRAM(_ ranges: [AddressRange], vcpu: Int, clock: inout PhaseClock) -> AcceptOutcome {
        for part in ranges where !part.isEmpty {
            for (_, zpart) in zoneParts(part) {
                let o = freeRange(zpart, vcpu: vcpu, clock: &clock)
                if o != .ok { return o }
            }
        }
        // Reserved RAM counts in neither managed nor free.
        return .ok
    }

    /// Whether zone `zi` is its node's deferred zone: `deferred_grow_zone()`
    /// returns false for any other ("Only the last zone may have deferred
    /// pages": `zone_end_pfn(zone) != pgdat_end_pfn(pgdat)`).
    func isDeferredZone(_ zi: Int) -> Bool {
        let z = zones[zi]
        return z.node < deferredZone.count && deferredZone[z.node] == z.kind
    }

    /// `deferred_grow_zone()`: an allocation found the node's last zone empty
    /// before `page_alloc_init_late()`, so the allocating CPU initialises
    /// the next section (`PAGES_PER_SECTION`, the least it grows by) and
    /// frees it. Returns nil when nothing is left to grow.
    func growDeferredZone(node n: Int, vcpu: Int, clock: inout PhaseClock) -> AcceptOutcome? {
        guard n < deferredFrom.count, deferredFrom[n] < deferredEnd[n] else { return nil }
        let next = min(deferredEnd[n], deferredFrom[n] + (128 << 20))
        clock.charge(.kernelStructPageInit, ramPages(from: deferredFrom[n], to: next), vcpu: vcpu, costs: costs)
        let o = freeRAM(from: deferredFrom[n], below: next, vcpu: vcpu, clock: &clock)
        deferredFrom[n] = next
        deferredGrownSections += 1
        return o
    }

    /// `page_alloc_init_late()` → `deferred_init_memmap()`: what is left of
    /// each node's deferred (last) zone, struct pages and free ranges, on padata
    /// threads on the node's vCPUs. The kernel starts one `pgdatinit%d`
    /// thread a node with memory and waits for all; each is bound to its
    /// node's CPUs (`cpumask_of_node()`) and runs padata with `max_threads`
    /// the node's CPU count. A node without CPUs leaves its thread unbound,
    /// with one padata worker (`deferred_page_init_max_threads()` is at
    /// least 1): the model puts it on the least-loaded vCPU.
    public func deferredInit(clock deferred: inout PhaseClock) -> AcceptOutcome {
        var workersOfNode: [[Int]] = []
        for n in 0..<numa.nodeCount {
            // Chosen after the nodes before it were charged, so threads of nodes without CPUs spread out.
            let workers = workerCPUs(node: n, clock: deferred)
            workersOfNode.append(workers)
            let pages = ramPages(from: deferredFrom[n], to: deferredEnd[n])
            guard pages > 0 else { continue }
            // The node's `pgdatinit` thread and padata workers wake its idle CPUs.
            wakeVCPUs(workers)
            // padata splits the work evenly over the node's CPUs.
            let per = pages / UInt64(workers.count), extra = pages % UInt64(workers.count)
            for (i, v) in workers.enumerated() { deferred.charge(.kernelStructPageInit, per + (UInt64(i) < extra ? 1 : 0), vcpu: v, costs: costs) }
        }
        for n in 0..<numa.nodeCount {
            let from = deferredFrom[n], end = deferredEnd[n]
            guard from < end else { continue }
            deferredFrom[n] = end
            let workers = workersOfNode[n]
            for r in freeRanges() {
                let part = r.clamped(to: AddressRange(start: from, end: end))
                guard !part.isEmpty else { continue }
                let o = freeRangeDeferred(part, workers: workers, clock: &deferred)
                if o != .ok { return o }
            }
            deferredInitNodePicoseconds[n] = workers.map { deferred.vcpuPicoseconds[$0] }.max() ?? 0
        }
        // `page_alloc_init_late()` waits for every node's thread; then the
        // APs have nothing to run and halt, the BSP goes on with the initcalls.
        idleVCPUs(1..<vcpus)
        return .ok
    }

    /// The vCPUs a node's `pgdatinit` thread and its padata workers run on:
    /// the node's CPUs, or one (the least-loaded) for a node without CPUs.
    func workerCPUs(node n: Int, clock: PhaseClock) -> [Int] {
        let cpus = numa.cpusOfNode[n]
        return cpus.isEmpty ? [clock.leastLoadedVCPU] : cpus
    }

    /// Deferred init of one free range (`deferred_init_memmap()`): one
    /// `padata_do_multithreaded()` job per range, with `max_threads` =
    /// the node's CPU count (x86 `deferred_page_init_max_threads()`),
    /// `align` = `min_chunk` = one section (128 MiB). padata makes
    /// `nworks = min(size / section, max_threads)` workers and cuts the job
    /// into chunks of `size / (nworks * 4)` (its load-balance factor),
    /// rounded up to a section, each ending on a multiple of that size; each chunk goes to the worker that frees up
    /// first, which the model takes to be the least-loaded vCPU.
    func freeRangeDeferred(_ r: AddressRange, workers: [Int], clock: inout PhaseClock) -> AcceptOutcome {
        for chunk in Self.padataChunks(r, maxThreads: workers.count) {
            let o = freeRange(chunk, vcpu: Self.leastLoaded(workers, clock), clock: &clock)
            if o != .ok { return o }
            onAcceptBatch?(clock)
        }
        return .ok
    }

    /// The vCPU of `workers` with the least time so far (lowest index on
    /// ties): where the next padata chunk or allocation goes.
    static func leastLoaded(_ workers: [Int], _ clock: PhaseClock) -> Int {
        var best = workers[0]
        for v in workers where clock.vcpuPicoseconds[v] < clock.vcpuPicoseconds[best] { best = v }
        return best
    }

    /// The chunks `padata_do_multithreaded()` cuts `[r.start, r.end)` into.
    /// The job starts at `r.start` and runs to the section-aligned end.
    package static func padataChunks(_ r: AddressRange, maxThreads: Int) -> [AddressRange] {
        let section: UInt64 = 128 << 20
        let jobEnd = alignUp(r.end, section)
        let size = jobEnd - r.start
        let nworks = max(1, min(size / section, UInt64(max(1, maxThreads))))
        let loadBalanceFactor: UInt64 = 4
        let chunkSize = alignUp(max(size / (nworks * loadBalanceFactor), section), section)
        var out: [AddressRange] = []
        // padata_mt_helper(): "so end is chunk size aligned if enough work
        // remains": each chunk ends at the next multiple of chunk_size.
        var s = r.start
        while s < r.end {
            let e = min(r.end, divRoundUp(s + 1, chunkSize) * chunkSize)
            out.append(AddressRange(start: s, end: e))
            s = e
        }
        return out
    }

    /// `__free_pages_memory()` over one range of one zone.
    func freeRange(_ r: AddressRange, vcpu: Int, clock: inout PhaseClock) -> AcceptOutcome {
        let zi = zoneIndex(r.start)
        var p = r.lowerAddress.frame
        let e = r.upperAddress.frame
        while p < e {
            if p.value % 1024 == 0, e - p >= 1024 {
                let n = (alignDown(e.value, 1024) - p.value) / 1024
                let o = freeBlocks(firstPFN: p, count: n, zone: zi, vcpu: vcpu, clock: &clock)
                if o != .ok { return o }
                p = p + n * 1024
                continue
            }
            var order: UInt64 = min(10, UInt64(p.value == 0 ? 10 : p.value.trailingZeroBitCount))
            while p + (1 << order) > e { order -= 1 }
            let o = freeChunk(pfn: p, pages: 1 << order, zone: zi, vcpu: vcpu, clock: &clock)
            if o != .ok { return o }
            p = p + (1 << order)
        }
        return .ok
    }

    /// `__free_pages_core()` of a chunk smaller than MAX_PAGE_ORDER: accepted
    /// up front if it touches unaccepted memory.
    func freeChunk(pfn: GuestFrameNumber, pages: UInt64, zone zi: Int, vcpu: Int, clock: inout PhaseClock) -> AcceptOutcome {
        if let u = unaccepted {
            let chunk = AddressRange(frames: Range(start: pfn, count: pages))
            let contains = u.rangeContainsUnaccepted(start: chunk.start, size: chunk.size)
            if let f = u.fault { return .terminated(f) }
            if contains {
                let o = u.acceptMemory(start: chunk.start, size: chunk.size, vcpu: vcpu, clock: &clock)
                if o != .ok { return o }
            }
        }
        zones[zi].managed += pages
        zones[zi].freePages += pages
        return .ok
    }

    /// `__free_pages_core()` of `count` MAX_PAGE_ORDER blocks: those that
    /// contain unaccepted units (guard included) go to `unaccepted_pages`
    /// (lazy, `__free_unaccepted()`) or are accepted (eager).
    func freeBlocks(firstPFN: GuestFrameNumber, count: UInt64, zone zi: Int, vcpu: Int, clock: inout PhaseClock) -> AcceptOutcome {
        let blockBytes: UInt64 = 4 << 20
        let start = firstPFN.address.value
        zones[zi].managed += count * 1024
        let parts = partitionBlocks(start: start, count: count)
        if let f = unaccepted?.fault { return .terminated(f) }
        for (blocks, contains) in parts {
            let addr = start + blocks.lowerBound * blockBytes
            let n = UInt64(blocks.count)
            if contains && config.lazyAccept {
                zones[zi].queueUnaccepted(first: GuestPhysicalAddress(addr).frame, count: n)
                continue
            }
            if contains, let u = unaccepted {
                let o = u.acceptBlocks(firstBlockAddress: addr, count: n, vcpu: vcpu, clock: &clock)
                if o != .ok { return o }
            }
            zones[zi].freePages += n * 1024
        }
        return .ok
    }

    /// Splits `count` blocks from `start` into runs that do / do not contain
    /// unaccepted units (`page_contains_unaccepted()`, guard unit included).
    func partitionBlocks(start: UInt64, count: UInt64) -> [(Range<UInt64>, Bool)] {
        guard let u = unaccepted else { return [(0..<count, false)] }
        let t = u.table
        let end = start + count * (4 << 20)
        // A block [a, a+4M) contains unaccepted iff a set unit lies in [a, a+6M).
        var containing: [Range<UInt64>] = []
        // Every block window lies in [start, end + one unit): the guard is added by unitWindow.
        let from = max(start, t.physBase.value)
        if end > from, let w = u.unitWindow(start: from, size: end - from) {
            // page_contains_unaccepted() reads the bitmap for every block.
            if u.readFault(w, in: "range_contains_unaccepted_memory") != nil { return [(0..<count, false)] }
            for run in t.bitmap.setRuns(in: w) {
                let a = t.address(of: run.lowerBound), b = t.address(of: run.upperBound)
                // Block i at A = start + 4M·i has window [A, A+6M); it meets
                // [a, b) iff A < b and A + 6M > a.
                let window: UInt64 = 6 << 20
                guard b > start else { continue }
                let bFirst = a + 1 > start + window ? divRoundUp(a + 1 - window - start, 4 << 20) : 0
                let bEnd = min(count, divRoundUp(b - start, 4 << 20))
                if bFirst < bEnd {
                    if let last = containing.last, last.upperBound >= bFirst {
                        containing[containing.count - 1] = last.lowerBound..<max(last.upperBound, bEnd)
                    } else { containing.append(bFirst..<bEnd) }
                }
            }
        }
        var out: [(Range<UInt64>, Bool)] = []
        var cur: UInt64 = 0
        for c in containing {
            if c.lowerBound > cur { out.append((cur..<c.lowerBound, false)) }
            out.append((c, true))
            cur = c.upperBound
        }
        if cur < count { out.append((cur..<count, false)) }
        return out
    }
}
