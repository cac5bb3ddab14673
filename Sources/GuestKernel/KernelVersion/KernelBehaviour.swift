/// One change to the guest kernel's unaccepted-memory handling that the model
/// reproduces, named by the mainline commit that introduced it.
///
/// `table` is the version table (docs/VERSIONS.md): for each behaviour the
/// mainline release it first appeared in and the stable point releases that
/// backported it. A release has a behaviour when its mainline base is at or
/// after `mainline`, or when it is a point release of a stable series at or
/// after the backport's first point release. Every entry says how it was
/// checked; backports that could not be checked are not in the table (so a
/// stable release without a listed backport is modelled without it).
public enum KernelBehaviour: String, Sendable, CaseIterable {
    /// 50e782a86c98: `accept_memory()` registers its unit range on
    /// `accepting_list` and drops `unaccepted_memory_lock` around
    /// `arch_accept_memory()`; a caller overlapping an entry retries. Before
    /// it the lock was held across the accept (`AcceptMemoryLocking`).
    case acceptingList = "accepting_list"
    /// b3ba234171cd: a top-down kexec_file buffer walks System RAM from the
    /// top (`walk_system_ram_res_rev()`); before it kexec_file placed the
    /// kernel bottom-up.
    case kexecFileTopDown = "kexec_file_top_down"
    /// 807174a93d24: unaccepted memory counts as free for the watermark check
    /// and `cond_accept_memory()` accepts before it. Before it,
    /// `try_to_accept_memory()` ran only after a failed watermark check,
    /// accepted up to the high watermark (at least one block), and
    /// `NR_UNACCEPTED` was unusable free memory.
    case unacceptedFreeForWatermarks = "unaccepted_free_for_watermarks"
    /// 310183de7bb2: the `PageUnaccepted()` page type (`PGTY_unaccepted`)
    /// marks the head page of each block on `zone->unaccepted_pages`.
    case pageUnacceptedType = "page_unaccepted_type"
    /// 59149bf8cea9: `cond_accept_memory()` accepts up to the promo watermark
    /// instead of the high one.
    case acceptToPromoWatermark = "accept_to_promo_watermark"
    /// 800f1059c99e: while watermarks are still zero (before the postcore
    /// initcall sets them) every allocation accepts one MAX_ORDER block.
    case acceptOneBlockWhileWatermarksZero = "accept_one_block_while_watermarks_zero"
    /// "kexec_core: accept unaccepted kexec segments' destination addresses":
    /// `sanity_check_segment_list()` ends with `accept_memory()` of every
    /// segment.
    case kexecAcceptsDestinations = "kexec_accepts_destinations"
    /// "crash: export PAGE_UNACCEPTED_MAPCOUNT_VALUE to vmcoreinfo":
    /// vmcoreinfo carries `NUMBER(PAGE_UNACCEPTED_MAPCOUNT_VALUE)`, which
    /// makedumpfile 1.7.8 uses to exclude unaccepted blocks.
    case vmcoreinfoUnacceptedMapcount = "vmcoreinfo_unaccepted_mapcount"
    /// 0862438c9048: `reserve_unaccepted()` reserves up to the page-aligned
    /// end of the table, not the page-aligned size from its aligned-down
    /// start (a table starting mid-page had its last page unreserved).
    case reserveUnacceptedEndAligned = "reserve_unaccepted_end_aligned"
    /// "mm: add a per-node counter for balloon drivers" (Nico Pache):
    /// `/proc/meminfo` prints `Balloon:` (NR_BALLOON_PAGES) after
    /// `Unaccepted:` and before the hugetlb block.
    case meminfoBalloon = "meminfo_balloon"
    /// 99ef9f59847c "x86/sev: Allow non-VMPL0 execution when an SVSM is
    /// present", with fcd042e86422 (PVALIDATE through the SVSM): an SNP guest
    /// may run at VMPL>0. Before it `sev_enable()`'s `enforce_vmpl0()` fails
    /// its RMPADJUST and the guest terminates (GHCB_TERM_NOT_VMPL0).
    case snpSVSMBelowVMPL0 = "snp_svsm_below_vmpl0"
    /// d54d610243a4 "x86/boot/sev: Avoid shared GHCB page for early memory
    /// acceptance": the decompressor's and the EFI stub's
    /// `snp_accept_memory()` (arch/x86/boot/compressed/sev.c) validate page
    /// by page through the GHCB MSR protocol (`__page_state_change()`: one
    /// VMGEXIT and one 4K PVALIDATE a page). Before it they made the boot
    /// GHCB page shared (`early_setup_ghcb()`) and sent Page State Change
    /// descriptors of 64 entries, 2M where aligned (`__snp_accept_memory()`).
    case snpEarlyAcceptMSR = "snp_early_accept_msr"
    /// 7b306dfa326f "x86/sev: Evict cache lines during SNP memory
    /// validation": after validating memory (to private) an SNP guest reads
    /// the first and last byte of every 4K page it validated
    /// (`sev_evict_cache()`) unless CPUID Fn8000001F_EBX[31]
    /// (COHERENCY_SFW_NO) says the CPU does not need it.
    case snpEvictCacheAfterValidation = "snp_evict_cache_after_validation"
    /// a4b0bf6a40f3 "x86/efi: defer freeing of boot services memory": EFI
    /// boot services memory is freed with `free_reserved_area()` from an
    /// `arch_initcall` after deferred init ("efi: Freeing EFI boot services
    /// memory: %ldK"); before it `efi_enter_virtual_mode()` freed it early
    /// in `start_kernel()` with `memblock_free_late()`, which leaks pages
    /// whose struct pages deferred init has not yet initialised.
    case efiBootServicesFreedAtArchInitcall = "efi_boot_services_freed_at_arch_initcall"
    /// 859e63b789d6 "x86/tdx: Convert shared memory back to private on
    /// kexec": `tdx_kexec_finish()` walks the direct map before
    /// `relocate_kernel` and converts every decrypted range back with
    /// `tdx_enc_status_changed(..., true)` (MapGPA to private, then
    /// `tdx_accept_memory()`). Before it a TD's shared memory stays shared
    /// across kexec and the next kernel's first private access to it is fatal.
    case tdxKexecUnshare = "tdx_kexec_unshare"
    /// 3074152e56c9 "x86/sev: Convert shared memory back to private on
    /// kexec": `snp_kexec_finish()` → `unshare_all_memory()` makes every
    /// decrypted range private again (`snp_set_memory_private()`: PSC to
    /// private, then PVALIDATE).
    case snpKexecUnshare = "snp_kexec_unshare"

