public import CoCoGuest
public import CostModel
public import Firmware
import MemoryModel

/// The kernel's side of the unaccepted table
/// (drivers/firmware/efi/unaccepted_memory.c): `accept_memory()` and
/// `range_contains_unaccepted_memory()`, with the bitmap clamping, the
/// `load_unaligned_zeropad()` guard unit and the accepting list.
public final class UnacceptedMemory {
    public internal(set) var table: UnacceptedTable
    public let acceptor: any ArchAcceptor
    /// The acceptor's span replay, when it has one; without it every call is stepped.
    private let replay: (any ArchAcceptorReplay)?
    /// Bytes accepted through `accept_memory()` since the last reset.
    public var acceptedBytes: UInt64 = 0
    /// Number of `arch_accept_memory()` calls made.
    public internal(set) var archCalls: UInt64 = 0
    /// Called with `[start, end)` of every `arch_accept_memory()` call.
    public var onArchAccept: ((UInt64, UInt64) -> Void)? = nil
    public var stepByStep = false {
        didSet { acceptor.stepByStep = stepByStep }
    }
    private var steadyMemo: [ReplayKey: (counts: OpCounts, state: ReplayKey)] = [:]
    /// Bitmap bytes (offsets from the bitmap start) that are not in the
    /// kernel's direct map: before the Feb 2026 fix, `reserve_unaccepted()`
    /// could leave the table's last page out of memblock, and ACPI-reclaim
    /// memory is mapped only if memblock knows it (`init_mem_mapping()`
    /// maps memblock.memory). Any kernel read of these bytes page-faults.
    public var unmappedBitmapBytes: Range<UInt64>? = nil
    /// The kernel oops a read of an unmapped bitmap byte caused, if any.
    public private(set) var fault: String? = nil

    public let costs: CostTable

    /// How concurrent callers are kept apart: by the kernel release
    /// (`KernelBehaviour.acceptingList`, 50e782a86c98).
    public var locking = AcceptMemoryLocking.acceptingList
    /// A bug planted for the checker (never set by a boot).
    public var plantedFault: PlantedAcceptFault? = nil
    /// One entry of `accepting_list`: the unit range a call on `vcpu` is accepting.
    public struct AcceptingEntry: Sendable, Hashable {
        public let vcpu: Int
        public let units: Range<UnacceptedUnit>
    }
    /// `accepting_list`, newest first (`list_add()` adds at the head).
    public internal(set) var acceptingList: [AcceptingEntry] = []
    /// Before 50e782a86c98: the vCPU holding `unaccepted_memory_lock`
    /// across its `arch_accept_memory()` calls, if any.
    public internal(set) var lockHolder: Int? = nil

    public init(table: UnacceptedTable, acceptor: any ArchAcceptor, costs: CostTable) {
        self.table = table
        self.acceptor = acceptor
        self.replay = acceptor as? any ArchAcceptorReplay
        self.costs = costs
    }

    /// The unit range `accept_memory(start, size)` works on, or nil when it
    /// lies outside the table: clamp to phys_base, add the guard unit when the
    /// end is unit-aligned, clamp to the bitmap, then whole units from the
    /// one holding the start to the one holding the last byte.
    func unitWindow(start s0: UInt64, size: UInt64) -> Range<UnacceptedUnit>? {
        let unit = table.unitSize, physBase = table.physBase.value
        var start = s0, end = s0 + size
        if start < physBase { start = physBase }
        if end < physBase { return nil }
        if (end - physBase) % unit == 0 { end += unit }
        end = min(end, table.coveredEnd)
        // `range.start = start / unit_size; range.end = DIV_ROUND_UP(end, unit_size)`:
        // a zero-size call at an unaligned address still covers its unit
        // (the stub differential test found the model skipping it).
        guard start < table.coveredEnd else { return nil }
        let w = table.unit(containing: start)..<table.unit(roundingUp: end)
        return w.isEmpty ? nil : w
    }

    /// `accept_memory(start, size)`: one `arch_accept_memory()` per run of set
    /// bits in the window, each cleared after the platform accepted it: one
    /// caller taking every step of `AcceptMemoryCall` (UnacceptedMemory+Steps)
    /// alone, so it never meets another's list entry.
    /// The accepting list's wait in virtual time is a timeline of the phase
    /// (`SharedTimelines.acceptingList`), taken by the page allocator's
    /// callers (`GuestKernel.acceptFromList`): a caller on one vCPU never
    /// waits for itself.
    public func acceptMemory(start: UInt64, size: UInt64, vcpu: Int, clock: inout PhaseClock) -> AcceptOutcome {
        var call = beginAcceptMemory(start: start, size: size, vcpu: vcpu)
        while true {
            if case .done(let o) = call.phase { return o }
            // A lone caller meets no entry but its own; one that does was
            // called while a stepped call overlapping it is in flight, which
            // would spin for ever here.
            if step(&call, clock: &clock) == .spun {
                return .terminated("accept_memory() on vCPU \(vcpu) spins on a call in flight that is never stepped")
            }
        }
    }

