public import CostModel
public import MemoryModel
import TDXModule

/// The result of one pass through KVM's private fault path.
enum FaultResult: Equatable {
    case mapped
    /// RET_PF_RETRY: the vCPU re-enters and faults again.
    case retry
    /// KVM_EXIT_MEMORY_FAULT to userspace (the attributes say shared).
    case userspaceExit
    case failed(String)
    /// An adversarial host declined to AUG the page (`refuse-aug`): nothing
    /// is mapped and the vCPU re-enters to fault again, for ever.
    case refused
}

extension TDXVM {
    // MARK: Max mapping level

    /// `hugepage_has_attrs()`: the 2M range (clipped to its slot) is not
    /// uniformly private or shared, i.e. KVM_LPAGE_MIXED_FLAG.
    func isMixed(chunk c: GuestRegion2M) -> Bool {
        guard let s = slot(c.firstFrame) else { return false }
        let lo = max(c.frames.lowerBound, s.baseGFN), hi = min(c.frames.upperBound, s.frames.upperBound)
        return attributes.isMixed(lo..<hi)
    }

    /// guest_memfd's answer for the largest mapping at `gfn`: the folio's
    /// order (`kvm_gmem_max_mapping_level()`), or under the multi-folio
    /// policy the contiguous, homogeneous private range it reports.
    func gmemMaxLevel(_ gfn: GuestFrameNumber) -> PageLevel {
        let order2M = UInt8(PageLevel.size2M.frameShift), order1G = UInt8(PageLevel.size1G.frameShift)
        if options.conversionPolicy == .multiFolio {
            guard let s = slot(gfn), s.backing.order >= order2M else { return gmem.folioOrder.value(at: gfn) >= order2M ? .size2M : .size4K }
            let c = gfn.region2M
            // Contiguous: inside one backing folio of the slot; homogeneous: all private.
            let unit = s.folioPages
            let inFolio = s.baseGFN.alignedUp(toMultipleOf: unit) <= c.frames.lowerBound
                && c.frames.upperBound <= s.frames.upperBound.alignedDown(toMultipleOf: unit)
            return inFolio && !isMixed(chunk: c) && attributes.isPrivate(gfn) ? .size2M : .size4K
        }
        let order = gmem.folioOrder.value(at: gfn)
        return order >= order1G ? .size1G : order >= order2M ? .size2M : .size4K
    }

    /// `hugepage_has_attrs()` at 1G: the 1G range (clipped to its slot) is
    /// not uniformly private or shared.
    func isMixed(region r: GuestRegion1G) -> Bool {
        guard let s = slot(r.firstFrame) else { return false }
        let lo = max(r.frames.lowerBound, s.baseGFN), hi = min(r.frames.upperBound, s.frames.upperBound)
        return attributes.isMixed(lo..<hi)
    }

    /// Whether a private fault at `gfn` may map the whole 1G region
    /// (forward-looking, issue 18 §3): the module maps private memory at 1G
    /// (`TDXModuleFeatures.privateMappings1G`), so TDX's cap
    /// (`tdx_gmem_max_mapping_level()`, PG_LEVEL_2M in v3) is PG_LEVEL_1G;
    /// the guest_memfd folio is a 1G hugetlb folio
    /// (`kvm_gmem_max_mapping_level()` from its order); `lpage_info` at 1G
    /// has no `disallow_lpage`, no MIXED and (unless ignored) no
    /// GUEST_INHIBIT; and no PD is linked there already (no promotion,
    /// `disallowed_hugepage_adjust()`). The generalisation is the one KVM
    /// makes for shared and non-TDX memory, whose `max_mapping_level`
    /// already reaches PG_LEVEL_1G.
    func allows1G(_ gfn: GuestFrameNumber, ignoringGuestInhibit: Bool) -> Bool {
        guard module.features.privateMappings1G, gmemMaxLevel(gfn) == .size1G else { return false }
        let r = gfn.region1G
        let li = lpageInfo.lpage1G.value(at: r)
        if li.disallow > 0 || (li.guestInhibit && !ignoringGuestInhibit) || isMixed(region: r) { return false }
        return mmu.mirror1G.value(at: r) || !mmu.mirrorPD.value(at: r) || ignoringGuestInhibit
    }