    /// Where a behaviour came from and where it went.
    public struct Origin: Sendable {
        /// The mainline commit, 12 hex digits, or nil when only the merge that
        /// brought it in could be checked (see `verified`).
        public var commit: String?
        public var subject: String
        /// The first mainline release that has it.
        public var mainline: KernelRelease
        /// The first stable point release of each series that backported it.
        public var backports: [KernelRelease]
        /// How the entry was checked.
        public var verified: String
    }

    /// The version table.
    public var origin: Origin {
        switch self {
        case .acceptingList:
            return Origin(commit: "50e782a86c98", subject: "efi/unaccepted: Fix soft lockups caused by parallel memory acceptance",
                          mainline: KernelRelease(6, 6), backports: [KernelRelease(6, 5, 9)],
                          verified: "efi-fixes-for-v6.6-3 pull (merged for v6.6-rc7, \"avoid soft lockups in the memory acceptance code\"); stable review mail \"[PATCH 6.5 233/241]\" of the 6.5.9-rc1 series (\"Upstream commit 50e782a86c98\", cpu_relax() dropped by Ard Biesheuvel)")
        case .kexecFileTopDown:
            return Origin(commit: "b3ba234171cd", subject: "kexec_file: load kernel at top of system RAM if required",
                          mainline: KernelRelease(6, 8), backports: [],
                          verified: "posted Nov 2023 (lore 20231114091658.228030-1-bhe@redhat.com), merged with the v6.8 mm-nonmm material; no stable backport found")
        case .unacceptedFreeForWatermarks:
            return Origin(commit: "807174a93d24", subject: "mm: fix endless reclaim on machines with unaccepted memory",
                          mainline: KernelRelease(6, 11), backports: [KernelRelease(6, 6, 48), KernelRelease(6, 10, 7)],
                          verified: "torvalds master (kernel test robot report, Sep 2024); stable review mails \"[PATCH 6.6 226/341]\" of 6.6.48-rc1 and \"6.10-stable review\" of 6.10.7-rc1")
        case .pageUnacceptedType:
            return Origin(commit: "310183de7bb2", subject: "mm: introduce PageUnaccepted() page type",
                          mainline: KernelRelease(6, 12), backports: [],
                          verified: "linux-next revlist of 15 Sep 2024 carrying the v6.12 mm-stable series, in sequence with 59149bf8cea9 (upstream id per Kirill Shutemov); not in stable (Kirill Shutemov: \"Stable tree doesn't include 59149bf8cea9\")")
        case .acceptToPromoWatermark:
            return Origin(commit: "59149bf8cea9", subject: "mm: accept to promo watermark",
                          mainline: KernelRelease(6, 12), backports: [],
                          verified: "v6.12 mm pull (Kirill A. Shutemov (7)); Kirill Shutemov on the 6.6.y backport of 800f1059c99e: not in stable trees")
        case .acceptOneBlockWhileWatermarksZero:
            return Origin(commit: "800f1059c99e", subject: "mm/page_alloc: fix memory accept before watermarks gets initialized",
                          mainline: KernelRelease(6, 14),
                          backports: [KernelRelease(6, 6, 86), KernelRelease(6, 12, 21), KernelRelease(6, 13, 9)],
                          verified: "mm-hotfixes-stable 2025-03-16, merged after v6.14-rc6; stable review mails of 6.6.86-rc1, 6.12.21-rc1, 6.13.9-rc1 (\"commit 800f1059c99e upstream\")")
        case .kexecAcceptsDestinations:
            return Origin(commit: nil, subject: "kexec_core: accept unaccepted kexec segments' destination addresses",
                          mainline: KernelRelease(6, 15), backports: [],
                          verified: "in the pull mm-nonmm-stable-2025-03-30-18-23 (merge d6b02199cde4, v6.15-rc1); the commit's own mainline id unverified; no stable backport found")
        case .vmcoreinfoUnacceptedMapcount:
            return Origin(commit: nil, subject: "crash: export PAGE_UNACCEPTED_MAPCOUNT_VALUE to vmcoreinfo",
                          mainline: KernelRelease(6, 16), backports: [],
                          verified: "makedumpfile c1a930185482 (\"since kernel 6.16\"), patch of Apr 2025 in the mm-nonmm tree; mainline id unverified; no stable backport found")
        case .reserveUnacceptedEndAligned:
            return Origin(commit: "0862438c9048", subject: "efi: Fix reservation of unaccepted memory table",
                          mainline: KernelRelease(7, 0), backports: [],
                          verified: "efi-fixes-for-v7.0-1 pull (Feb 2026) for v7.0-rc1; carries a Fixes: tag, but no stable backport could be checked")
        case .meminfoBalloon:
            return Origin(commit: nil, subject: "mm: add a per-node counter for balloon drivers (NR_BALLOON_PAGES, Balloon: in /proc/meminfo)",
                          mainline: KernelRelease(6, 15), backports: [],
                          verified: "patch of 14 Mar 2025 (Nico Pache) and its documentation squash of 17 Mar 2025 in Andrew Morton's mm tree, for the 6.15 merge window; later GPUActive/GPUReclaim patches apply after it; mainline id and release tag not checked; a feature, no stable backport")
        case .snpSVSMBelowVMPL0:
            return Origin(commit: "99ef9f59847c", subject: "x86/sev: Allow non-VMPL0 execution when an SVSM is present",
                          mainline: KernelRelease(6, 11), backports: [],
                          verified: "tip post-receive of 18 Jun 2024 merging branch x86/sev into tip/master (with fcd042e86422 \"Perform PVALIDATE using the SVSM when not at VMPL0\"), the v6.11 merge window; no stable backport (a feature)")
        case .snpEarlyAcceptMSR:
            return Origin(commit: "d54d610243a4", subject: "x86/boot/sev: Avoid shared GHCB page for early memory acceptance",
                          mainline: KernelRelease(6, 15), backports: [KernelRelease(6, 6, 88), KernelRelease(6, 12, 25), KernelRelease(6, 14, 4)],
                          verified: "stable review mails \"[PATCH 6.6 338/393]\" and the 6.14 series of 23 Apr 2025 (\"commit d54d610243a4 upstream\", Ard Biesheuvel, Fixes: 6c3211796326), the 6.6.88-rc1 and 6.14.4-rc1 revlists, and the Linux 6.12.25 announcement (arch/x86/boot/compressed/sev.c -67 lines); in mainline through x86/urgent before the 6.15 release")
        case .snpEvictCacheAfterValidation:
            return Origin(commit: "7b306dfa326f", subject: "x86/sev: Evict cache lines during SNP memory validation",
                          mainline: KernelRelease(6, 17), backports: [KernelRelease(6, 12, 42), KernelRelease(6, 15, 10)],
                          verified: "stable review \"[PATCH 6.15 456/480]\" of 12 Aug 2025 (\"Commit 7b306dfa326f upstream\", after v6.16) and the 6.15.10-rc1 and 6.12.42-rc1 revlists; the follow-up \"x86/sev: Guard sev_evict_cache() with CONFIG_AMD_MEM_ENCRYPT\" is Cc stable # 6.16.x, a 6.16.y backport not checked")
        case .efiBootServicesFreedAtArchInitcall:
            return Origin(commit: "a4b0bf6a40f3", subject: "x86/efi: defer freeing of boot services memory",
                          mainline: KernelRelease(7, 0), backports: [],
                          verified: "v2 posted 25 Feb 2026 (Mike Rapoport, Fixes: 916f676f8dc0, Cc stable), after v7.0-rc1; stable review mails \"[PATCH 6.19 116/311]\" of 10 Mar 2026 and \"[PATCH 6.12 140/265]\" of 12 Mar 2026 (\"commit a4b0bf6a40f3 upstream\"); the 6.19.y and 6.12.y point releases that carry it were not checked, so no backport row")
        case .tdxKexecUnshare:
            return Origin(commit: "859e63b789d6", subject: "x86/tdx: Convert shared memory back to private on kexec",
                          mainline: KernelRelease(6, 11), backports: [],
                          verified: "tip post-receive mail of 19 Jun 2024 merging x86/cc into tip/master (with c3abbf137687 \"x86/tdx: Account shared memory\" and 22daa42294b4 \"x86/mm: Add callbacks to prepare encrypted memory for kexec\"), the v6.11 merge window (session 14, docs/KEXEC.md); a feature, no stable backport")
        case .snpKexecUnshare:
            return Origin(commit: "3074152e56c9", subject: "x86/sev: Convert shared memory back to private on kexec",
                          mainline: KernelRelease(6, 13), backports: [],
                          verified: "tip x86/sev push of 29 Oct 2024, the v6.13 merge window (session 14, docs/KEXEC.md); a feature, no stable backport; its later Cc-stable fixes were not followed")
        }
    }

