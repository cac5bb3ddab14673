import CostModel
import MemoryModel

/// The seam between the guest's TDCALLs and the host: the TDX module's
/// answer to TDG.MEM.PAGE.ACCEPT and the host's reaction to the EPT
/// violations it causes. `PlaceholderTDXHost` implements it with a simple
/// mapping policy; the real S-EPT/KVM model (issue 4) implements the same
/// protocol.
///
/// Frame numbers are guest frame numbers (4K units); the host converts them
/// to host frames internally.
public protocol TDXHost: AnyObject {
    /// TDG.MEM.PAGE.ACCEPT (`tdg_mem_page_accept.c`): the module's answer for
    /// one TDCALL at `gfn` and `level`, applying its state change on success.
    func accept(gfn: UInt64, level: PageLevel) -> AcceptCallResult
    /// KVM's handling of an ACCEPT-type EPT violation
    /// (`tdx_handle_ept_violation()` → fault → AUG). Returns the host
    /// operations it performed, to be charged to the faulting vCPU.
    func handleEPTViolation(gfn: UInt64, acceptLevel: PageLevel) -> OpCounts
    /// True if every frame in `frames` is accepted (guest-accessible).
    func isAccessible(_ frames: Range<UInt64>) -> Bool
    /// Frames backed by host memory, plus S-EPT pages, in 4K pages.
    var committedPages: UInt64 { get }

    // Bulk support: identical chunks are replayed instead of re-simulated.
    /// A value identifying everything the host's answers for the 2M chunk at
    /// `gfn` depend on, or nil if the chunk is not uniform.
    func chunkSignature(gfn: UInt64) -> ReplayKey?
    /// How many consecutive 2M chunks from `gfn` (at most `limit`) share
    /// `signature`, so that each would behave exactly like the first.
    func chunksSharing(_ signature: ReplayKey, from gfn: UInt64, limit: UInt64) -> UInt64
    /// The uniform state of the 2M chunk at `gfn` after it was stepped, or nil.
    func chunkState(gfn: UInt64) -> ReplayKey?
    /// Puts `count` chunks from `gfn` into `state`, as stepping each of them
    /// (from the same signature) would have, and returns the operations
    /// that depend on context outside the chunk (upper S-EPT tables the
    /// replayed chunks needed), which the caller charges on top of the memo.
    func replay(state: ReplayKey, to gfn: UInt64, count: UInt64) -> OpCounts
    /// Running total of the context-dependent operations (upper S-EPT table
    /// adds) this host has performed, stepped or replayed. A memo of stepped
    /// work subtracts the part of this total that accrued while stepping,
    /// since `replay` recomputes it for each span.
    var contextOperations: OpCounts { get }
}

/// A placeholder host: KVM maps private memory with `policy`, and the TDX
/// module follows the ACCEPT case table of `check_tdaccept_failure()` for
/// the states it keeps.
public final class PlaceholderTDXHost: TDXHost {
    public let policy: HostMappingPolicy
    /// S-EPT leaf state per guest frame.
    public private(set) var leaves = IntervalMap<SEPTLeaf>(initial: .unmapped)
    /// Whether the S-EPT page (PD) for a 1G region exists, by 1G index.
    private var pdPresent = IntervalMap<Bool>(initial: false)
    /// Whether the PDPT page for a 512G region exists, by 512G index.
    private var pdptPresent = IntervalMap<Bool>(initial: false)
    public private(set) var contextOperations = OpCounts()

    public init(policy: HostMappingPolicy) { self.policy = policy }

    /// TDH.MEM.PAGE.ADD of `frames` at build time (firmware volumes, TD HOB,
    /// temporary memory): the pages become MAPPED 4K leaves.
    public func pageAdd(_ frames: Range<UInt64>) -> OpCounts {
        var c = OpCounts()
        var g = alignDown(frames.lowerBound, 512)
        while g < frames.upperBound {
            c.add(ensureTables(gfn: g))
            if leaves.value(at: g) == .unmapped && leaves.run(containing: g).range.upperBound >= g + 512 {
                leaves.assign(g..<(g + 512), .freeUnderTable)
                c.add(.tdxSeptAdd)
            }
            g += 512
        }
        leaves.assign(frames, .mapped4K)
        c.add(.tdxPageAdd, UInt64(frames.count))
        return c
    }

    public func accept(gfn: UInt64, level: PageLevel) -> AcceptCallResult {
        // verify_page_info_input(gpa, LVL_PT, LVL_PD): 1G and misaligned are invalid.
        guard level != .size1G, gfn % level.pages == 0 else { return .status(.operandInvalid) }
        if level == .size2M {
            let runs = leaves.runs(in: gfn..<(gfn + 512))
            if runs.count == 1 {
                switch runs[0].value {
                case .unmapped: return .eptViolation(acceptLevel: .size2M)
                case .pending2M:
                    leaves.assign(gfn..<(gfn + 512), .mapped2M)
                    return .status(.success)
                case .mapped2M: return .status(.pageAlreadyAccepted)
                default: break
                }
            }
            // A non-free, non-leaf entry at the requested level: the host mapped smaller.
            return .status(.pageSizeMismatch)
        }
        switch leaves.value(at: gfn) {
        case .pending4K:
            leaves.assign(gfn..<(gfn + 1), .mapped4K)
            return .status(.success)
        case .mapped4K, .mapped2M:
            return .status(.pageAlreadyAccepted)
        case .pending2M, .unmapped, .freeUnderTable:
            return .eptViolation(acceptLevel: .size4K)
        }
    }

