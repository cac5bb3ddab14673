public import CostModel
public import MemoryModel

/// The RMP state of one 4K guest frame, as far as validation is concerned
/// (`struct rmpentry`: assigned, pagesize, validated).
public enum RMPState: UInt8, Sendable, Equatable {
    /// Private by attribute but no host page yet (guest_memfd not faulted in).
    case unbacked
    /// Assigned to the guest by RMPUPDATE as part of a 4K RMP entry, not validated.
    case assigned4K
    /// Part of a 2M RMP entry, not validated.
    case assigned2M
    case validated4K
    case validated2M

    public var isValidated: Bool { self == .validated4K || self == .validated2M }
    public var isBacked: Bool { self != .unbacked }
}

/// PVALIDATE's result in EAX, with CF=1 reported as Linux's
/// `PVALIDATE_FAIL_NOUPDATE` (255).
public enum PvalidateResult: UInt32, Sendable {
    case success = 0
    case failInput = 1
    case failPermission = 2
    case failSizeMismatch = 6
    case noUpdate = 255
}

/// How the host backs private memory: 4K pages only, or 2M where the guest
/// validates at 2M (2M guest_memfd folios).
public enum SNPBackingPolicy: String, Sendable, CaseIterable {
    case back4K = "4k"
    case back2M = "2m"
}

/// The SEV-SNP platform seen from the guest: the hypervisor's handling of
/// Page State Change requests, the nested-page-fault path that faults in
/// guest_memfd pages (RMPUPDATE), and the PVALIDATE instruction.
public final class SNPPlatform {
    public let policy: SNPBackingPolicy
    /// QEMU pre-faults on page state change (KVM_PRE_FAULT_MEMORY), so no NPF
    /// follows a PSC ("i386/kvm: Prefault memory on page state change", 2025).
    public let prefaultOnPSC: Bool
    /// RMP state by guest frame. The real RMP is indexed by system physical
    /// page; the model gives SNP no host frames, so each entry is found by
    /// the guest frame it is assigned to (the RMP entry's GPA field).
    package internal(set) var rmp = IntervalMap<GuestFrameNumber, RMPState>(initial: .unbacked)
    /// Frames whose attributes the guest made shared (`SNPPlatform+Shared.swift`).
    package internal(set) var sharedFrames = IntervalMap<GuestFrameNumber, Bool>(initial: false)

    public init(policy: SNPBackingPolicy, prefaultOnPSC: Bool = false) {
        self.policy = policy
        self.prefaultOnPSC = prefaultOnPSC
    }

    /// Memory measured and validated at launch (SNP_LAUNCH_UPDATE): the
    /// firmware image and pre-validated SEC ranges.
    /// - Complexity: O(log runs).
    /// Guest frames the VMM has memory behind (QEMU's RAM blocks); nil:
    /// every frame, a VM without memory hot-plug. A DIMM or virtio-mem block
    /// adds its range when it is plugged and takes it away when unplugged.
    public var vmmMemory: IntervalMap<GuestFrameNumber, Bool>? = nil

    /// Whether the VMM has memory behind every frame of `frames`. A page-state
    /// change naming a frame outside it cannot be served: KVM forwards the
    /// request to QEMU (KVM_HC_MAP_GPA_RANGE), whose `kvm_convert_memory()`
    /// finds no RAM block and fails, and the guest is stopped.
    /// - Complexity: O(log runs + runs in `frames`).
    public func vmmHasMemory(_ frames: Range<GuestFrameNumber>) -> Bool {
        vmmMemory.map { $0.allSatisfy(in: frames) { $0 } } ?? true
    }

    /// The host takes `frames` back when their memory device goes away: the
    /// memory backend's pages are freed (guest_memfd's `kvm_gmem_free_folio()`
    /// → `sev_gmem_invalidate()` makes each RMP entry hypervisor-owned again),
    /// so the guest's validations there are gone.
    /// - Complexity: O(log runs).
    public func reclaim(_ frames: Range<GuestFrameNumber>) {
        rmp.assign(frames, .unbacked)
    }

