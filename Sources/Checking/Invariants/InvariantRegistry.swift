/// One named invariant of one layer: what must hold, and the real rule it
/// stands for.
public struct RegisteredInvariant: Sendable, Hashable {
    /// The registered name (`layer.rule`), as `Violation.invariant` carries it.
    public let name: String
    /// The layer whose state it speaks of: host (KVM and the TDX module),
    /// guest, kexec, progress.
    public let layer: String
    /// What must hold, in one sentence.
    public let statement: String
    /// The real rule, code or review thread behind it.
    public let source: String
    /// False when no model here can break it yet, with `why` saying so
    /// (reported, never counted as checked).
    public let checkable: Bool
    public let why: String

    init(_ name: String, _ layer: String, _ statement: String, source: String, checkable: Bool = true, why: String = "") {
        self.name = name
        self.layer = layer
        self.statement = statement
        self.source = source
        self.checkable = checkable
        self.why = why
    }
}

/// The one registry of invariants every model is checked against (issue 20
/// §1): the host's (`TDXVM.checkInvariants()` and `HostInvariants`' history),
/// the guest's, kexec's, and progress. A model reports a violation under the
/// registered name; `classify(host:)` maps the host checks' one-line
/// findings to theirs, so `host --check-invariants`, `HostSequences` and the
/// explorer speak of the same invariants.
public enum InvariantRegistry {
    public static let mirrorAgreesWithSEPT = RegisteredInvariant(
        "host.mirror-agrees-with-sept", "host",
        "KVM's mirror TDP root and the TDX module's S-EPT agree at 2M and 4K",
        source: "the mirror/external split of tdp_mmu.c; TDX_BUG_ON when they disagree")
    public static let mappingWithinFolio = RegisteredInvariant(
        "host.mapping-within-folio", "host",
        "no private mapping is larger than the guest_memfd folio behind it (or the contiguous range, multi-folio)",
        source: "seed 004 v3 cover letter: 'the mapping size in the KVM-managed secondary MMU is no larger than the backend folio size'")
    public static let noPrivateMappingOfShared = RegisteredInvariant(
        "host.no-private-mapping-of-shared", "host",
        "no 2M private leaf covers memory whose attributes say shared",
        source: "KVM_LPAGE_MIXED_FLAG, hugepage_has_attrs()")
    public static let dpamtRefcount = RegisteredInvariant(
        "host.dpamt-refcount", "host",
        "each 2M host range's DPAMT refcount equals its 4K private mappings, with PAMT_4K installed while any exist",
        source: "tdx_pamt_get()/tdx_pamt_put(), DPAMT v4")
    public static let noDoubleLevelMapping = RegisteredInvariant(
        "host.no-double-level-mapping", "host",
        "no frame is mapped at two levels at once (2M and 4K, or 1G and below), in the mirror or the S-EPT",
        source: "secure_ept_walk(): a leaf ends the walk")
    public static let splitCacheNonNegative = RegisteredInvariant(
        "host.split-cache", "host", "the per-VM split cache never goes below empty",
        source: "tdx_topup_vm_split_cache(), DPAMT v4")
    public static let guestInhibitOneWay = RegisteredInvariant(
        "host.guest-inhibit-one-way", "host",
        "KVM_LPAGE_GUEST_INHIBIT_FLAG, once set, is never cleared",
        source: "seed 004 v3: 'the GUEST_INHIBIT bit is set in a one-way manner under write mmu_lock'")
    public static let conversionAtomic = RegisteredInvariant(
        "host.conversion-atomic", "host",
        "a guest_memfd conversion that fails leaves the memory as it was: it never zaps accepted private memory and then fails",
        source: "seed 004 discussion: Yan Zhao's reason to split the S-EPT before the folio (sept-first)")
    public static let noHostReferenceOnPrivate = RegisteredInvariant(
        "host.no-host-reference-on-private", "host",
        "under in-place conversion no private page keeps a host reference (a pin or GUP through guest_memfd's mapping)",
        source: "Ackerley Tng's in-place conversion series: conversion to private checks for safe refcounts (step 2a)")
    public static let noBugOn = RegisteredInvariant(
        "host.no-bug-on", "host",
        "KVM never reaches KVM_BUG_ON/TDX_BUG_ON (the VM bugged)",
        source: "arch/x86/kvm/vmx/tdx.c: each TDX_BUG_ON states a path KVM must never take")
    public static let neverTouchUnaccepted = RegisteredInvariant(
        "guest.never-touch-unaccepted", "guest",
        "the guest never loads or stores to private memory it has not accepted",
        source: "tdx_handle_ept_violation(): 'Guest access before accepting'; SNP #VC 0x404")
    public static let acceptOnceWhereContentsMatter = RegisteredInvariant(
        "guest.accept-once-where-contents-matter", "guest",
        "a page the guest accepts as fresh holds zeros: never one whose earlier contents survive an ALREADY_ACCEPTED",
        source: "TDG.MEM.PAGE.ACCEPT zeroes the page; COCONUT-SVSM PR 506 (ALREADY_ACCEPTED does not mean fresh)")
    public static let contentsIntact = RegisteredInvariant(
        "guest.contents-intact", "guest",
        "a private page the guest wrote reads back what it wrote, or the guest stops (never a silent loss)",
        source: "the TDX integrity guarantee; issue 18 §5 (a host that removes and re-adds a page)")
    public static let acceptingListExclusive = RegisteredInvariant(
        "guest.accepting-list-exclusive", "guest",
        "no two accept_memory() calls work on overlapping units at once",
        source: "drivers/firmware/efi/unaccepted_memory.c accepting_list (50e782a86c98); checked on the real layers by model: accept-memory")
    public static let acceptSucceeds = RegisteredInvariant(
        "guest.accept-succeeds", "guest",
        "every arch_accept_memory() succeeds: Linux's tdx_accept_memory() panics when a 4K ACCEPT fails (TDX_PAGE_ALREADY_ACCEPTED after a second accept of the same memory)",
        source: "arch/x86/coco/tdx/tdx-shared.c try_accept_one(); arch/x86/include/asm/unaccepted_memory.h: panic(\"TDX: Failed to accept memory\")")
    public static let tableAgreesWithPlatform = RegisteredInvariant(
        "guest.unaccepted-table-agrees", "guest",
        "every RAM unit the unaccepted table marks accepted is accepted on the platform",
        source: "accept_memory() clears a bit only after arch_accept_memory()")
    public static let kexecDestinationsAccepted = RegisteredInvariant(
        "kexec.destinations-accepted-before-relocation", "kexec",
        "every kexec segment destination is accepted before relocate_kernel copies into it",
        source: "seed 001: kexec_core 'Accept unaccepted kexec segments' destination addresses'")
    public static let acceptCompletes = RegisteredInvariant(
        "progress.accept-completes", "progress",
        "every accept (and every access) completes within a bound: no livelock",
        source: "issue 20 §1 progress; a vCPU the host never maps spins in its EPT violation")