    /// The decompressor's and EFI stub's simpler `accept_memory()` copy
    /// (arch/x86/boot/compressed/mem.c): no guard unit, no list. `using` is
    /// the decompressor's `arch_accept_memory()` when it is not the running
    /// kernel's (SNP: the boot code's own `snp_accept_memory()`).
    public func bootAcceptMemory(start: UInt64, end: UInt64, vcpu: Int, clock: inout PhaseClock,
                                 using bootAcceptor: (any ArchAcceptor)? = nil) -> AcceptOutcome {
        let acceptor = bootAcceptor ?? self.acceptor
        let s = max(start, table.physBase.value), e = min(end, table.coveredEnd)
        guard s < e else { return .ok }
        let w = table.unit(containing: s)..<table.unit(roundingUp: e)
        for run in table.acceptableRuns(in: w) {
            let a = table.address(of: run.lowerBound), b = table.address(of: run.upperBound)
            archCalls += 1
            let o = acceptor.accept(AddressRange(start: a, end: b), vcpu: vcpu, clock: &clock)
            if o != .ok { return o }
            table.bitmap.clear(run)
            acceptedBytes += b - a
        }
        return .ok
    }

    /// `range_contains_unaccepted_memory(start, size)`, with the guard unit.
    /// A read that faults records `fault` and answers false; callers check `fault`.
    public func rangeContainsUnaccepted(start: UInt64, size: UInt64) -> Bool {
        guard let w = unitWindow(start: start, size: size) else { return false }
        if readFault(w, in: "range_contains_unaccepted_memory") != nil { return false }
        return table.plugged == nil ? table.bitmap.anySet(in: w) : !table.acceptableRuns(in: w).isEmpty
    }

    /// The oops of reading the bitmap words of units `w` when some of them
    /// are unmapped (canonical/tdx#421), recorded in `fault`.
    ///
    /// `accept_memory()` and `range_contains_unaccepted_memory()` search the
    /// window with `find_next_bit()` (lib/find_bit.c `_find_next_bit()`),
    /// which loads whole `unsigned long` words `bitmap[start / BITS_PER_LONG]`
    /// onwards, so the faulting address is the first 8-byte word that reaches
    /// an unmapped byte: in the oops `ff1100007d625008`, word 0x1fb
    /// (RSI) of the bitmap at `...7d624030`, page offset 0x008.
    func readFault(_ w: Range<UnacceptedUnit>, in function: String) -> String? {
        if let f = fault { return f }
        guard let bad = unmappedBitmapBytes, !w.isEmpty else { return nil }
        // Bit n of the bitmap is in word n / 64, which holds bytes 8 * (n / 64) ..< + 8.
        let wordBytes: UInt64 = 8
        let words = (w.lowerBound.value / 64)..<((w.upperBound.value - 1) / 64 + 1)
        let badWords = (bad.lowerBound / wordBytes)..<divRoundUp(bad.upperBound, wordBytes)
        guard words.overlaps(badWords) else { return nil }
        let address = table.address.value + UnacceptedTable.headerSize + wordBytes * max(words.lowerBound, badWords.lowerBound)
        fault = "kernel panic: BUG: unable to handle page fault for address \(hex16(address)) (direct map) in \(function)(): "
            + "the unaccepted table's last page was not reserved or mapped by reserve_unaccepted() (canonical/tdx#421)"
        return fault
    }

    /// First unit whose bitmap word (`find_next_bit()` loads 8-byte words) is
    /// unmapped; replays stop short of it.
    var firstUnmappedUnit: UnacceptedUnit { unmappedBitmapBytes.map { UnacceptedUnit($0.lowerBound / 8 * 64) } ?? .highest }