    public func launchUpdate(_ frames: Range<GuestFrameNumber>) {
        rmp.assign(frames, .validated4K)
    }

    /// Backs `gfn` with a host page, as KVM's fault path does for a private
    /// guest_memfd page: a 2M RMP entry when the policy and the request allow
    /// it and nothing in the 2M range is backed yet, else a 4K entry.
    private func back(gfn: GuestFrameNumber, level: PageLevel, counts c: inout OpCounts) {
        let chunk = gfn.region2M.frames
        if policy == .back2M, level == .size2M, rmp.allSatisfy(in: chunk, { $0 == .unbacked }) {
            rmp.assign(chunk, .assigned2M)
            c.add(.snpRMPUpdate2M)
        } else if rmp.value(at: gfn) == .unbacked {
            rmp.assign(gfn.only, .assigned4K)
            c.add(.snpRMPUpdate4K)
        }
    }

    /// One Page State Change VMGEXIT through the GHCB, every entry to
    /// private (`SVM_VMGEXIT_PSC`). The hypervisor breaks a 2M entry it
    /// cannot back at 2M into 512 4K requests.
    /// - Complexity: O(entries × log runs).
    public func pageStateChange(_ entries: [(gfn: GuestFrameNumber, level: PageLevel)]) -> OpCounts {
        pageStateChange(entries, stepByStep: false)
    }

    /// `pageStateChange(_:)`, with the 4K pages of a 2M entry the host backs
    /// at 4K either stepped one at a time (`stepByStep`) or backed by runs
    /// of the RMP (`backFrames4K`); both give the same RMP and counts.
    /// - Complexity: O(entries × log runs), plus O(pages) when stepping.
    package func pageStateChange(_ entries: [(gfn: GuestFrameNumber, level: PageLevel)], stepByStep: Bool) -> OpCounts {
        var c = OpCounts()
        c.add(.snpPSCExit)
        for e in entries {
            c.add(e.level == .size2M ? .snpPSCEntry2M : .snpPSCEntry4K)
            guard prefaultOnPSC else { continue }
            if e.level == .size2M, policy == .back2M {
                back(gfn: e.gfn, level: .size2M, counts: &c)
            } else if stepByStep {
                for g in Range(start: e.gfn, count: e.level.pages) { back(gfn: g, level: .size4K, counts: &c) }
            } else {
                backFrames4K(Range(start: e.gfn, count: e.level.pages), counts: &c)
            }
        }
        return c
    }

    /// `back(gfn:level: .size4K)` of every frame of `frames`, by runs: a 4K
    /// RMPUPDATE of an unbacked frame makes a 4K entry for that frame alone
    /// (`rmp_make_private()` of one page), so a run of N unbacked frames
    /// becomes N assigned 4K entries and N RMPUPDATEs in one assignment;
    /// backed frames are left as they are.
    /// - Complexity: O(log runs + k) for k runs in `frames`.
    private func backFrames4K(_ frames: Range<GuestFrameNumber>, counts c: inout OpCounts) {
        for (range, value) in rmp.runs(in: frames) where value == .unbacked {
            rmp.assign(range, .assigned4K)
            c.add(.snpRMPUpdate4K, range.length)
        }
    }

    /// Page State Change through the GHCB MSR protocol (`GHCB_MSR_PSC_REQ`):
    /// one 4K page per VMGEXIT, used before a GHCB exists.
    /// - Complexity: O(log runs).
    public func msrPageStateChange(gfn: GuestFrameNumber) -> OpCounts {
        var c = OpCounts()
        c.add(.snpMSRPSCExit)
        if prefaultOnPSC { back(gfn: gfn, level: .size4K, counts: &c) }
        return c
    }

