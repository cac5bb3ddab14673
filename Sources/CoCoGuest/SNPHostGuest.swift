public import MemoryModel
public import SNP

/// A Linux SNP guest's memory-state changes against an SNP host
/// (`SNPGuestDoor`): `snp_accept_memory()` and `set_memory_encrypted()` /
/// `set_memory_decrypted()`, all through `__set_pages_state()`
/// (arch/x86/coco/sev/core.c), and an SVSM's RMPADJUST after validation.
/// A PVALIDATE or RMPADJUST that fails terminates the guest
/// (GHCB_TERM_PVALIDATE), as Linux's `pvalidate_pages()` does.
public final class SNPHostGuest {
    public let host: any SNPGuestDoorReplay
    /// VMGEXIT_PSC_MAX_ENTRY: the entries of one `snp_psc_desc` Linux fills.
    public static let pscMaxEntries = 64

    /// Offer the host replay windows over whole descriptors (off: every
    /// request is made, for the tests that hold both equal).
    public var replayWindows = true

    public init(host: any SNPGuestDoorReplay) { self.host = host }

    /// Linux's `sev_evict_cache()` per 4K page validated (7b306dfa326f), in
    /// vCPU picoseconds, for the host trace's clock only (the acceptor
    /// charges the eviction to the guest's clock at the end of the call):
    /// `pvalidate_pages()` runs all of a descriptor's PVALIDATEs, then
    /// evicts its private entries, so the next descriptor's exits come after
    /// that eviction. 0: no eviction (edk2, a CPU with COHERENCY_SFW_NO).
    package var evictTracePicoseconds: UInt64 = 0

    /// The host trace's clock moves on by the eviction of `pages` validated
    /// pages; `endsReplay` after a replayed window of descriptors.
    /// - Complexity: O(1), O(operation kinds) with `endsReplay`.
    func traceEviction(pages: UInt64, endsReplay: Bool = false) {
        guard evictTracePicoseconds > 0, let clock = host as? any SNPHostTraceClock else { return }
        clock.traceGuestWork(picoseconds: evictTracePicoseconds &* pages, endsReplay: endsReplay)
    }

    /// The guest's own view of which frames it made shared (the C-bit its
    /// page tables give them): set by a completed `makeShared`, cleared by a
    /// completed `accept`. All private at start, as QEMU starts an SNP guest.
    /// It is what the guest's accesses use, whatever the host's attributes say.
    public private(set) var madeShared = IntervalMap<GuestFrameNumber, Bool>(initial: false)

    /// The guest's loads and stores to `frames`, each with the C-bit of
    /// `madeShared`. Returns why the guest died, or nil.
    /// - Complexity: O(runs of `madeShared` in `frames`) host accesses.
    public func access(_ frames: Range<GuestFrameNumber>) -> String? {
        for (r, shared) in madeShared.runs(in: frames) {
            if let why = host.access(r, cBit: !shared) { return why }
        }
        return nil
    }

    /// Which PVALIDATE sizes a driver uses.
    public enum Driver: String, Sendable, CaseIterable {
        /// Linux: 2M entries where the range is 2M-aligned with 2M left, else 4K.
        case linux
        /// edk2's `PvalidateRange` at 4K only (TDVF-like `4k` in host scenarios).
        case fourK = "4k"
    }

    /// The next entry `__set_pages_state()` builds at `g` for `frames`:
    /// 2M when `g` is 2M-aligned with 2M left (Linux), else 4K.
    func entry(at g: GuestFrameNumber, in frames: Range<GuestFrameNumber>, toPrivate: Bool, driver: Driver) -> PSCEntry {
        let two = driver == .linux && g.isAligned(to: .size2M) && frames.upperBound - g >= PageLevel.size2M.pages
        return PSCEntry(gfn: g, level: two ? .size2M : .size4K, toPrivate: toPrivate)
    }

    /// `snp_accept_memory()`: `set_pages_state(SNP_PAGE_STATE_PRIVATE)`,
    /// one PSC VMGEXIT per 64 entries, each followed by PVALIDATE of its
    /// entries (a 2M FAIL_SIZEMISMATCH falls back to 512 4K PVALIDATEs).
    /// Returns why the guest died, or nil.
    /// - Complexity: O(entries × log runs) plus the host's work; whole
    ///   descriptors of 2M entries are offered to the host as one replay
    ///   window, so a uniform range costs one descriptor's work.
    public func accept(_ frames: Range<GuestFrameNumber>, driver: Driver = .linux) -> String? {
        changeState(frames, toPrivate: true, driver: driver)
    }