    /// The mapping level of a private fault at `gfn`: the min of guest_memfd's
    /// level, the TDX cap (`tdx_gmem_max_mapping_level()`: 4K until the TD is
    /// RUNNABLE or with huge pages off, else 2M), and `lpage_info` at 2M
    /// (`disallow_lpage`, MIXED, GUEST_INHIBIT), lowered to 4K where a
    /// non-leaf already exists (no promotion, `disallowed_hugepage_adjust()`);
    /// 1G where `allows1G` says so.
    /// With `ignoringGuestInhibit`, the level the memory itself would allow
    /// (GUEST_INHIBIT and the no-promotion rule left out): what "KVM could
    /// map at 2M" means in seed 004's count of 4K accepts.
    /// - Complexity: O(log runs).
    public func maxPrivateLevel(_ gfn: GuestFrameNumber, ignoringGuestInhibit: Bool = false) -> PageLevel {
        guard tdx.isRunnable, hugePagesEnabled, gmemMaxLevel(gfn) >= .size2M else { return .size4K }
        if allows1G(gfn, ignoringGuestInhibit: ignoringGuestInhibit) { return .size1G }
        let c = gfn.region2M
        let li = lpageInfo.lpage2M.value(at: c)
        if li.disallow > 0 || (li.guestInhibit && !ignoringGuestInhibit) || isMixed(chunk: c) { return .size4K }
        if mmu.mirror2M.value(at: c) == .table && !ignoringGuestInhibit { return .size4K }
        return .size2M
    }

    // MARK: Fault path

    /// Makes sure the mirror's PDPT and PD above `gfn` exist, linking each
    /// new one to the S-EPT (`link_external_spt` → TDH.MEM.SEPT.ADD).
    /// Returns nil when both exist, else the fault's result (BUSY retries,
    /// any other error bugs the VM: `tdx_sept_link_private_spt()`).
    ///
    /// Only the first fault in a 1G (512G) region links its table, so the
    /// SEPT.ADDs are context work (`noteUpperWork`): bulk replay counts
    /// them per region, not per chunk.
    func linkUpperTables(_ gfn: GuestFrameNumber, through1G: Bool = true) -> FaultResult? {
        if !mmu.mirrorPDPT.value(at: gfn.region512G) {
            let s = module.septAdd(gfn: gfn, entryLevel: 4, pageHFN: allocUpperTablePage())
            noteUpperWork(op: .tdxSeptAdd, call: .memSeptAdd, s)
            if let r = mappingFailure(s, "TDH.MEM.SEPT.ADD", at: gfn) { return r }
            mmu.linkPDPT(gfn.region512G.only)
        }
        if through1G && !mmu.mirrorPD.value(at: gfn.region1G) {
            let s = module.septAdd(gfn: gfn, entryLevel: 3, pageHFN: allocUpperTablePage())
            noteUpperWork(op: .tdxSeptAdd, call: .memSeptAdd, s)
            if let r = mappingFailure(s, "TDH.MEM.SEPT.ADD", at: gfn) { return r }
            mmu.linkPD(gfn.region1G.only)
        }
        return nil
    }

    /// Counts an operation whose happening depends on the 1G/512G region
    /// around a chunk rather than on the chunk (a PD or PDPT link, the
    /// write lock a pre-check would have skipped): in `ops` and the call
    /// counts as every operation, and also in the context tallies that
    /// bulk replay recomputes per region.
    func noteUpperWork(op: Op? = nil, call: SEAMCALLLeaf? = nil, _ status: TDXStatus = .success, counter: KVMCounter? = nil) {
        if let op { ops.add(op); contextOps.add(op); upperOps.add(op) }
        if let call { contextCalls.record(call, status); upperCalls.record(call, status) }
        if let counter { counters.bump(counter); contextCounters.bump(counter); upperCounters.bump(counter) }
    }