    /// PVALIDATE (validate) of the page at `gfn` with size `level`. A first
    /// touch of an unbacked page takes a nested page fault, after which the
    /// instruction re-executes.
    /// - Complexity: O(log runs).
    public func pvalidate(gfn: GuestFrameNumber, level: PageLevel) -> (PvalidateResult, OpCounts) {
        var c = OpCounts()
        guard level != .size1G, gfn.isAligned(to: level) else {
            c.add(level == .size2M ? .snpPvalidate2MFail : .snpPvalidate4KFail)
            return (.failInput, c)
        }
        if rmp.value(at: gfn) == .unbacked {
            let before = c
            back(gfn: gfn, level: level, counts: &c)
            let grew2M = c[.snpRMPUpdate2M] > before[.snpRMPUpdate2M]
            c.add(grew2M ? .snpNPF2M : .snpNPF4K)
        }
        if level == .size2M {
            let chunk = gfn.region2M.frames
            let runs = rmp.runs(in: chunk)
            if runs.count == 1, runs[0].value == .assigned2M {
                rmp.assign(chunk, .validated2M)
                c.add(.snpPvalidate2MSuccess)
                return (.success, c)
            }
            if runs.count == 1, runs[0].value == .validated2M {
                c.add(.snpPvalidate2MNoUpdate)
                return (.noUpdate, c)
            }
            c.add(.snpPvalidate2MSizeMismatch)
            return (.failSizeMismatch, c)
        }
        switch rmp.value(at: gfn) {
        case .assigned4K:
            rmp.assign(gfn.only, .validated4K)
            c.add(.snpPvalidate4KSuccess)
            return (.success, c)
        case .assigned2M:
            // RMP size-mismatch fault: the host PSMASHes the 2M entry into 512 4K entries.
            rmp.assign(gfn.region2M.frames, .assigned4K)
            c.add(.snpNPF4K)
            rmp.assign(gfn.only, .validated4K)
            c.add(.snpPvalidate4KSuccess)
            return (.success, c)
        case .validated4K, .validated2M:
            c.add(.snpPvalidate4KNoUpdate)
            return (.noUpdate, c)
        case .unbacked:
            c.add(.snpPvalidate4KFail)
            return (.failPermission, c)
        }
    }

    /// PVALIDATE (validate) of each 4K frame of `frames` in ascending order,
    /// stopping at the first that does not succeed: the 4K loop Linux's
    /// `pvalidate_pages()` falls back to after a 2M FAIL_SIZEMISMATCH, as
    /// edk2's `PvalidateRange` does. With `msrPSC`, each frame is first the
    /// subject of its own GHCB MSR page state change (`msrPageStateChange`),
    /// as Linux's `__page_state_change()` interleaves them before a GHCB exists.
    ///
    /// Stepping (`stepByStep`) issues them one frame at a time. Otherwise
    /// they go by runs of the RMP: the first frame of a run is stepped, and
    /// when the run's state is one whose 4K operations read and write only
    /// the frame's own RMP entry (unbacked: a 4K RMPUPDATE of that page;
    /// assigned as a 4K entry), the run's other frames start in that same
    /// state, so each takes the same operations to the same end state: they
    /// are replayed as one assignment and the first frame's counts times
    /// their number. A 2M entry is stepped (its first 4K PVALIDATE has the
    /// host PSMASH all 512 entries). SNPTests hold both paths equal.
    /// - Returns: the frame that failed and PVALIDATE's result, or nil.
    /// - Complexity: O(k × log runs) for k runs of the RMP in `frames`;
    ///   O(pages × log runs) stepping.
    package func validateFrames4K(_ frames: Range<GuestFrameNumber>, msrPSC: Bool, stepByStep: Bool,
                                  counts c: inout OpCounts) -> (gfn: GuestFrameNumber, result: PvalidateResult)? {
        var g = frames.lowerBound
        while g < frames.upperBound {
            let run = rmp.run(containing: g)
            var d = OpCounts()
            if msrPSC { d.add(msrPageStateChange(gfn: g)) }
            let (result, v) = pvalidate(gfn: g, level: .size4K)
            d.add(v)
            c.add(d)
            if result != .success { return (g, result) }
            g = g + 1
            let end = min(run.range.upperBound, frames.upperBound)
            guard !stepByStep, g < end, Self.fourKOperationsStayInTheirEntry(run.value),
                  rmp.run(containing: g).value == run.value else { continue }
            rmp.assign(g..<end, rmp.value(at: g - 1))
            c.add(d, times: end - g)
            g = end
        }
        return nil
    }