    /// Whether `release` has this behaviour: its mainline base is at or after
    /// the mainline release, or it is a stable point release at or after a
    /// backport in its series.
    public func isPresent(in release: KernelRelease) -> Bool {
        let o = origin
        if release.series >= o.mainline.series { return true }
        return o.backports.contains { $0.series == release.series && release.point >= $0.point }
    }

    /// The first point release of `release`'s series that backported this
    /// behaviour, when that is why `release` has it.
    public func backport(for release: KernelRelease) -> KernelRelease? {
        guard release.series < origin.mainline.series else { return nil }
        return origin.backports.first { $0.series == release.series && release.point >= $0.point }
    }
}

/// Kernel changes users meet that the model does not reproduce; listed so the
/// version table is complete (docs/VERSIONS.md).
public enum KernelKnownNotModelled {
    /// 4067196a5227 "mm/page_alloc: fix deadlock on cpu_hotplug_lock in
    /// __accept_page()" (v6.15-rc; 5493d473b49e in the mm-hotfixes branch):
    /// kernels with 800f1059c99e but without it can hang bringing up CPUs on
    /// guests with many vCPUs (static key increment under cpu_hotplug_lock).
    /// Not modelled: the model has no CPU hotplug lock; a `guest_hang`
    /// outcome would be invented.
    public static let acceptPageHotplugDeadlockFix = "4067196a5227"
}