    /// Adds the PDPT and PD S-EPT pages above `gfn` if missing (TDH.MEM.SEPT.ADD).
    private func ensureTables(gfn: UInt64) -> OpCounts {
        var c = OpCounts()
        let g512 = gfn >> 27, g1 = gfn >> 18
        if !pdptPresent.value(at: g512) {
            pdptPresent.assign(g512..<(g512 + 1), true); c.add(.tdxSeptAdd)
        }
        if !pdPresent.value(at: g1) {
            pdPresent.assign(g1..<(g1 + 1), true); c.add(.tdxSeptAdd)
        }
        contextOperations.add(c)
        return c
    }

    public func handleEPTViolation(gfn: UInt64, acceptLevel: PageLevel) -> OpCounts {
        var c = OpCounts()
        c.add(.tdxEPTViolationExit)
        c.add(ensureTables(gfn: gfn))
        let chunk = alignDown(gfn, 512)
        let chunkRange = chunk..<(chunk + 512)
        let state = leaves.value(at: gfn)
        let chunkUnmapped = leaves.allSatisfy(in: chunkRange) { $0 == .unmapped }
        if policy == .map2M, acceptLevel == .size2M, chunkUnmapped {
            leaves.assign(chunkRange, .pending2M)
            c.add(.tdxAug2M)
            return c
        }
        switch state {
        case .pending2M:
            // The guest accepts at 4K inside a pending 2M leaf: split it.
            leaves.assign(chunkRange, .pending4K)
            c.add(.tdxDemote2M); c.add(.tdxSeptAdd)
        case .unmapped:
            leaves.assign(chunkRange, .freeUnderTable)
            c.add(.tdxSeptAdd)
            leaves.assign(gfn..<(gfn + 1), .pending4K)
            c.add(.tdxAug4K)
        case .freeUnderTable:
            leaves.assign(gfn..<(gfn + 1), .pending4K)
            c.add(.tdxAug4K)
        case .pending4K, .mapped4K, .mapped2M:
            break  // Nothing to do: the TDCALL will now succeed or report.
        }
        return c
    }

    public func isAccessible(_ frames: Range<UInt64>) -> Bool {
        leaves.allSatisfy(in: frames) { $0.isAccessible }
    }

    /// S-EPT pages in use, derived from the state: one 4K table per 2M
    /// range mapped at 4K, one PD per 1G region and one PDPT per 512G region
    /// that the host has touched.
    public var septPages: UInt64 {
        var tables: UInt64 = 0
        var lastChunk: UInt64? = nil
        for (r, v) in leaves.runs(in: 0..<UInt64.max) where v == .freeUnderTable || v == .pending4K || v == .mapped4K {
            var first = r.lowerBound / 512
            let last = (r.upperBound - 1) / 512
            if first == lastChunk { first += 1 }
            if first <= last { tables += last - first + 1 }
            lastChunk = last
        }
        return tables + pdPresent.measure(in: 0..<UInt64.max) { $0 } + pdptPresent.measure(in: 0..<UInt64.max) { $0 }
    }

    public var committedPages: UInt64 {
        leaves.measure(in: 0..<UInt64.max) { $0.isBacked } + septPages
    }

    /// The leaf state of the chunk. Whether the PD/PDPT above it exist is
    /// left out: it changes only the table adds, which `replay` recomputes.
    public func chunkSignature(gfn: UInt64) -> ReplayKey? {
        let run = leaves.run(containing: gfn)
        guard run.range.upperBound >= gfn + 512 else { return nil }
        return ReplayKey(state: UInt64(run.value.rawValue))
    }

    public func chunksSharing(_ signature: ReplayKey, from gfn: UInt64, limit: UInt64) -> UInt64 {
        guard chunkSignature(gfn: gfn) == signature else { return 0 }
        return min(limit, (leaves.run(containing: gfn).range.upperBound - gfn) / 512)
    }

    public func chunkState(gfn: UInt64) -> ReplayKey? {
        let run = leaves.run(containing: gfn)
        guard run.range.upperBound >= gfn + 512 else { return nil }
        return ReplayKey(state: UInt64(run.value.rawValue))
    }

    public func replay(state: ReplayKey, to gfn: UInt64, count: UInt64) -> OpCounts {
        guard count > 0, let leaf = SEPTLeaf(rawValue: UInt8(truncatingIfNeeded: state.state)) else { return OpCounts() }
        let frames = gfn..<(gfn + count * 512)
        var c = OpCounts()
        // Stepping each chunk would have added the PDPT and PD above it
        // where missing (TDH.MEM.SEPT.ADD, see ensureTables()).
        if leaf != .unmapped {
            c.add(addMissingTables(frames.lowerBound >> 27..<((frames.upperBound - 1) >> 27 + 1), in: &pdptPresent))
            c.add(addMissingTables(frames.lowerBound >> 18..<((frames.upperBound - 1) >> 18 + 1), in: &pdPresent))
            contextOperations.add(c)
        }
        leaves.assign(frames, leaf)
        return c
    }

    /// Marks every region index in `regions` present, counting a SEPT.ADD
    /// for each that was missing.
    private func addMissingTables(_ regions: Range<UInt64>, in map: inout IntervalMap<Bool>) -> OpCounts {
        var c = OpCounts()
        let missing = UInt64(regions.count) - map.measure(in: regions) { $0 }
        if missing > 0 { c.add(.tdxSeptAdd, missing); map.assign(regions, true) }
        return c
    }
}
