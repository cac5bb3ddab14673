public import CoCoGuest
public import CostModel
public import MemoryModel

/// The guest's shared memory other than the SWIOTLB, as the SNP kernel makes
/// it shared (`KernelConfig.earlyDecrypted`): `__bss_decrypted` at
/// `__startup_64()`, the per-CPU GHCBs at `trap_init()`, and the unused
/// part of `__bss_decrypted` made private again at `free_initmem()`. A TD
/// makes none of these shared: `sme_me_mask` is 0 in a TD, so
/// `sme_postprocess_startup()` leaves `__bss_decrypted` private and
/// `mem_encrypt_free_decrypted_mem()` re-encrypts nothing, and a TD has no
/// GHCB. kvmclock's `hv_clock_boot` is in `__bss_decrypted`; the pages
/// `kvmclock_init_mem()` allocates and decrypts exist only with more than
/// HVC_BOOT_ARRAY_SIZE (64) possible CPUs (not modelled, see docs/STATUS.md).
extension GuestKernel {
    /// sizeof(struct sev_es_runtime_data) (arch/x86/coco/sev/core.c): the
    /// GHCB page and its backup (struct ghcb, packed, 4096 bytes each), two
    /// bools and the cached DR7 (8208 bytes). `alloc_runtime_data()` takes
    /// it with `memblock_alloc_node(size, PAGE_SIZE, node)`, top-down, so
    /// each vCPU's lies 3 pages below the previous one and the partial last
    /// page stays reserved.
    public static let sevESRuntimeDataBytes: UInt64 = 2 * 4096 + 16

    /// The pages of `__bss_decrypted` the kernel uses, up to
    /// `__start_bss_decrypted_unused`: its users in a KVM guest kernel are
    /// kvmclock's `hv_clock_boot` (a page, page-aligned) and `wall_clock`
    /// (12 bytes), and the SEV code's `boot_ghcb_page` (a page,
    /// page-aligned): two page-aligned pages and a small object, 3 pages in
    /// either link order (read in arch/x86/kernel/kvmclock.c and
    /// arch/x86/coco/sev/core.c; the vmlinux layout was not inspected).
    public static let bssDecryptedUsedPages: UInt64 = 3

    /// True when this boot makes the SNP early shared memory: the option is
    /// on and the platform has the MSR protocol path (SNP).
    var makesEarlyDecrypted: Bool { config.earlyDecrypted && platform is any SNPEarlyPageStateChange }

    /// Bytes of memblock's "every other early allocation" lump that are the
    /// per-CPU `sev_es_runtime_data`, when it is allocated by name (0 else):
    /// the lump is smaller by as much, so MemTotal does not move.
    var sevESRuntimeDataReserved: UInt64 {
        makesEarlyDecrypted ? UInt64(vcpus) * alignUp(Self.sevESRuntimeDataBytes, 4096) : 0
    }

    /// `__bss_decrypted`'s place: the section is PMD-aligned at both ends
    /// (BSS_DECRYPTED in vmlinux.lds.S) and holds a few pages, so it is one
    /// 2 MiB PMD; the bss is the image's last section, so it is taken as
    /// the last whole 2 MiB of the image's init region [an assumption: the
    /// model has no vmlinux layout]. Nil if the image holds no whole PMD.
    /// - Complexity: O(1).
    public static func bssDecryptedPMD(image: AddressRange) -> AddressRange? {
        let pmd = PageLevel.size2M.bytes
        let end = alignDown(image.end, pmd)
        guard end >= pmd, end - pmd >= image.start else { return nil }
        return AddressRange(start: end - pmd, size: pmd)
    }

    /// `sme_postprocess_startup()` (from `__startup_64()`, running on the
    /// identity map before `start_kernel()`): for each PMD of
    /// `__bss_decrypted`, `early_snp_set_memory_shared(__pa(vaddr),
    /// __pa(vaddr), PTRS_PER_PMD)`, 512 pages through the GHCB MSR protocol
    /// (a rescind and a VMGEXIT each), then the PMD's C-bit cleared. No
    /// copy: the bss is zeroed later. Only on SNP with `earlyDecrypted`.
    /// - Complexity: O(512 × log runs).
    public func smePostprocessStartup(image: AddressRange, clock: inout PhaseClock) -> AcceptOutcome {
        guard makesEarlyDecrypted, let p = platform as? any SNPEarlyPageStateChange,
              let pmd = Self.bssDecryptedPMD(image: image) else { return .ok }
        let o = p.earlySetPagesState(pmd.framesTruncated, toPrivate: false, vcpu: 0, clock: &clock, costs: costs)
        guard o == .ok else { return o }
        bssDecrypted = pmd
        events.append("sme_postprocess_startup(): __bss_decrypted [mem \(hex16(pmd.start))-\(hex16(pmd.end - 1))] made shared, "
                      + "512 pages through the GHCB MSR protocol (early_snp_set_memory_shared())")
        return o
    }

