import MemoryModel
import TDXModule
import Testing

/// A runnable TD with every upper table present and one vCPU in the guest.
func runnableTD(_ f: TDXModuleFeatures = TDXModuleFeatures()) -> TrustDomain {
    let td = TrustDomain(features: f, vcpus: 1)
    #expect(td.septAdd(gfn: GFN(0), entryLevel: 4, pageHFN: HFN(1 << 30)) == .success)
    #expect(td.septAdd(gfn: GFN(0), entryLevel: 3, pageHFN: HFN(1 << 30 | 1)) == .success)
    td.mrFinalize()
    td.enter(vcpu: 0)
    return td
}

@Suite struct TDXModuleTests {
    @Test func acceptCaseTableFollowsModuleCodeAndSpecOption() {
        for cases in AcceptWalkCases.allCases {
            var f = TDXModuleFeatures(); f.acceptWalkCases = cases
            let td = runnableTD(f)
            #expect(td.accept(gfn: GFN(0), level: .size2M) == .eptViolation(acceptLevel: .size2M))  // nothing mapped
            #expect(td.accept(gfn: GFN(0), level: .size1G) == .status(.operandInvalid))
            #expect(td.pageAug(gfn: GFN(0), level: .size2M, hfn: HFN(512)) == .success)
            #expect(td.accept(gfn: GFN(5), level: .size4K) == .eptViolation(acceptLevel: .size4K))  // 2M PENDING above
            #expect(td.accept(gfn: GFN(0), level: .size2M) == .status(.success))
            #expect(td.accept(gfn: GFN(0), level: .size2M) == .status(.pageAlreadyAccepted))
            let above: TDXStatus = cases == .moduleCode ? .pageAlreadyAccepted : .pageSizeMismatch
            #expect(td.accept(gfn: GFN(5), level: .size4K) == .status(above))
            // Host mapped 4K, guest accepts 2M: SIZE_MISMATCH.
            #expect(td.septAdd(gfn: GFN(512), entryLevel: 2, pageHFN: HFN(1 << 30 | 2)) == .success)
            #expect(td.pageAug(gfn: GFN(512), level: .size4K, hfn: HFN(4096)) == .success)
            #expect(td.accept(gfn: GFN(512), level: .size2M) == .status(.pageSizeMismatch))
            #expect(td.accept(gfn: GFN(512), level: .size4K) == .status(.success))
            #expect(td.isAccessible(Range(raw: 0..<513)) && !td.isAccessible(Range(raw: 0..<514)))
        }
    }

    @Test func demoteNeedsBlockedAndTrackedAndTheEpochRules() {
        let td = runnableTD()
        #expect(td.pageAug(gfn: GFN(0), level: .size2M, hfn: HFN(512)) == .success)
        #expect(td.demote(gfn: GFN(0), level: .size2M, pageHFN: HFN(9), pamtPagesGiven: true) == .gpaRangeNotBlocked)
        #expect(td.rangeBlock(gfn: GFN(0), level: .size2M) == .success)
        #expect(td.rangeBlock(gfn: GFN(0), level: .size2M) == .gpaRangeAlreadyBlocked)
        #expect(td.demote(gfn: GFN(0), level: .size2M, pageHFN: HFN(9), pamtPagesGiven: true) == .tlbTrackingNotDone)
        #expect(td.track() == .success)
        // vCPU 0 still runs in the blocking epoch: not tracked, and a second TRACK is busy.
        #expect(td.demote(gfn: GFN(0), level: .size2M, pageHFN: HFN(9), pamtPagesGiven: true) == .tlbTrackingNotDone)
        #expect(td.track() == .previousTLBEpochBusy)
        #expect(td.kickAll() == 1)
        td.hold(.guestEntry(gfn: GFN(0), level: .size2M), vcpu: 0)
        #expect(td.demote(gfn: GFN(0), level: .size2M, pageHFN: HFN(9), pamtPagesGiven: true) == .operandBusy)
        td.kickAll()
        #expect(td.demote(gfn: GFN(0), level: .size2M, pageHFN: HFN(9), pamtPagesGiven: true) == .success)
        #expect(td.entry(gfn: GFN(0), level: .size2M).state == .nlMapped)
        #expect(td.entry(gfn: GFN(7), level: .size4K).state == .pending)  // children unblocked, no UNBLOCK needed
        #expect(td.pamt4K.value(at: HostRegion2M(1)))  // DPAMT installed for the guest range by DEMOTE
    }

    @Test func demoteOnLegacyModuleIsInterruptible() {
        let td = runnableTD(.legacy)
        #expect(td.pageAug(gfn: GFN(0), level: .size2M, hfn: HFN(512)) == .success)
        #expect(td.rangeBlock(gfn: GFN(0), level: .size2M) == .success)
        #expect(td.track() == .success); td.kickAll()
        td.raiseHostInterrupt()
        #expect(td.demote(gfn: GFN(0), level: .size2M, pageHFN: HFN(9), pamtPagesGiven: false) == .interruptedRestartable)
        #expect(td.demote(gfn: GFN(0), level: .size2M, pageHFN: HFN(9), pamtPagesGiven: false) == .success)
    }

    @Test func promoteNeedsUniformContiguousChildren() {
        let td = runnableTD()
        #expect(td.septAdd(gfn: GFN(0), entryLevel: 2, pageHFN: HFN(9)) == .success)
        for g in 0..<512 as Range<UInt64> { #expect(td.pageAug(gfn: GFN(g), level: .size4K, hfn: HFN(512 + g)) == .success) }
        #expect(td.accept(gfn: GFN(3), level: .size4K) == .status(.success))  // 511 PENDING + 1 MAPPED
        #expect(td.rangeBlock(gfn: GFN(0), level: .size2M) == .success)
        #expect(td.track() == .success); td.kickAll()
        #expect(td.promote(gfn: GFN(0), level: .size2M) == .eptInvalidPromoteConditions)
    }

    /// TDH.MEM.RANGE.UNBLOCK: only a blocked entry, only once tracked, back
    /// to the state it was blocked from.
    @Test func unblockNeedsABlockedTrackedEntry() {
        let td = runnableTD()
        #expect(td.pageAug(gfn: GFN(0), level: .size2M, hfn: HFN(512)) == .success)
        #expect(td.rangeUnblock(gfn: GFN(0), level: .size2M) == .eptEntryStateIncorrect)  // not blocked
        #expect(td.rangeBlock(gfn: GFN(0), level: .size2M) == .success)
        #expect(td.entry(gfn: GFN(0), level: .size2M).state == .pendingBlocked)
        #expect(td.rangeUnblock(gfn: GFN(0), level: .size2M) == .tlbTrackingNotDone)
        #expect(td.track() == .success); td.kickAll()
        td.hold(.treeLock, vcpu: 0)
        #expect(td.rangeUnblock(gfn: GFN(0), level: .size2M) == .operandBusy)
        td.kickAll()
        #expect(td.rangeUnblock(gfn: GFN(0), level: .size2M) == .success)
        #expect(td.entry(gfn: GFN(0), level: .size2M) == SEPTEntry(.pending, mapping: GFN(0), to: HFN(512)))
        #expect(td.calls[leaf: .memRangeUnblock, status: .success] == 1)
        // The guest can accept it again as if never blocked.
        #expect(td.accept(gfn: GFN(0), level: .size2M) == .status(.success))
    }
}