    /// True for the states in which a 4K PSC, RMPUPDATE or PVALIDATE of a
    /// frame touches no other RMP entry: unbacked (KVM backs the one page,
    /// `rmp_make_private()` at PG_LEVEL_4K) and a 4K entry. Not a 2M entry,
    /// which the host PSMASHes into 512.
    private static func fourKOperationsStayInTheirEntry(_ state: RMPState) -> Bool {
        state == .unbacked || state == .assigned4K
    }

    /// - Complexity: O(log runs + k).
    public func isAccessible(_ frames: Range<GuestFrameNumber>) -> Bool {
        rmp.allSatisfy(in: frames) { $0.isValidated }
    }

    public var committedPages: UInt64 { rmp.measure(in: .lowest ..< .highest) { $0.isBacked } }

    /// A guest access with the C-bit set to `gfn` outside PVALIDATE. A page
    /// with no host backing takes a nested page fault, which KVM resolves
    /// by faulting in the guest_memfd page (RMPUPDATE, assigned but not
    /// validated); the retried access to a page that is not validated
    /// raises #VC with error code 0x404 (SVM_EXIT_NOT_VALIDATED, AMD APM
    /// vol. 2 §15.36.10). Linux has no handler for it: `vc_handle_exitcode()`
    /// returns ES_UNSUPPORTED and the guest terminates itself
    /// (GHCB_SEV_ES_GEN_REQ). Returns the operations and, when fatal, why.
    public func guestAccess(gfn: GuestFrameNumber) -> (OpCounts, fatal: String?) {
        var c = OpCounts()
        let state = rmp.value(at: gfn)
        if state.isValidated { return (c, nil) }
        if state == .unbacked {
            back(gfn: gfn, level: .size4K, counts: &c)
            c.add(.snpNPF4K)
        }
        return (c, "SNP: #VC exception, error code 0x404 (SVM_EXIT_NOT_VALIDATED) at \(gfn.address): the guest terminated itself (GHCB_SEV_ES_GEN_REQ)")
    }

    // Bulk support, as for the TDX host: no real interface has these, so
    // they are `package`, used only by the guest's accept driver to replay
    // its own identical PSC/PVALIDATE sequences.
    /// Signature of the uniform range `[gfn, gfn + frames)`, or nil.
    package func signature(gfn: GuestFrameNumber, frames: UInt64) -> ReplayKey? {
        let run = rmp.run(containing: gfn)
        guard run.range.upperBound >= gfn + frames else { return nil }
        return ReplayKey(state: UInt64(run.value.rawValue))
    }

    /// Number of consecutive blocks of `frames` from `gfn` (at most `limit`)
    /// in the same uniform state.
    package func blocksSharing(_ sig: ReplayKey, from gfn: GuestFrameNumber, frames: UInt64, limit: UInt64) -> UInt64 {
        guard signature(gfn: gfn, frames: frames) == sig else { return 0 }
        return min(limit, (rmp.run(containing: gfn).range.upperBound - gfn) / frames)
    }

    package func finalState(gfn: GuestFrameNumber, frames: UInt64) -> RMPState? {
        let run = rmp.run(containing: gfn)
        return run.range.upperBound >= gfn + frames && run.range.lowerBound <= gfn ? run.value : nil
    }

    package func replay(state: RMPState, frames: Range<GuestFrameNumber>) { rmp.assign(frames, state) }
}