    /// VMGEXIT_PSC_MAX_COUNT: the entries of one descriptor edk2's
    /// `InternalSetPageState` fills (253).
    public static let edk2PSCMaxEntries = 253

    /// edk2's `MemEncryptSevSnpPreValidateSystemRam` → `InternalSetPageState`
    /// to private: Linux's entry sizes (2M where aligned with 2M left), up to
    /// 253 entries a descriptor, the same PVALIDATE rules.
    /// - Complexity: as `accept`.
    public func acceptEDK2(_ frames: Range<GuestFrameNumber>) -> String? {
        changeState(frames, toPrivate: true, driver: .linux, maxEntries: Self.edk2PSCMaxEntries)
    }

    /// The guest side of a replayed accept (`SNPHostAcceptor`'s span
    /// replay): the frames are private in the guest's page tables, as every
    /// successful accept leaves them (`madeShared` cleared).
    /// - Complexity: O(log runs).
    package func acceptedByReplay(_ frames: Range<GuestFrameNumber>) { madeShared.assign(frames, false) }

    /// Linux's `__page_state_change()` before a GHCB exists (EFI stub,
    /// decompressor from d54d610243a4): per 4K page a GHCB MSR page-state
    /// request to private (a response error terminates: GHCB_TERM_PSC) and a
    /// 4K PVALIDATE (`pvalidate_4k_page()`, a failure terminates:
    /// GHCB_TERM_PVALIDATE).
    /// - Returns: why the guest died, or nil; and the frames validated.
    /// - Complexity: the host's `msrValidate4K`.
    public func acceptMSR(_ frames: Range<GuestFrameNumber>) -> (why: String?, validated: UInt64) {
        guard let (g, st, r) = host.msrValidate4K(frames) else {
            madeShared.assign(frames, false)
            return (nil, frames.length)
        }
        let done = g - frames.lowerBound
        guard st == .ok else { return ("SNP: page state change of \(g.address) failed (\(st)): the guest terminated itself (GHCB_TERM_PSC)", done) }
        return (terminated(g, r), done)
    }

    /// `early_set_pages_state()` to shared (arch/x86/coco/sev/core.c): for
    /// each 4K page in ascending order, PVALIDATE with validate 0
    /// (`pvalidate_4k_page()`, a failure terminates: GHCB_TERM_PVALIDATE) and
    /// then a GHCB MSR page-state request to shared (a response error
    /// terminates: GHCB_TERM_PSC). The pages done before a failure are shared.
    /// Returns why the guest died, or nil.
    /// - Complexity: O(pages) host requests.
    public func makeSharedMSR(_ frames: Range<GuestFrameNumber>) -> String? {
        for g in frames {
            let r = host.pvalidate(gfn: g, level: .size4K, validate: false)
            guard r == .success else { madeShared.assign(frames.lowerBound..<g, true); return terminated(g, r) }
            let st = host.msrPageStateChange(gfn: g, toPrivate: false)
            guard st == .ok else {
                madeShared.assign(frames.lowerBound..<g, true)
                return "SNP: page state change of \(g.address) to shared failed (\(st)): the guest terminated itself (GHCB_TERM_PSC)"
            }
        }
        madeShared.assign(frames, true)
        return nil
    }

    /// `set_memory_decrypted()`: PVALIDATE rescinds each entry, then the PSC
    /// makes it shared (`__set_pages_state()` rescinds before the VMGEXIT).
    public func makeShared(_ frames: Range<GuestFrameNumber>, driver: Driver = .linux) -> String? {
        changeState(frames, toPrivate: false, driver: driver)
    }

    /// The descriptors of `frames`, built one at a time (a 16 TiB range is
    /// 8 M entries: never held at once).
    func changeState(_ frames: Range<GuestFrameNumber>, toPrivate: Bool, driver: Driver, maxEntries: Int = pscMaxEntries) -> String? {
        let why = changeStateOfDescriptors(frames, toPrivate: toPrivate, driver: driver, maxEntries: maxEntries)
        if why == nil { madeShared.assign(frames, !toPrivate) }
        return why
    }

