public import CoCoGuest
public import CostModel
public import Firmware
import MemoryModel

/// How `accept_memory()` keeps two callers off the same units
/// (drivers/firmware/efi/unaccepted_memory.c), by kernel release.
public enum AcceptMemoryLocking: String, Sendable, CaseIterable {
    /// 50e782a86c98 "efi/unaccepted: Fix soft lockups caused by parallel
    /// memory acceptance" (mainline 6.6, stable 6.5.9): the caller puts its
    /// unit range on `accepting_list` under `unaccepted_memory_lock`, drops
    /// the lock around each `arch_accept_memory()`, and retries from the top
    /// while another caller's entry overlaps its range.
    case acceptingList = "accepting-list"
    /// Before it (6.5.0 to 6.5.8, 2053bc57f367 "efi: Add unaccepted memory
    /// support"): `unaccepted_memory_lock` is held, interrupts off, across
    /// every `arch_accept_memory()` of the call; a second caller spins on the
    /// lock for the whole accept (the soft lockups Michael Roth reported).
    case lockHeldAcrossAccept = "lock-held"
}

/// A bug planted in `accept_memory()` for the checker to find (docs/CHECKER.md,
/// `model: accept-memory`). Neither is in any kernel: each is a plausible way
/// to get the parallelism of 50e782a86c98 without its list.
public enum PlantedAcceptFault: String, Sendable, CaseIterable {
    /// The lock dropped around `arch_accept_memory()` as 50e782a86c98 does,
    /// but no `accepting_list`: two callers both see the bits set and both
    /// accept (Linux's second TDG.MEM.PAGE.ACCEPT gets
    /// TDX_PAGE_ALREADY_ACCEPTED at every level and panics).
    case noAcceptingList = "no-accepting-list"
    /// No list either, but the caller claims its run by clearing the bits
    /// under the lock before `arch_accept_memory()`: a second caller finds
    /// them clear, returns at once and touches memory the first has not
    /// finished accepting.
    case claimByClearing = "claim-by-clearing"
}

/// One `accept_memory(start, size)` call in flight, at the points where
/// `unaccepted_memory_lock` changes hands, so that calls on several vCPUs
/// interleave as they do in the kernel. `UnacceptedMemory.step(_:clock:)`
/// takes one step; `acceptMemory(start:size:vcpu:clock:)` is one caller
/// stepping alone.
public struct AcceptMemoryCall: Sendable, Equatable {
    /// Where the call is: what its next step does.
    public enum Phase: Sendable, Equatable {
        /// `retry:` take the lock and walk `accepting_list` (or, before
        /// 50e782a86c98, take the lock for the whole call).
        case retry
        /// The lock dropped (held, before 50e782a86c98); next:
        /// `arch_accept_memory()` of this run of set units.
        case accepting(Range<UnacceptedUnit>)
        /// The run accepted; next: take the lock, `bitmap_clear()` it and
        /// look for the next run (`for_each_set_bitrange_from()`).
        case clearing(Range<UnacceptedUnit>)
        /// Returned.
        case done(AcceptOutcome)
    }

    public let vcpu: Int
    /// `range.start ..< range.end` in units (after the guard unit and the
    /// bitmap clamp): what the call puts on `accepting_list`.
    public let window: Range<UnacceptedUnit>
    public internal(set) var phase: Phase
    /// Times the call found an overlapping entry (or the held lock) and went
    /// back to `retry:`.
    public internal(set) var retries: Int = 0

    /// Whether the call has returned.
    public var isDone: Bool { if case .done = phase { true } else { false } }
    /// Whether the call is between `list_add()` and `list_del()` (or, for
    /// the planted faults, between finding a run and returning): it works on
    /// its window's units.
    public var isWorking: Bool {
        switch phase {
        case .accepting, .clearing: true
        case .retry, .done: false
        }
    }
}

/// What one step of an `AcceptMemoryCall` did, for traces.
public enum AcceptMemoryStep: Sendable, Equatable {
    /// An overlapping `accepting_list` entry (or the held lock): lock dropped, back to `retry:`.
    case spun
    /// On the list (or holding the lock), the first run of set units found; lock dropped.
    case listed(first: Range<UnacceptedUnit>)
    /// On the list, no set unit in the window: off the list, returned.
    case nothingToAccept
    /// `arch_accept_memory()` of the run.
    case accepted(Range<UnacceptedUnit>, AcceptOutcome)
    /// Bits cleared; the next run found (lock dropped again) or none (off the list, returned).
    case cleared(Range<UnacceptedUnit>, next: Range<UnacceptedUnit>?)
}