    /// `count` successive `accept_memory(block, 4 MiB)` calls on consecutive
    /// 4 MiB blocks from `firstBlockAddress`, as `__accept_page()` (lazy) or
    /// `__free_pages_core()` (eager) issue them. Calls in the steady state
    /// (own two units set, previous guard already accepted, platform uniform)
    /// are replayed from the first such call; the result equals stepping.
    public func acceptBlocks(firstBlockAddress: UInt64, count: UInt64, vcpu: Int, clock: inout PhaseClock) -> AcceptOutcome {
        let blockSize: UInt64 = 4 << 20
        var i: UInt64 = 0
        while i < count {
            let addr = firstBlockAddress + i * blockSize
            if !stepByStep, let k = replaySteady(addr: addr, remaining: count - i, vcpu: vcpu, clock: &clock), k > 0 {
                i += k
                continue
            }
            let before = clock.counts
            let context0 = replay?.contextOperations ?? OpCounts()
            let sig = steadySignature(addr: addr)
            let o = acceptMemory(start: addr, size: blockSize, vcpu: vcpu, clock: &clock)
            if o != .ok { return o }
            if let replay, let sig, let st = replay.chunkState(gfn: acceptorFrame(addr + table.unitSize)),
               replay.chunkState(gfn: acceptorFrame(addr + 2 * table.unitSize)) == st {
                steadyMemo[sig] = (clock.counts - before - (replay.contextOperations - context0), st)
            }
            i += 1
        }
        return .ok
    }

    /// The frame holding `addr`, as the replay hooks take it.
    private func acceptorFrame(_ addr: UInt64) -> GuestFrameNumber { GuestPhysicalAddress(addr).frame }

    /// Units of the block at `addr` relative to the table: own two and the guard.
    private func blockUnits(_ addr: UInt64) -> UnacceptedUnit? {
        guard addr >= table.physBase.value, (addr - table.physBase.value) % table.unitSize == 0 else { return nil }
        let u = table.unit(containing: addr)
        return u.value + 3 <= table.bitmap.count ? u : nil
    }

    /// The memo key of a steady call at `addr`: unit u clear, u+1 and u+2 set.
    private func steadySignature(addr: UInt64) -> ReplayKey? {
        guard table.unitSize == 2 << 20, let u = blockUnits(addr), !table.bitmap.test(u),
              table.bitmap.test(u + 1), table.bitmap.test(u + 2),
              table.plugged.map({ $0.test(u + 1) && $0.test(u + 2) }) ?? true,
              let replay, let sig = replay.chunkSignature(gfn: acceptorFrame(addr + table.unitSize)),
              replay.chunksSharing(sig, from: acceptorFrame(addr + table.unitSize), limit: 2) == 2 else { return nil }
        return sig
    }

    private func replaySteady(addr: UInt64, remaining: UInt64, vcpu: Int, clock: inout PhaseClock) -> UInt64? {
        guard let replay, let sig = steadySignature(addr: addr), let memo = steadyMemo[sig], let u = blockUnits(addr) else { return nil }
        // Units u+1 ..< u+1+2k must all be set and the platform uniform over them.
        let firstGFN = acceptorFrame(addr + table.unitSize)
        // Calls whose window reaches an unmapped byte are stepped, so the fault is seen.
        guard u + 3 < firstUnmappedUnit else { return nil }
        let maxUnits = min(2 * remaining, table.bitmap.count - (u.value + 1), (firstUnmappedUnit - (u + 3)) / 2 * 2)
        // The platform's span first: the bitmap is then scanned only over
        // it (scanning to maxUnits made each GiB's call scan the rest of the range).
        let shared = replay.chunksSharing(sig, from: firstGFN, limit: maxUnits)
        var setEnd = table.bitmap.firstClear(from: u + 1, below: u + 1 + shared) ?? (u + 1 + shared)
        // A version-2 table accepts only plugged units (the TDX hotplug RFC v2).
        if let p = table.plugged { setEnd = p.firstClear(from: u + 1, below: setEnd) ?? setEnd }
        let chunks = setEnd - (u + 1)
        let k = chunks / 2
        guard k > 0 else { return nil }
        let t0 = clock.vcpuPicoseconds.indices.contains(vcpu) ? clock.vcpuPicoseconds[vcpu] : 0
        replay.traceReplayBegins(vcpu: vcpu, now: Double(t0) / 1e12, calls: k)
        // The platform's memo first: without it (it outlived by this one)
        // nothing is replayed and the calls are stepped.
        guard let context = replay.replayChunks(signature: sig, state: memo.state, from: firstGFN, count: 2 * k) else { return nil }
        clock.charge(memo.counts, times: k, vcpu: vcpu, costs: costs)
        clock.charge(context, vcpu: vcpu, costs: costs)
        if clock.vcpuPicoseconds.indices.contains(vcpu) { replay.traceReplayEnded(now: Double(clock.vcpuPicoseconds[vcpu]) / 1e12) }
        table.bitmap.clear(Range(start: u + 1, count: 2 * k))
        archCalls += k
        acceptedBytes += 2 * k * table.unitSize
        return k
    }
}