    /// `trap_init()` → `sev_es_init_vc_handling()`, before `mm_core_init()`:
    /// for each possible CPU, `alloc_runtime_data()` (memblock) and
    /// `init_ghcb()`, whose `early_set_memory_decrypted()` of the GHCB page
    /// goes through `early_set_memory_enc_dec()` → `__set_clr_pte_enc()` at
    /// 4K (the direct map split around it): `sme_early_decrypt()` copies the
    /// page in place through `snp_memcpy()`, which makes it shared for the
    /// copy and private again, then `early_snp_set_memory_shared()` makes it
    /// shared for good: per GHCB three MSR page-state changes (shared,
    /// private, shared), two rescinds and one PVALIDATE. The WBINVD of
    /// `__sme_early_enc_dec()` is not charged (no cost in the calibration).
    /// Only on SNP with `earlyDecrypted`.
    /// - Complexity: O(vCPUs × log runs).
    func sevESInitVCHandling(clock: inout PhaseClock) -> AcceptOutcome {
        guard makesEarlyDecrypted, let p = platform as? any SNPEarlyPageStateChange else { return .ok }
        for cpu in 0..<vcpus {
            let (data, o) = memblockAlloc(Self.sevESRuntimeDataBytes, below: .max, what: .other, vcpu: 0, clock: &clock)
            guard o == .ok else { return o }
            guard let data else {
                events.append("sev_es_init_vc_handling(): Can't allocate SEV-ES runtime data for CPU \(cpu) (panic)")
                return .terminated("SEV-ES: Can't allocate SEV-ES runtime data (alloc_runtime_data() panics)")
            }
            let ghcb = AddressRange(start: data.start, size: 4096)
            for toPrivate in [false, true, false] {
                let o = p.earlySetPagesState(ghcb.framesTruncated, toPrivate: toPrivate, vcpu: 0, clock: &clock, costs: costs)
                guard o == .ok else { return o }
            }
            ghcbPages.append(ghcb)
        }
        events.append("sev_es_init_vc_handling(): \(vcpus) per-CPU GHCB page\(vcpus == 1 ? "" : "s") made shared by init_ghcb() "
                      + "(early_set_memory_decrypted(): shared, private and shared again through the GHCB MSR protocol, each)")
        return .ok
    }

    /// `free_initmem()` → `mem_encrypt_free_decrypted_mem()`: the unused
    /// part of `__bss_decrypted`, `__start_bss_decrypted_unused` to
    /// `__end_bss_decrypted`, made private with `set_memory_encrypted()`
    /// (`sme_me_mask` set: the GHCB path, `snp_set_memory_private()`: PSC
    /// descriptors to private, then PVALIDATE), then freed with
    /// `free_init_pages("unused decrypted")`. The used pages stay shared
    /// (kexec's `snp_kexec_finish()` converts them). The freeing is not
    /// modelled: the kernel image is one reservation here.
    /// - Complexity: that of the platform's conversion.
    public func memEncryptFreeDecryptedMem(clock: inout PhaseClock) -> AcceptOutcome {
        guard let pmd = bssDecrypted else { return .ok }
        let used = AddressRange(start: pmd.start, size: Self.bssDecryptedUsedPages * 4096)
        let unused = AddressRange(start: used.end, end: pmd.end)
        let o = platform.setMemoryEncrypted(unused, toPrivate: true, vcpu: 0, clock: &clock, costs: costs)
        guard o == .ok else { return o }
        bssDecrypted = nil
        decryptedRanges.append(used)
        events.append("mem_encrypt_free_decrypted_mem(): [mem \(hex16(unused.start))-\(hex16(unused.end - 1))] (\(unused.size >> 10)K of __bss_decrypted) "
                      + "made private again (set_memory_encrypted()) and freed as unused decrypted memory; [mem \(hex16(used.start))-\(hex16(used.end - 1))] stays shared")
        return o
    }

    /// `snp_kexec_finish()`'s last loop: with `boot_ghcb` cleared and
    /// `ghcbs_initialized` false, `snp_set_memory_private()` of each
    /// CPU's GHCB page falls back to `early_set_pages_state()`: the MSR
    /// protocol, a VMGEXIT and a PVALIDATE each. Returns the bytes converted.
    /// - Complexity: O(vCPUs × log runs).
    func kexecUnshareGHCBs(clock: inout PhaseClock) -> (bytes: UInt64, outcome: AcceptOutcome) {
        guard !ghcbPages.isEmpty, let p = platform as? any SNPEarlyPageStateChange else { return (0, .ok) }
        var bytes: UInt64 = 0
        for g in ghcbPages {
            let o = p.earlySetPagesState(g.framesTruncated, toPrivate: true, vcpu: 0, clock: &clock, costs: costs)
            guard o == .ok else { return (bytes, o) }
            bytes += g.size
        }
        events.append("kexec: snp_kexec_finish() converted \(ghcbPages.count) per-CPU GHCB page\(ghcbPages.count == 1 ? "" : "s") back to private last, through the MSR protocol")
        ghcbPages = []
        return (bytes, .ok)
    }
}
