public import MemoryModel
import TDXModule

/// The race behind the TDX module's host priority (TDX_1.5.01 `tdx_locks.h`;
/// `TrustDomain+HostPriority.swift`), as it happens on a real host: vCPU A is
/// inside TDG.MEM.PAGE.ACCEPT on an S-EPT entry (holding its TDEL lock: the
/// module takes it for every ACCEPT whose walk reaches the entry, also one
/// that then exits with an EPT violation because nothing is mapped there yet),
/// while vCPU B faults on a GPA of the same entry and KVM's fault path issues
/// TDH.MEM.PAGE.AUG for it. AUG's try-lock fails: the module sets the entry's
/// host-priority bit and returns TDX_OPERAND_BUSY; KVM returns -EBUSY and the
/// TDP MMU RET_PF_RETRY (`tdx_mem_page_aug()`), so vCPU B re-enters the guest
/// and faults again later. Until that retry (or any host SEAMCALL) takes the
/// entry lock, every guest ACCEPT of the entry gets
/// TDX_OPERAND_BUSY_HOST_PRIORITY, which the guest sees as TDX_OPERAND_BUSY.
extension TDXVM {
    /// Guest ACCEPTs the module refused for host priority (seen as TDX_OPERAND_BUSY).
    public var acceptsRefusedForHostPriority: UInt64 { module.hostPriorityRefusals }
    /// 2M ACCEPTs stopped by a pending interrupt (each a TD exit and re-entry).
    public var acceptsInterrupted: UInt64 { module.acceptInterruptions }

    /// The most frames one `contend` command covers: one 2M range.
    public static let maxContendFrames: UInt64 = PageLevel.size2M.pages

    /// `contend RANGE`: for each unmapped private entry of `frames` (the 2M
    /// entry where KVM would map 2M, else each 4K entry), a vCPU's fault runs
    /// KVM's private fault path while `acceptor` holds the entry in
    /// TDG.MEM.PAGE.ACCEPT: AUG is BUSY, the entry gets host priority, the
    /// fault returns RET_PF_RETRY and the faulting vCPU's retry is left for
    /// later (the scenario's next fault on the GPA). Entries already mapped
    /// are left alone: the host's other SEAMCALLs on a mapped entry (BLOCK,
    /// DEMOTE, REMOVE) go through `tdh_do_no_vcpus()`, whose kick and
    /// immediate retry take the lock and clear the bit before any guest
    /// ACCEPT can see it.
    /// - Returns: how many entries were left with host priority.
    /// - Complexity: O(frames × log runs); at most `maxContendFrames` frames.
    @discardableResult
    public func hostContend(_ frames: Range<GuestFrameNumber>, acceptor: Int) -> Int {
        var n = 0
        var g = frames.lowerBound
        while g < frames.upperBound, outcome == .ok {
            defer { g = module.hostPriority(gfn: g, level: .size2M) ? g.region2M.frames.upperBound : g + 1 }
            guard tdx.isRunnable, slot(g) != nil, attributes.isPrivate(g), !isMapped(g) else { continue }
            acceptInFlight = acceptor
            let r = privateFault(gfn: g, acceptLevel: nil)
            acceptInFlight = nil
            // vCPU A's ACCEPT completes (or exits) and drops the entry lock.
            module.finishGuestAccepts()
            guard r == .retry else { continue }
            counters.bump(.faultRetries)
            n += 1
            let level: PageLevel = module.hostPriority(gfn: g, level: .size2M) ? .size2M : .size4K
            note("contend \(g.alignedDown(to: level).address) \(level): AUG met vCPU \(acceptor)'s ACCEPT: TDX_OPERAND_BUSY, host priority set, RET_PF_RETRY (retry pending)")
        }
        return n
    }

    /// Inside `hostContend`'s fault: the accepting vCPU holds the entry the
    /// AUG at (`gfn`, `level`) is about to lock.
    func raceAcceptInFlight(_ gfn: GuestFrameNumber, _ level: PageLevel) {
        if let v = acceptInFlight { module.hold(.guestEntry(gfn: gfn, level: level), vcpu: v) }
    }
}
