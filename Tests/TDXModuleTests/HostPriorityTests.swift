import MemoryModel
import TDXModule
import Testing

/// Host priority on S-EPT entry locks and the interruptible 2M ACCEPT, as
/// TDX_1.5.01 has them (`tdx_locks.h`, `tdg_mem_page_accept.c`,
/// `tdx_td_dispatcher.c`; issue 18 §1).
@Suite struct HostPriorityTests {
    /// A runnable TD with a PENDING 2M leaf at GFN 0 and a 4K table at 0x200
    /// with a PENDING page at 0x205.
    func td() -> TrustDomain {
        let td = runnableTD()
        #expect(td.pageAug(gfn: GFN(0), level: .size2M, hfn: HFN(512)) == .success)
        #expect(td.septAdd(gfn: GFN(0x200), entryLevel: 2, pageHFN: HFN(9)) == .success)
        #expect(td.pageAug(gfn: GFN(0x205), level: .size4K, hfn: HFN(0x2005)) == .success)
        return td
    }

    /// `sept_lock_acquire_host()` failing sets TDHP; the guest's next ACCEPT
    /// of the entry gets TDX_OPERAND_BUSY_HOST_PRIORITY, which the TD
    /// dispatcher hands to the guest as TDX_OPERAND_BUSY, before any state
    /// check; the host's next lock of the entry clears it.
    @Test func aHostTryLockThatFailsGivesTheEntryHostPriorityUntilTheHostLocksIt() {
        let t = td()
        // vCPU 1 is inside ACCEPT on the 4K entry; the host's BLOCK meets it.
        t.hold(.guestEntry(gfn: GFN(0x205), level: .size4K), vcpu: 0)
        #expect(t.rangeBlock(gfn: GFN(0x205), level: .size4K) == .operandBusy)
        #expect(t.hostPriority(gfn: GFN(0x205), level: .size4K))
        #expect(!t.hostPriority(gfn: GFN(0x206), level: .size4K))
        t.finishGuestAccepts()
        // The guest's ACCEPT now fails, and keeps failing: the guest gets
        // no priority back by retrying.
        #expect(t.accept(gfn: GFN(0x205), level: .size4K) == .status(.operandBusy))
        #expect(t.accept(gfn: GFN(0x205), level: .size4K) == .status(.operandBusy))
        #expect(t.hostPriorityRefusals == 2)
        #expect(t.calls[leaf: .tdgMemPageAccept, status: .operandBusyHostPriority] == 0)
        #expect(t.entry(gfn: GFN(0x205), level: .size4K).state == .pending)
        // The other entries are not affected.
        #expect(t.accept(gfn: GFN(0), level: .size2M) == .status(.success))
        // The host's retry takes the lock: the bit is cleared.
        #expect(t.rangeBlock(gfn: GFN(0x205), level: .size4K) == .success)
        #expect(!t.hostPriority(gfn: GFN(0x205), level: .size4K))
        #expect(t.rangeUnblock(gfn: GFN(0x205), level: .size4K) == .tlbTrackingNotDone)
    }

    /// The tree lock (zero-step mitigation) is a plain shared/exclusive lock:
    /// BUSY, but no host priority on any entry.
    @Test func theTreeLockSetsNoHostPriority() {
        let t = td()
        t.hold(.treeLock, vcpu: 0)
        #expect(t.rangeBlock(gfn: GFN(0x205), level: .size4K) == .operandBusy)
        t.kickAll()
        #expect(!t.anyHostPriority(GFN(0) ..< GFN(0x400)))
    }

