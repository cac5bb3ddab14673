public import MemoryModel

/// What became of the EFI boot services memory (`EFI_BOOT_SERVICES_CODE`
/// and `_DATA`) in one boot.
public struct BootServicesMemory: Sendable, Equatable {
    /// Ranges `efi_reserve_boot_services()` reserved and owns (to be freed).
    public var owned: [AddressRange] = []
    /// Ranges it did not reserve or may not free: already reserved by
    /// someone else (the kernel image, the unaccepted table, an initrd), or
    /// not all E820 RAM, or overlapping the kernel image (`can_free_region()`);
    /// the kernel tags them `EFI_MEMORY_RUNTIME` and never frees them itself.
    public var notOwned: [AddressRange] = []
    /// The parts given to the page allocator (below 1M never).
    public var freed: [AddressRange] = []
    /// Parts `memblock_free_late()` skipped because their struct pages were
    /// not initialised yet (kernels without a4b0bf6a40f3, deferred struct
    /// page init): never freed, yet `totalram_pages_inc()` counted them.
    public var leaked: [AddressRange] = []
    /// Whether they were freed at `arch_initcall` (a4b0bf6a40f3) rather
    /// than in `efi_enter_virtual_mode()`.
    public var freedAtArchInitcall = false
    public init() {}

    /// Bytes in `freed`.
    public var freedBytes: UInt64 { freed.reduce(0) { $0 + $1.size } }
}

extension GuestKernel {
    /// The 4 KiB page at 0 (`e820__range_update(0, PAGE_SIZE, E820_TYPE_RAM,
    /// E820_TYPE_RESERVED)`) and the legacy BIOS area 640K–1M
    /// (`e820__range_remove(BIOS_BEGIN, BIOS_END - BIOS_BEGIN, E820_TYPE_RAM, 1)`).
    public static let trimmedPageZero = AddressRange(start: 0, end: 0x1000)
    public static let biosArea = AddressRange(start: 0xA_0000, end: 0x10_0000)

    /// `trim_bios_range()` (arch/x86/kernel/setup.c, after `efi_init()` and
    /// before `e820__memblock_setup()`): page 0 becomes E820 reserved and
    /// 640K–1M stops being RAM, so neither reaches memblock.memory (DMA's
    /// present pages lose them; "Zone ranges" and "Early memory node
    /// ranges" start at 0x1000). Idempotent, so a kexec'd kernel handed the
    /// trimmed table gets the same.
    /// - Complexity: O(ranges).
    public static func trimBIOSRange(_ ram: [AddressRange]) -> [AddressRange] {
        ram.subtracting([trimmedPageZero, biosArea]).filter { !$0.isEmpty }
    }

    /// The two lines `trim_bios_range()` prints (KERN_DEBUG, in dmesg):
    /// `__e820__range_update()`'s and `e820__range_remove()`'s, whatever
    /// the table held there.
    public static var trimBIOSRangeLines: [String] {
        ["e820: update [mem 0x00000000-0x00000fff] usable ==> reserved",
         "e820: remove [mem 0x000a0000-0x000fffff] usable"]
    }

    /// `reserve_real_mode()` (arch/x86/realmode/init.c): the trampoline is
    /// `memblock_phys_alloc_range()` below 1M, and then the whole first
    /// megabyte is `memblock_reserve(0, SZ_1M)`d, so the trampoline's own
    /// reservation is inside it and not kept apart here. Nothing below 1M
    /// reaches the page allocator: DMA's managed pages lose 0–640K.
    func reserveFirstMegabyte() {
        reserve(AddressRange(start: 0, end: 1 << 20), .firstMegabyte)
    }

    /// `efi_reserve_boot_services()` (arch/x86/platform/efi/quirks.c), after
    /// `e820__memblock_setup()`: each boot services descriptor is
    /// `memblock_reserve()`d unless some of it is already reserved
    /// (`memblock_is_region_reserved()`: the kernel image, the unaccepted
    /// table, an initrd); the kernel owns and later frees it only if it
    /// reserved it and `can_free_region()` holds (not touching the kernel
    /// image `[_text, _end]`, all E820 RAM after `trim_bios_range()`). A
    /// descriptor someone else reserved is not reserved again: what of it
    /// is not covered stays free memblock memory and goes to the buddy
    /// allocator in `memblock_free_all()` as any free RAM.
    func reserveBootServices(_ descriptors: [AddressRange]) {
        let image = reservation(.kernelImage)
        for d in descriptors where !d.isEmpty {
            let alreadyReserved = reservations.contains { $0.range.overlaps(d) }
            if alreadyReserved { bootServices.notOwned.append(d); continue }
            reserve(d, .bootServices)
            // can_free_region(): "start + size > _text && start <= _end" refuses.
            let touchesImage = image.map { d.end > $0.start && d.start <= $0.end } ?? false
            let allRAM = [d].subtracting(ram).isEmpty
            if !touchesImage && allRAM { bootServices.owned.append(d) } else { bootServices.notOwned.append(d) }
        }
    }