    /// One pass of `kvm_tdp_mmu_map()` for a private GPA under the shared
    /// `mmu_lock`: table links, then `set_external_spte` (TDH.MEM.PAGE.AUG at
    /// 4K after `tdx_pamt_get()`, or at 2M). Meeting a 2M leaf where 4K is
    /// wanted needs a split, which TDX rejects under the shared lock
    /// (-EOPNOTSUPP, P09): the fault is retried.
    func privateFault(gfn: GuestFrameNumber, acceptLevel: PageLevel?) -> FaultResult {
        guard let s = slot(gfn) else { return .failed("EFAULT: no memslot for \(gfn.address)") }
        guard attributes.isPrivate(gfn) else { return .userspaceExit }
        if faults.refusedAUG.value(at: gfn) { return .refused }
        var level = maxPrivateLevel(gfn)
        if options.acceptLevelPolicy == .perFault, let a = acceptLevel, a.rawValue < level.rawValue { level = a }
        if mmu.mirror1G.value(at: gfn.region1G) {
            if level == .size1G { return .mapped }
            counters.bump(.splitsRejectedShared)
            note("fault \(gfn.address): 1G leaf, \(level) wanted: split rejected under shared mmu_lock, retry")
            return .retry
        }
        if level == .size1G { return aug1G(gfn) }
        if let r = linkUpperTables(gfn) { return r }
        let c = gfn.region2M
        switch (mmu.mirror2M.value(at: c), level) {
        case (.leaf, .size2M), (.leaf, .size1G):
            return .mapped
        case (.leaf, .size4K):
            counters.bump(.splitsRejectedShared)
            note("fault \(gfn.address): 2M leaf, 4K wanted: split rejected under shared mmu_lock, retry")
            return .retry
        case (.none, .size2M), (.none, .size1G):
            let base = c.firstFrame
            gmem.allocate(c.frames)
            raceAcceptInFlight(base, .size2M)
            let st = module.pageAug(gfn: base, level: .size2M, hfn: hfn(base))
            ops.add(.tdxAug2M)
            if let r = mappingFailure(st, "TDH.MEM.PAGE.AUG", at: base) { return r }
            mmu.setMirror2M(c.only, .leaf)
            note("AUG 2M \(base.address)")
            return .mapped
        case (.none, .size4K):
            let page = allocSeptPage(viaSplitCache: false)
            let st = module.septAdd(gfn: gfn, entryLevel: 2, pageHFN: page)
            ops.add(.tdxSeptAdd)
            if let r = mappingFailure(st, "TDH.MEM.SEPT.ADD", at: gfn) { return r }
            mmu.setMirror2M(c.only, .table)
            return aug4K(gfn, slot: s)
        case (.table, _):
            return mmu.mirror4K.value(at: gfn) ? .mapped : aug4K(gfn, slot: s)
        }
    }

    /// `set_external_spte` at 1G (forward-looking): the PDPT above is
    /// linked, the 1G folio allocated, and TDH.MEM.PAGE.AUG maps the whole
    /// region PENDING. No Dynamic PAMT: a 1G page uses the static PAMT_1G
    /// entry, as a 2M page uses PAMT_2M.
    func aug1G(_ gfn: GuestFrameNumber) -> FaultResult {
        if let r = linkUpperTables(gfn, through1G: false) { return r }
        let r = gfn.region1G, base = r.firstFrame
        gmem.allocate(r.frames)
        let st = module.pageAug(gfn: base, level: .size1G, hfn: hfn(base))
        ops.add(.tdxAug1G)
        if let f = mappingFailure(st, "TDH.MEM.PAGE.AUG", at: base) { return f }
        mmu.setMirror1G(r.only, true)
        note("AUG 1G \(base.address)")
        return .mapped
    }

    /// `set_external_spte` at 4K: `tdx_pamt_get()`, then AUG (with the
    /// reference dropped again if AUG fails).
    func aug4K(_ gfn: GuestFrameNumber, slot s: Memslot) -> FaultResult {
        gmem.allocate(gfn.only)
        let h = hfn(gfn)
        let p = pamtGet(hfn: h)
        guard p == .success else { return .failed("EIO: tdx_pamt_get: TDH.PHYMEM.PAMT.ADD \(p)") }
        if faults.fire(.augBusy) { module.hold(.guestEntry(gfn: gfn, level: .size4K), vcpu: 0) }
        raceAcceptInFlight(gfn, .size4K)
        let st = module.pageAug(gfn: gfn, level: .size4K, hfn: h)
        ops.add(.tdxAug4K)
        if st != .success { pamtPut(hfn: h) }
        if let r = mappingFailure(st, "TDH.MEM.PAGE.AUG", at: gfn) { return r }
        mmu.setMirror4K(gfn.only, true)
        return .mapped
    }

