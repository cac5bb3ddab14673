public import CoCoGuest

/// The guest kernel the model runs: a release as users write it and the set
/// of unaccepted-memory behaviours that release has, decided by the version
/// table (`KernelBehaviour.origin`, docs/VERSIONS.md).
///
/// `6.12` is 6.12.0; `6.12.30` is 6.12.0 plus the backports at or below
/// 6.12.30 (800f1059c99e since 6.12.21).
public struct KernelVersion: Sendable, Hashable, CustomStringConvertible {
    public let release: KernelRelease
    public let behaviours: Set<KernelBehaviour>

    /// The behaviours of `release` by the version table.
    public init(_ release: KernelRelease) {
        self.release = release
        self.behaviours = Set(KernelBehaviour.allCases.filter { $0.isPresent(in: release) })
    }

    /// Parses a release as users write it (`6.12`, `6.12.30`, `7.0`).
    /// - Throws: `CocomemError(.invalidArgument)` for anything else.
    /// - Complexity: O(length of `text`).
    public init(parsing text: String) throws {
        self.init(try KernelRelease.parse(text))
    }

    /// Whether this kernel has `b`.
    public func has(_ b: KernelBehaviour) -> Bool { behaviours.contains(b) }

    /// The release as written (`6.12`, `6.12.30`).
    public var description: String { release.description }
    /// The release as written; what reports and scenario files print.
    public var rawValue: String { release.description }

    /// The five generations earlier versions of cocomem offered, unchanged.
    public static let v6_5 = KernelVersion(KernelRelease(6, 5))
    public static let v6_11 = KernelVersion(KernelRelease(6, 11))
    public static let v6_12 = KernelVersion(KernelRelease(6, 12))
    public static let v6_16 = KernelVersion(KernelRelease(6, 16))
    public static let v7_0 = KernelVersion(KernelRelease(7, 0))

    /// The stable backports this release has, as `(behaviour, first point release)`.
    public var backports: [(KernelBehaviour, KernelRelease)] {
        KernelBehaviour.allCases.compactMap { b in b.backport(for: release).map { (b, $0) } }
    }

    // MARK: The behaviours as the call sites read them

    /// 59149bf8cea9 (6.12): accept up to the promo watermark, not high.
    public var targetsPromoWatermark: Bool { has(.acceptToPromoWatermark) }
    /// Before 807174a93d24 (6.11; 6.6.48, 6.10.7): `try_to_accept_memory()`
    /// only after a failed watermark check, unaccepted pages unusable.
    public var unacceptedIsUnusableForWatermarks: Bool { !has(.unacceptedFreeForWatermarks) }
    /// 800f1059c99e (6.14; 6.6.86, 6.12.21, 6.13.9).
    public var acceptsOneBlockWhileWatermarksZero: Bool { has(.acceptOneBlockWhileWatermarksZero) }
    /// 0862438c9048 (7.0).
    public var reserveUnacceptedEndAligned: Bool { has(.reserveUnacceptedEndAligned) }
    /// 310183de7bb2 (6.12).
    public var hasPageUnacceptedType: Bool { has(.pageUnacceptedType) }
    /// vmcoreinfo exports `NUMBER(PAGE_UNACCEPTED_MAPCOUNT_VALUE)` (6.16).
    public var exportsUnacceptedMapcount: Bool { has(.vmcoreinfoUnacceptedMapcount) }
    /// d50569612c29 "mm: rename the 'compound_head' field in the 'struct
    /// page' to 'compound_info'" (7.1, Kiryl Shutsemau's series removing
    /// fake heads from the HugeTLB vmemmap optimization): VMCOREINFO prints
    /// `OFFSET(page.compound_info)` where it printed
    /// `OFFSET(page.compound_head)`, and a tail's word 1 holds a mask for
    /// `page & mask` (bit 0 still set) when `compound_info_has_mask()`. Only
    /// the crash-dump structures differ, so it is not a row of the boot
    /// report's behaviour list; makedumpfile f50c015 ("Required for kernel
    /// 7.1") names the commit and the release (docs/VERSIONS.md).
    public var namesCompoundInfo: Bool { release.series >= KernelRelease(7, 1).series }
    /// kexec_core accepts segment destinations (6.15).
    public var acceptsKexecDestinations: Bool { has(.kexecAcceptsDestinations) }
    /// NR_BALLOON_PAGES (6.15): `/proc/meminfo` has a `Balloon:` line.
    public var printsBalloonInMeminfo: Bool { has(.meminfoBalloon) }
    /// d54d610243a4 (6.15; 6.6.88, 6.12.25, 6.14.4): the decompressor and
    /// the EFI stub accept SNP memory through the GHCB MSR protocol, a page
    /// at a time; before it through 64-entry GHCB descriptors.
    public var snpEarlyAcceptUsesMSRProtocol: Bool { has(.snpEarlyAcceptMSR) }
    /// 99ef9f59847c (6.11): runs at VMPL>0 with an SVSM.
    public var snpRunsBelowVMPL0: Bool { has(.snpSVSMBelowVMPL0) }
    /// 7b306dfa326f (6.17; 6.12.42, 6.15.10): `sev_evict_cache()` after
    /// validating memory, unless the CPU reports COHERENCY_SFW_NO.
    public var snpEvictsCacheAfterValidation: Bool { has(.snpEvictCacheAfterValidation) }
    /// 50e782a86c98 (6.6; 6.5.9): `accept_memory()` drops the lock around
    /// `arch_accept_memory()` and keeps callers apart with `accepting_list`;
    /// before it the lock is held across the accept.
    public var acceptMemoryLocking: AcceptMemoryLocking { has(.acceptingList) ? .acceptingList : .lockHeldAcrossAccept }
    /// a4b0bf6a40f3 (7.0): boot services memory is freed at `arch_initcall`
    /// with `free_reserved_area()`, not in `efi_enter_virtual_mode()`.
    public var freesBootServicesAtArchInitcall: Bool { has(.efiBootServicesFreedAtArchInitcall) }
    /// 859e63b789d6 (6.11, TDX) and 3074152e56c9 (6.13, SNP): shared
    /// memory is converted back to private before `relocate_kernel`
    /// (`tdx_kexec_finish()` / `snp_kexec_finish()`).
    public func unsharesOnKexec(_ platform: PlatformKind) -> Bool {
        has(platform == .tdx ? .tdxKexecUnshare : .snpKexecUnshare)
    }
    /// b3ba234171cd (6.8): kexec_file walks System RAM top-down.
    public var kexecFileWalksTopDown: Bool { has(.kexecFileTopDown) }
}