    /// `check_tdaccept_failure()` takes the entry lock right after a walk that
    /// reached the level: host priority shows even where the state alone
    /// would give SIZE_MISMATCH; a walk that stopped above the level (case
    /// 1.2, an EPT violation) never reaches the lock.
    @Test func theGuestLockComesBeforeTheStateChecks() {
        let t = td()
        // The 2M entry at 0x200 is NL_MAPPED (a 4K table): SIZE_MISMATCH at 2M...
        #expect(t.accept(gfn: GFN(0x200), level: .size2M) == .status(.pageSizeMismatch))
        // ...unless the host lost a race on it (a DEMOTE's or SEPT.ADD's try-lock).
        t.hold(.guestEntry(gfn: GFN(0x200), level: .size2M), vcpu: 0)
        #expect(t.promote(gfn: GFN(0x200), level: .size2M) == .operandBusy)
        t.finishGuestAccepts()
        #expect(t.accept(gfn: GFN(0x200), level: .size2M) == .status(.operandBusy))
        // A 4K ACCEPT under the PENDING 2M leaf at 0 stops above the level.
        t.hold(.guestEntry(gfn: GFN(0), level: .size2M), vcpu: 0)
        #expect(t.rangeBlock(gfn: GFN(0), level: .size2M) == .operandBusy)
        t.finishGuestAccepts()
        #expect(t.accept(gfn: GFN(3), level: .size4K) == .eptViolation(acceptLevel: .size4K))
        #expect(t.accept(gfn: GFN(0), level: .size2M) == .status(.operandBusy))
    }

    /// Another vCPU holding the entry (its ACCEPT in flight) is TDX_OPERAND_BUSY
    /// for the guest too, without host priority.
    @Test func anEntryHeldByAnotherACCEPTIsBusy() {
        let t = td()
        t.hold(.guestEntry(gfn: GFN(0x205), level: .size4K), vcpu: 0)
        #expect(t.accept(gfn: GFN(0x205), level: .size4K) == .status(.operandBusy))
        #expect(t.hostPriorityRefusals == 0)
    }

    /// TDG.MEM.PAGE.ACCEPT at 2M initialises 4K chunks, advancing the entry's
    /// ACCEPT_COUNTER, and checks for a pending interrupt after each chunk
    /// but the last: an interrupted call leaves the page PENDING with the
    /// counter, and the re-executed call resumes there.
    @Test func anInterrupted2MAcceptResumesAtItsCounter() {
        let t = td()
        #expect(t.accept(gfn: GFN(0), level: .size2M, guestInterruptPending: true) == .interrupted(chunksDone: 1))
        #expect(t.accept(gfn: GFN(0), level: .size2M, guestInterruptPending: true) == .interrupted(chunksDone: 2))
        #expect(t.entry(gfn: GFN(0), level: .size2M).state == .pending)
        #expect(t.acceptCounter.value(at: GFN(0).region2M) == 2)
        #expect(t.acceptInterruptions == 2)
        // No status was returned to the guest for the interrupted calls.
        #expect(t.calls.total(.tdgMemPageAccept) == 0)
        #expect(t.accept(gfn: GFN(0), level: .size2M) == .status(.success))
        #expect(t.acceptCounter.value(at: GFN(0).region2M) == 0)
        #expect(t.entry(gfn: GFN(0), level: .size2M).state == .mapped)
    }

    /// The last chunk never checks: a call that starts at chunk 511 completes
    /// whatever is pending; 4K accepts are not interruptible.
    @Test func theLastChunkAndA4KAcceptAreNotInterrupted() {
        let t = td()
        for k in 1 ... 511 {
            #expect(t.accept(gfn: GFN(0), level: .size2M, guestInterruptPending: true) == .interrupted(chunksDone: k))
        }
        #expect(t.accept(gfn: GFN(0), level: .size2M, guestInterruptPending: true) == .status(.success))
        #expect(t.accept(gfn: GFN(0x205), level: .size4K, guestInterruptPending: true) == .status(.success))
    }

    /// `sept_cleanup_if_pending()`: BLOCK (and DEMOTE, REMOVE) of the pending
    /// 2M leaf zero its counter, so the accept after an UNBLOCK starts over.
    @Test func blockingThePendingLeafResetsTheCounter() {
        let t = td()
        _ = t.accept(gfn: GFN(0), level: .size2M, guestInterruptPending: true)
        _ = t.accept(gfn: GFN(0), level: .size2M, guestInterruptPending: true)
        #expect(t.rangeBlock(gfn: GFN(0), level: .size2M) == .success)
        #expect(t.acceptCounter.value(at: GFN(0).region2M) == 0)
        #expect(t.track() == .success); t.kickAll()
        #expect(t.rangeUnblock(gfn: GFN(0), level: .size2M) == .success)
        #expect(t.accept(gfn: GFN(0), level: .size2M, guestInterruptPending: true) == .interrupted(chunksDone: 1))
    }
}