    /// Every registered invariant, in report order.
    public static let all: [RegisteredInvariant] = [
        mirrorAgreesWithSEPT, mappingWithinFolio, noPrivateMappingOfShared, dpamtRefcount, noDoubleLevelMapping,
        splitCacheNonNegative, guestInhibitOneWay, conversionAtomic, noHostReferenceOnPrivate, noBugOn,
        neverTouchUnaccepted, acceptOnceWhereContentsMatter, contentsIntact, acceptingListExclusive, acceptSucceeds, tableAgreesWithPlatform,
        kexecDestinationsAccepted, acceptCompletes, otherHostCheck,
    ]

    /// The invariant registered under `name`.
    public static func named(_ name: String) -> RegisteredInvariant? { all.first { $0.name == name } }

    /// The registered invariant a one-line finding of the host's checks
    /// (`TDXVM.checkInvariants()`, its broken-outcome flags,
    /// `HostInvariants`) speaks of. The phrases are those the checks write.
    /// - Complexity: O(1).
    public static func classify(host finding: String) -> RegisteredInvariant {
        let rules: [(String, RegisteredInvariant)] = [
            ("larger than its folio", mappingWithinFolio),
            ("private mapping over shared", noPrivateMappingOfShared),
            ("PAMT refcount", dpamtRefcount), ("without PAMT_4K", dpamtRefcount), ("pamt_put underflow", dpamtRefcount),
            ("conversion to shared failed", conversionAtomic), ("accepted pages lost", conversionAtomic),
            ("under a 2M leaf", noDoubleLevelMapping), ("under a 1G leaf", noDoubleLevelMapping),
            ("but S-EPT", mirrorAgreesWithSEPT),
            ("split cache underflow", splitCacheNonNegative),
            ("host reference on a private page", noHostReferenceOnPrivate),
            ("GUEST_INHIBIT cleared", guestInhibitOneWay),
            ("repeated faults", acceptCompletes),
            ("VM bugged", noBugOn), ("BUG_ON", noBugOn),
        ]
        return rules.first { finding.contains($0.0) }?.1 ?? otherHostCheck
    }

    /// A host check's finding no rule above names (a new check added to
    /// KVM without a registry entry): reported under this name, never
    /// filed under another invariant.
    public static let otherHostCheck = RegisteredInvariant(
        "host.other-check", "host", "any other check TDXVM.checkInvariants() or a broken-outcome flag reports",
        source: "Sources/KVM/VM/TDXVM+Invariants.swift")

    /// `finding` as a `Violation` of the invariant it speaks of.
    public static func violation(host finding: String) -> Violation {
        Violation(invariant: classify(host: finding).name, detail: finding)
    }
}