extension UnacceptedMemory {
    /// Starts `accept_memory(start, size)` on `vcpu`: the unit window it
    /// works on (clamped, widened by the guard unit), or a call already
    /// returned when the window is outside the table or the bitmap read
    /// faults (canonical/tdx#421).
    /// - Complexity: O(1) plus the fault check.
    public func beginAcceptMemory(start: UInt64, size: UInt64, vcpu: Int) -> AcceptMemoryCall {
        guard let w = unitWindow(start: start, size: size) else {
            return AcceptMemoryCall(vcpu: vcpu, window: UnacceptedUnit.lowest ..< UnacceptedUnit.lowest, phase: .done(.ok))
        }
        if let f = readFault(w, in: "accept_memory") { return AcceptMemoryCall(vcpu: vcpu, window: w, phase: .done(.terminated(f))) }
        return AcceptMemoryCall(vcpu: vcpu, window: w, phase: .retry)
    }

    /// Takes one step of `call`, as the kernel moves between lock
    /// acquisitions (drivers/firmware/efi/unaccepted_memory.c `accept_memory()`):
    ///
    /// - `retry:`: `spin_lock_irqsave()`; an `accepting_list` entry
    ///   overlapping the window (at unit granularity) sends the call back to
    ///   `retry:` (no `cpu_relax()`: Ard Biesheuvel dropped it); else
    ///   `list_add()`, the first run of set units from the window's start,
    ///   `spin_unlock()` (interrupts stay off). No run: `list_del()`, unlock,
    ///   return.
    /// - a run: `arch_accept_memory()` with the lock dropped.
    /// - after it: `spin_lock()`, `bitmap_clear()`, the next run from the
    ///   run's end (under the lock, so bits cleared meanwhile by others are
    ///   seen), unlock again; no run: `list_del()`, `spin_unlock_irqrestore()`.
    ///
    /// Before 50e782a86c98 (`locking == .lockHeldAcrossAccept`) there is no
    /// list: the call takes the lock at `retry:` (spinning while another
    /// call holds it) and keeps it until it returns. `plantedFault` changes
    /// the list's code as its case says.
    /// - Complexity: O(entries on the list + bitmap words searched).
    @discardableResult
    public func step(_ call: inout AcceptMemoryCall, clock: inout PhaseClock) -> AcceptMemoryStep? {
        switch call.phase {
        case .done:
            return nil
        case .retry:
            if plantedFault == nil {
                switch locking {
                case .acceptingList:
                    if acceptingList.contains(where: { $0.units.overlaps(call.window) }) {
                        call.retries += 1
                        return .spun
                    }
                    acceptingList.insert(AcceptingEntry(vcpu: call.vcpu, units: call.window), at: 0)
                case .lockHeldAcrossAccept:
                    if let h = lockHolder, h != call.vcpu {
                        call.retries += 1
                        return .spun
                    }
                    lockHolder = call.vcpu
                }
            }
            guard let run = nextRun(from: call.window.lowerBound, in: call.window) else {
                leave(call)
                call.phase = .done(.ok)
                return .nothingToAccept
            }
            if plantedFault == .claimByClearing { table.bitmap.clear(run) }
            call.phase = .accepting(run)
            return .listed(first: run)
        case .accepting(let run):
            let a = table.address(of: run.lowerBound), b = table.address(of: run.upperBound)
            archCalls += 1
            onArchAccept?(a, b)
            let o = acceptor.accept(AddressRange(start: a, end: b), vcpu: call.vcpu, clock: &clock)
            if o != .ok {
                // arch_accept_memory() does not return on failure: TDX
                // panics ("TDX: Failed to accept memory"), SNP terminates.
                leave(call)
                call.phase = .done(o)
                return .accepted(run, o)
            }
            call.phase = .clearing(run)
            return .accepted(run, o)
        case .clearing(let run):
            if plantedFault != .claimByClearing { table.bitmap.clear(run) }
            acceptedBytes += table.address(of: run.upperBound) - table.address(of: run.lowerBound)
            let next = nextRun(from: run.upperBound, in: call.window)
            if let next {
                if plantedFault == .claimByClearing { table.bitmap.clear(next) }
                call.phase = .accepting(next)
            } else {
                leave(call)
                call.phase = .done(.ok)
            }
            return .cleared(run, next: next)
        }
    }

    /// The first run of units `for_each_set_bitrange_from()` visits at or
    /// after `from` in `window` (a version-2 table's units must be plugged too).
    func nextRun(from: UnacceptedUnit, in window: Range<UnacceptedUnit>) -> Range<UnacceptedUnit>? {
        let hi = min(window.upperBound, UnacceptedUnit(table.bitmap.count))
        var i = from
        while i < hi, let a = table.bitmap.firstSet(from: i, below: hi) {
            let b = table.bitmap.firstClear(from: a, below: hi) ?? hi
            guard let p = table.plugged else { return a..<b }
            if let first = p.setRuns(in: a..<b).first { return first }
            i = b
        }
        return nil
    }

    /// `list_del()` of the call's entry (or, before 50e782a86c98, the
    /// lock's release).
    private func leave(_ call: AcceptMemoryCall) {
        guard plantedFault == nil else { return }
        switch locking {
        case .acceptingList: acceptingList.removeAll { $0.vcpu == call.vcpu && $0.units == call.window }
        case .lockHeldAcrossAccept: if lockHolder == call.vcpu { lockHolder = nil }
        }
    }
}