    func changeStateOfDescriptors(_ frames: Range<GuestFrameNumber>, toPrivate: Bool, driver: Driver, maxEntries: Int) -> String? {
        let unit = UInt64(maxEntries) * PageLevel.size2M.pages
        // From the first 2M-aligned frame to the last whole 2M range, every entry is 2M.
        let twoMEnd = driver == .linux ? frames.upperBound.alignedDown(to: .size2M) : frames.lowerBound
        var g = frames.lowerBound
        while g < frames.upperBound {
            var desc: [PSCEntry] = []
            var h = g
            while desc.count < maxEntries, h < frames.upperBound {
                let e = entry(at: h, in: frames, toPrivate: toPrivate, driver: driver)
                desc.append(e)
                h = h + e.level.pages
            }
            // Whole descriptors of 2M entries each make the same requests:
            // offer the host the ones that follow as one replay window.
            let full = replayWindows && desc.count == maxEntries && desc.allSatisfy { $0.level == .size2M }
            let following = full && twoMEnd > h ? (twoMEnd - h) / unit : 0
            if following > 0 { host.beginReplayWindow(Range(start: g, count: unit * (following + 1))) }
            if let why = changeState(desc: desc, toPrivate: toPrivate) { return why }
            if following > 0, host.finishReplayWindow(stepped: Range(start: g, count: unit)) {
                // The replayed descriptors' evictions, each after its PVALIDATEs.
                if toPrivate { traceEviction(pages: unit * following, endsReplay: true) }
                g = g + unit * (following + 1)
                continue
            }
            g = h
        }
        return nil
    }

    /// One descriptor: the PSC VMGEXIT and its PVALIDATEs, in
    /// `__set_pages_state()`'s order.
    func changeState(desc: [PSCEntry], toPrivate: Bool) -> String? {
        if !toPrivate, let why = pvalidate(desc, validate: false) { return why }
        let st = host.pageStateChange(desc)
        if st == .processingWentBackward {
            return "SNP: PSC processing going backward (vmgexit_psc() checks the header's cur_entry and end_entry the hypervisor wrote back): the guest terminated itself (GHCB_TERM_PSC)"
        }
        guard st == .ok else { return "SNP: page state change failed (\(st)): the guest terminated itself (GHCB_TERM_PSC)" }
        if toPrivate, let why = pvalidate(desc, validate: true) { return why }
        // `pvalidate_pages()`: then `sev_evict_cache()` of each private entry.
        if toPrivate { traceEviction(pages: desc.reduce(0) { $0 + $1.level.pages }) }
        return nil
    }

    /// `pvalidate_pages()` of one descriptor's entries.
    func pvalidate(_ desc: [PSCEntry], validate: Bool) -> String? {
        for e in desc {
            let r = host.pvalidate(gfn: e.gfn, level: e.level, validate: validate)
            if r == .failSizeMismatch, e.level == .size2M {
                let frames = Range(start: e.gfn, count: PageLevel.size2M.pages)
                if validate {
                    guard let (g, res) = host.pvalidate4K(frames) else { continue }
                    return terminated(g, res)
                }
                for g in frames {
                    let r4 = host.pvalidate(gfn: g, level: .size4K, validate: false)
                    if r4 != .success { return terminated(g, r4) }
                }
                continue
            }
            if r != .success { return terminated(e.gfn, r) }
        }
        return nil
    }

    func terminated(_ g: GuestFrameNumber, _ r: PvalidateResult?) -> String {
        guard let r else { return "SNP: PVALIDATE of \(g.address) never completes: the host does not resolve its nested page faults" }
        return "SNP: PVALIDATE of \(g.address) failed (\(r.rawValue)): the guest terminated itself (GHCB_TERM_PVALIDATE)"
    }

    /// An SVSM at VMPL0 (COCONUT-SVSM after validating memory for the guest
    /// OS at VMPL1) granting `vmpl` the permissions `perms` with RMPADJUST
    /// at 2M where the range allows, falling back to 4K on FAIL_SIZEMISMATCH.
    public func rmpadjust(_ frames: Range<GuestFrameNumber>, vmpl: Int, perms: UInt8) -> String? {
        var g = frames.lowerBound
        while g < frames.upperBound {
            let e = entry(at: g, in: frames, toPrivate: true, driver: .linux)
            g = g + e.level.pages
            let r = host.rmpadjust(gfn: e.gfn, level: e.level, vmpl: vmpl, perms: perms)
            if r == .failSizeMismatch, e.level == .size2M {
                for g in Range(start: e.gfn, count: PageLevel.size2M.pages) {
                    let r4 = host.rmpadjust(gfn: g, level: .size4K, vmpl: vmpl, perms: perms)
                    if r4 != .success { return "SNP: RMPADJUST of \(g.address) failed (\(r4.map { String($0.rawValue) } ?? "never completes"))" }
                }
            } else if r != .success {
                return "SNP: RMPADJUST of \(e.gfn.address) failed (\(r.map { String($0.rawValue) } ?? "never completes"))"
            }
        }
        return nil
    }
}