    /// `tdx_honor_guest_accept_level()` (P13): for an ACCEPT at 4K or 2M,
    /// unless GUEST_INHIBIT is already set above the level (tested without
    /// the lock when `lpagePrecheck`), take the write `mmu_lock`, split
    /// leaves crossing the accepted range, and set GUEST_INHIBIT at level+1
    /// (and level+2 for 4K). Split errors go to userspace.
    func honorAcceptLevel(gfn: GuestFrameNumber, level: PageLevel) -> String? {
        guard options.acceptLevelPolicy == .guestInhibit, level != .size1G else { return nil }
        let above = level == .size4K ? lpageInfo.lpage2M.value(at: gfn.region2M) : lpageInfo.lpage1G.value(at: gfn.region1G)
        if options.lpagePrecheck && above.guestInhibit { return nil }
        if options.lpagePrecheck && level == .size2M {
            // The pre-check skips the lock once the 1G region is inhibited:
            // the first 2M accept of each 1G region takes it.
            noteUpperWork(counter: .writeLockAcquisitions)
            noteUpperWork(counter: .writeLockAcceptLevel)
        } else {
            counters.bump(.writeLockAcquisitions)
            counters.bump(.writeLockAcceptLevel)
        }
        let base = gfn.alignedDown(to: level)
        if let e = splitCrossBoundaryLeafs(Range(start: base, count: level.pages), cause: .accept) { return e }
        if level == .size4K { lpageInfo.setGuestInhibit(gfn.region2M) }
        lpageInfo.setGuestInhibit(gfn.region1G)
        return nil
    }

    /// `tdx_handle_ept_violation()` for a private GPA: honour the accept
    /// level (ACCEPT-type exits), then fault until mapped. A fault that
    /// keeps retrying (a split rejected under the shared lock) is reported
    /// after a bounded number of passes instead of spinning.
    /// - Returns: the operations performed, for the faulting vCPU's clock.
    /// - Complexity: O(log runs), at most 4 fault passes.
    public func handleEPTViolation(gfn: GuestFrameNumber, acceptLevel: PageLevel?) -> OpCounts {
        let before = ops
        guard outcome == .ok else { return OpCounts() }
        counters.bump(.eptViolations)
        ops.add(.tdxEPTViolationExit)
        // What the host sees: the GPA, and for an ACCEPT the level in the
        // extended exit qualification (the whole page the guest accepts).
        if hostTrace != nil {
            if let a = acceptLevel { hostTrace!.add(.acceptExit, level: a, frames: Range(start: gfn.alignedDown(to: a), count: a.pages)) }
            else { hostTrace!.add(.accessExit, level: nil, frames: gfn.only) }
        }
        if let a = acceptLevel {
            counters.bump(.acceptEPTViolations)
            if a == .size4K && maxPrivateLevel(gfn, ignoringGuestInhibit: true) >= .size2M { counters.bump(.accept4KWhere2MPossible) }
            if let e = honorAcceptLevel(gfn: gfn, level: a) {
                if !isDead { outcome = .ioctlError("KVM_RUN: \(e) honouring the guest's accept level at \(gfn.address)") }
                return ops - before
            }
        }
        for pass in 0..<4 {
            switch privateFault(gfn: gfn, acceptLevel: acceptLevel) {
            case .mapped: return ops - before
            case .retry:
                counters.bump(.faultRetries)
                // While the faulting vCPU re-enters, the other vCPUs' ACCEPTs
                // complete and drop the entry locks that made AUG busy.
                module.finishGuestAccepts()
                if pass == 3 { flag("repeated faults at \(gfn.address): a 2M leaf needs a split that TDX rejects under the shared mmu_lock") }
            case .userspaceExit:
                // KVM_EXIT_MEMORY_FAULT: the VMM converts the page to private
                // (QEMU's kvm_convert_memory()) and re-enters.
                note("KVM_EXIT_MEMORY_FAULT at \(gfn.address): VMM converts it to private")
                guard convert(gfn.only, toPrivate: true) == .ok else { return ops - before }
            case .failed(let e):
                if !isDead { outcome = .ioctlError("KVM_RUN: \(e)") }
                return ops - before
            case .refused:
                note("fault \(gfn.address): the host refuses to AUG it; the vCPU faults again")
                return ops - before
            }
        }
        return ops - before
    }
}

extension TDXVM {
    /// True if a private leaf maps `gfn` in the mirror.
    /// - Complexity: O(log runs).
    public func isMapped(_ gfn: GuestFrameNumber) -> Bool { mmu.isMapped(gfn) }

    /// `kvm_vm_dead()` for a guest error.
    public func guestKilled(_ why: String) { kill(.vmDead(why)) }
}