    /// `efi_free_boot_services()`'s range arithmetic: nothing below 1M
    /// ("BIOS might clobber it; crash kernel needs it to be reserved").
    static func freeablePart(_ r: AddressRange) -> AddressRange? {
        let oneM: UInt64 = 1 << 20
        if r.end <= oneM { return nil }
        return AddressRange(start: max(r.start, oneM), end: r.end)
    }

    /// Where each kernel gives boot services memory back. Before
    /// a4b0bf6a40f3 ("x86/efi: defer freeing of boot services memory",
    /// 7.0): `efi_enter_virtual_mode()` in `start_kernel()`, after
    /// `mm_core_init()` and before `rest_init()`, through
    /// `memblock_free_late()`, which skips pages past the node's
    /// `first_deferred_pfn` (`memblock_free_pages()`), leaking them. The
    /// caller runs this right after `freeAll(early:)`; it does nothing on
    /// kernels with the fix, which free in `freeBootServicesLate()`.
    ///
    /// With `efi=debug` (EFI_DBG) both kernels keep every boot services
    /// region "for /sys/kernel/debug/efi": `efi_free_boot_services()`
    /// (before 7.0) and `efi_unmap_boot_services()` (7.0, so the initcall
    /// has nothing to free) return at once; the memory stays reserved.
    public func efiEnterVirtualMode() {
        if config.efiDebug, !bootServices.owned.isEmpty, !events.contains(Self.efiDebugEvent) { events.append(Self.efiDebugEvent) }
        guard !config.version.freesBootServicesAtArchInitcall, !config.efiDebug else { return }
        for r in bootServices.owned.compactMap(Self.freeablePart) {
            let skipped = deferredRanges.compactMap { d -> AddressRange? in
                let part = r.clamped(to: d)
                return part.isEmpty ? nil : part
            }
            bootServices.leaked += skipped
            giveToBuddy([r].subtracting(skipped))
        }
        if !bootServices.leaked.isEmpty {
            let kb = bootServices.leaked.reduce(0) { $0 + $1.size } >> 10
            events.append("efi_free_boot_services(): memblock_free_late() skipped \(kb)K of boot services memory whose struct pages deferred init had not initialised: never freed (counted in totalram_pages, not modelled in MemTotal); a4b0bf6a40f3 (7.0) frees it after deferred init")
        }
    }

    /// a4b0bf6a40f3 (7.0): `efi_unmap_boot_services()` only collects the
    /// ranges in `efi_enter_virtual_mode()`; `efi_free_boot_services()`, an
    /// `arch_initcall`, frees them with `free_reserved_area()` after deferred
    /// init and after `init_per_zone_wmark_min()` (postcore), before
    /// khugepaged's `hugepage_init()` (subsys), and prints "efi: Freeing
    /// EFI boot services memory: %ldK". Called from `initWatermarks()`.
    static let efiDebugEvent = "efi=debug: EFI boot services memory kept for /sys/kernel/debug/efi (efi_enabled(EFI_DBG)): never freed"

    func freeBootServicesLate() {
        // An initcall runs once; initWatermarks() runs again after a hot-add.
        guard config.version.freesBootServicesAtArchInitcall, !bootServices.freedAtArchInitcall, !config.efiDebug else { return }
        bootServices.freedAtArchInitcall = true
        giveToBuddy(bootServices.owned.compactMap(Self.freeablePart))
        let kb = bootServices.freedBytes >> 10
        if kb > 0 { events.append("efi: Freeing EFI boot services memory: \(kb)K") }
    }

    /// The pages of `ranges` to the buddy allocator: their memblock
    /// reservation goes, each zone's managed and free pages grow. Boot
    /// services memory was the firmware's, so it is accepted already (the
    /// stub's bitmap covers only Unaccepted descriptors): nothing to accept.
    func giveToBuddy(_ ranges: [AddressRange]) {
        for r in ranges where !r.isEmpty {
            unreserve(r, .bootServices)
            bootServices.freed.append(r)
            for (zi, part) in zoneParts(r) {
                zones[zi].managed += part.bytes.frames()
                zones[zi].freePages += part.bytes.frames()
            }
        }
    }
}
