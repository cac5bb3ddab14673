import CoCoGuest
package import CostModel
import Firmware
import GuestKernel
import KVM
import MemoryModel
import SNP

/// Fills a `RunRecord` while a run goes (issue 14, section 1).
///
/// The simulation calls it where it already computes: at each phase end,
/// each `rate=` slice, each batch of acceptance the page allocator makes and
/// each deferred-init padata chunk (`GuestKernel.onAcceptBatch`), never per
/// page. A sample is one row of values read from the model as it stands
/// (O(vCPUs + host runs)), placed on the run's time axis at the running
/// segment's start plus its clock; deferred init's rows, taken while
/// kernel_boot's clock is still open, wait until it closes. Rows are
/// thinned while the run goes (`compact()`), so memory stays bounded; series
/// are downsampled when the record is finished.
///
/// `package`: the simulation's own machinery, not an interface of a real
/// component.
package final class Recorder {
    let costs: CostTable
    /// The record being filled.
    package var record = RunRecord()

    // MARK: Where the values come from

    /// The kernel running (nil before the EFI stub hands over).
    var kernel: GuestKernel? = nil
    /// Which accepted-bytes column the kernel's `accept_memory()` counter feeds.
    var kernelActor: Column = .kernelBoot
    /// The host model: KVM's TDX MMU (TDX) or the RMP (SNP).
    var vm: TDXVM? = nil
    var snp: SNPPlatform? = nil
    /// The KVM SEV-SNP host model (`--host snp`), read as `vm` is for TDX.
    var snpVM: SNPVM? = nil
    /// A host run's memslots (no kernel, no firmware): the guest's memory.
    /// A `cocomem host` run: its rows carry the host-memory columns.
    package var isHostRun = false
    var hostSlots: [Range<GuestFrameNumber>] = []
    /// Unaccepted bytes before a kernel exists (the EFI map's type 15 / the table).
    var preKernelUnaccepted: UInt64 = 0

    // MARK: Accumulated state

    /// Bytes accepted by each actor that are settled (past phases).
    var settledAccepted: [UInt64] = Array(repeating: 0, count: Column.actors.count)
    /// Counters of closed segments: accept calls, exits, bytes each vCPU accepted.
    var settledCalls: UInt64 = 0
    var settledExits: UInt64 = 0
    var settledVCPU: [VCPUCounters]
    let vcpus: Int

    /// Start of the running segment, in virtual seconds from reset.
    var segmentStart = 0.0
    /// Rows of a segment that ran beside the one before it (deferred
    /// init's padata chunks), times relative to `segmentStart`, placed when it closes.
    var pending: [Row] = []
    /// Rows placed on the time axis.
    var times: [Double] = []
    var rows: [[Double]] = []
    /// Times of phase boundaries (downsampling keeps them).
    var boundaries: Set<Double> = [0]
    var rawLanes: [[VCPULane.Span]]
    /// Allocation latency, per workload phase, built as each phase ends.
    var latencies: [LatencyDistribution] = []
    /// What the kernel's accept counter held when its actor was last
    /// settled (until the simulation resets it or a new kernel starts).
    var counterSettled: UInt64 = 0
    /// The firmware hand-off snapshot, placed once the firmware phase closes.
    var handOffSnapshot: MemorySnapshot? = nil

    package init(costs: CostTable, vcpus: Int) {
        self.costs = costs
        self.vcpus = max(1, vcpus)
        settledVCPU = Array(repeating: VCPUCounters(), count: max(1, vcpus))
        rawLanes = Array(repeating: [], count: max(1, vcpus))
    }

    /// The whole-guest columns of a row; per-vCPU accepted bytes follow them.
    enum Column: Int, CaseIterable {
        case firmware, efiStub, kernelBoot, workload, kexecLoad, nextKernel
        case unaccepted, free, committedPrivate, committedShared, acceptCalls, exits
        /// Host runs only (issue 18 §5): the VMM's own shared memory, GPAs
        /// backed twice, and pinned against reclaimable (`TDXVM.hostMemory`).
        case vmmShared, doubleBacked, pinned, reclaimable
        static let hostOnly: [Column] = [.vmmShared, .doubleBacked, .pinned, .reclaimable]
        static let actors: [Column] = [.firmware, .efiStub, .kernelBoot, .workload, .kexecLoad, .nextKernel]
        var name: String {
            switch self {
            case .firmware: "accepted_bytes.firmware"
            case .efiStub: "accepted_bytes.efi_stub"
            case .kernelBoot: "accepted_bytes.kernel_boot"
            case .workload: "accepted_bytes.workload"
            case .kexecLoad: "accepted_bytes.kexec_load"
            case .nextKernel: "accepted_bytes.next_kernel"
            case .unaccepted: "unaccepted_bytes"
            case .free: "free_bytes"
            case .committedPrivate: "host_committed_private_bytes"
            case .committedShared: "host_committed_shared_bytes"
            case .acceptCalls: "accept_calls"
            case .exits: "exits"
            case .vmmShared: "host_vmm_shared_bytes"
            case .doubleBacked: "host_double_backed_bytes"
            case .pinned: "host_pinned_bytes"
            case .reclaimable: "host_reclaimable_bytes"
            }
        }
        var unit: String { self == .acceptCalls || self == .exits ? "count" : "bytes" }
    }

    struct Row { var time: Double; var values: [Double] }

    /// A vCPU's counters: bytes its successful accepts accepted, its accept calls, its exits.
    struct VCPUCounters {
        var acceptedBytes: UInt64 = 0, acceptCalls: UInt64 = 0, exits: UInt64 = 0
        init() {}
        init(_ c: OpCounts) { acceptedBytes = Recorder.acceptedBytes(c); acceptCalls = Recorder.acceptCalls(c); exits = Recorder.exits(c) }
        static func += (a: inout VCPUCounters, b: VCPUCounters) {
            a.acceptedBytes += b.acceptedBytes; a.acceptCalls += b.acceptCalls; a.exits += b.exits
        }
    }

    /// Column of counter `k` (0 accepted bytes, 1 accept calls, 2 exits) of `cpu`, after the whole-guest columns.
    static func vcpuColumn(_ cpu: Int, _ k: Int) -> Int { Column.allCases.count + 3 * cpu + k }

    // MARK: Sampling

    /// One row of the model as it stands, `clock` being the running segment's clock.
    /// - Complexity: O(vCPUs + runs of the host's maps).
    func row(_ clock: PhaseClock?) -> Row {
        var v = Array(repeating: Double.nan, count: Self.vcpuColumn(vcpus, 0))
        for a in Column.actors { v[a.rawValue] = Double(settledAccepted[a.rawValue]) }
        if let k = kernel {
            v[kernelActor.rawValue] += Double((k.unaccepted?.acceptedBytes ?? 0) - min(counterSettled, k.unaccepted?.acceptedBytes ?? 0))
            v[Column.unaccepted.rawValue] = Double(k.totalUnacceptedPages * 4096)
            v[Column.free.rawValue] = Double(k.totalFreePages * 4096)
        } else {
            v[Column.unaccepted.rawValue] = Double(preKernelUnaccepted)
        }
        let (priv, shared) = committed()
        v[Column.committedPrivate.rawValue] = Double(priv)
        v[Column.committedShared.rawValue] = Double(shared)
        if isHostRun, let vm {
            let m = vm.hostMemory
            v[Column.vmmShared.rawValue] = Double(m.vmmSharedPages * 4096)
            v[Column.doubleBacked.rawValue] = Double(m.doubleBackedPages * 4096)
            v[Column.pinned.rawValue] = Double(m.pinnedPages * 4096)
            v[Column.reclaimable.rawValue] = Double(m.reclaimablePages * 4096)
        }
        // Counters are linear in the counts: settled plus running, without adding vectors.
        v[Column.acceptCalls.rawValue] = Double(settledCalls + (clock.map { Self.acceptCalls($0.counts) } ?? 0))
        v[Column.exits.rawValue] = Double(settledExits + (clock.map { Self.exits($0.counts) } ?? 0))
        for cpu in 0..<vcpus {
            var c = settledVCPU[cpu]
            if let clock, cpu < clock.vcpus { c += VCPUCounters(clock.perVCPUCounts[cpu]) }
            v[Self.vcpuColumn(cpu, 0)] = Double(c.acceptedBytes)
            v[Self.vcpuColumn(cpu, 1)] = Double(c.acceptCalls)
            v[Self.vcpuColumn(cpu, 2)] = Double(c.exits)
        }
        return Row(time: clock?.seconds(costs) ?? 0, values: v)
    }

    /// Samples the running segment (the allocator's accept batches), placed
    /// at once: the segment's start is known. Samples closer than
    /// `minInterval` to the last row are skipped (the allocator accepts a
    /// block at a time below its watermark: a 1 TiB touch makes 262,144
    /// batches); the interval grows as the run does (`compact()`).
    func sample(_ clock: PhaseClock) {
        let t = segmentStart + clock.seconds(costs)
        if let last = times.last, t - last < minInterval { return }
        place(t, row(clock).values)
    }

    /// Ends the running segment after `seconds`: its rows go on the time
    /// axis, its counts are settled, and a row is taken at its end.
    /// `clock` is nil for a segment whose counts are settled elsewhere.
    func closeSegment(_ clock: PhaseClock?, seconds: Double, lane label: String?) {
        for r in pending { place(segmentStart + min(r.time, seconds), r.values) }
        pending = []
        if let c = clock {
            settledCalls += Self.acceptCalls(c.counts)
            settledExits += Self.exits(c.counts)
            for cpu in 0..<min(vcpus, c.vcpus) {
                let segment = VCPUCounters(c.perVCPUCounts[cpu])
                let accepted = segment.acceptedBytes
                settledVCPU[cpu] += segment
                if let label {
                    let busy = Double(c.vcpuPicoseconds[cpu]) / 1e12
                    if busy > 0 || accepted > 0 {
                        rawLanes[cpu].append(VCPULane.Span(start: segmentStart, end: segmentStart + min(busy, seconds),
                                                            label: label, acceptedBytes: accepted))
                        // Bounded while the run goes (a long rate= run has a span a slice).
                        if rawLanes[cpu].count > 4 * TimeSeries.maxPoints { rawLanes[cpu] = Self.bound(rawLanes[cpu]) }
                    }
                }
            }
        }
        segmentStart += seconds
        // A host run's clock is one for the whole run (`hostStep`): its
        // vCPU times are the trace's times already, on a time base of 0.
        if !isHostRun {
            vm?.hostTrace?.timeBase = segmentStart
            snpVM?.hostTrace?.timeBase = segmentStart
        }
        place(segmentStart, row(nil).values)
    }

    /// Places a row at `time`; a row at the time of the last one replaces it
    /// (the later state at one instant wins).
    func place(_ time: Double, _ values: [Double]) {
        if let last = times.last, time <= last {
            rows[rows.count - 1] = values
            return
        }
        times.append(time); rows.append(values)
        if times.count > Self.rowBudget { compact() }
    }

    /// Samples closer than this to the last row are skipped.
    var minInterval = 0.0

    /// Rows kept while the run goes before every other one is dropped:
    /// memory stays O(budget × columns) however long the run.
    static let rowBudget = 8 * TimeSeries.maxPoints

    /// Drops every other row but the first, the last and the phase boundaries,
    /// and widens `minInterval` to the spacing left.
    /// - Complexity: O(rows).
    func compact() {
        // The rows kept are about twice as far apart as before: so are new ones.
        if let first = times.first, let last = times.last { minInterval = 2 * (last - first) / Double(Self.rowBudget) }
        var t: [Double] = [], r: [[Double]] = []
        t.reserveCapacity(times.count / 2 + boundaries.count)
        r.reserveCapacity(times.count / 2 + boundaries.count)
        for i in times.indices where i % 2 == 0 || i == times.count - 1 || boundaries.contains(times[i]) {
            t.append(times[i]); r.append(rows[i])
        }
        times = t; rows = r
    }

    /// Settles what the kernel's `accept_memory()` counter holds into the
    /// running actor and hands the counter to `next`. The simulation
    /// resets the counter (or starts a new kernel) right after.
    func switchKernelActor(to next: Column) {
        let counter = kernel?.unaccepted?.acceptedBytes ?? 0
        settledAccepted[kernelActor.rawValue] += counter - min(counterSettled, counter)
        counterSettled = counter
        kernelActor = next
    }

    // MARK: Phases

    /// Records a phase `[segmentStart, segmentStart + seconds)` and closes it.
    func phase(_ name: String, _ clock: PhaseClock?, seconds: Double) {
        record.phases.append(PhaseSpan(name: name, start: segmentStart, end: segmentStart + seconds))
        boundaries.insert(segmentStart + seconds)
        closeSegment(clock, seconds: seconds, lane: name)
    }

    /// Records a phase whose time was spent in segments already closed (a `rate=` workload's slices).
    func phase(_ name: String, from start: Double) {
        record.phases.append(PhaseSpan(name: name, start: start, end: segmentStart))
        boundaries.insert(segmentStart)
    }

    // MARK: Counters from operation counts

    /// TDG.MEM.PAGE.ACCEPT calls (TDCALL leaf 6, any result) or PVALIDATEs (any result).
    static func acceptCalls(_ c: OpCounts) -> UInt64 {
        let ops: [Op] = [.tdxAccept4KSuccess, .tdxAccept4KSizeMismatch, .tdxAccept4KAlreadyAccepted, .tdxAccept4KEPTViolation,
                         .tdxAccept4KOperandInvalid, .tdxAccept2MSuccess, .tdxAccept2MSizeMismatch, .tdxAccept2MAlreadyAccepted,
                         .tdxAccept2MEPTViolation, .tdxAccept2MOperandInvalid, .tdxAccept1GSuccess, .tdxAccept1GSizeMismatch,
                         .tdxAccept1GAlreadyAccepted, .tdxAccept1GEPTViolation, .tdxAccept1GOperandInvalid,
                         .snpPvalidate4KSuccess, .snpPvalidate4KSizeMismatch, .snpPvalidate4KNoUpdate, .snpPvalidate4KFail,
                         .snpPvalidate2MSuccess, .snpPvalidate2MSizeMismatch, .snpPvalidate2MNoUpdate, .snpPvalidate2MFail]
        return ops.reduce(0) { $0 + c[$1] }
    }

    /// Exits to the host: TD exits for EPT violations (TDX); Page State
    /// Change VMGEXITs (GHCB and MSR protocol) and nested page faults (SNP).
    static func exits(_ c: OpCounts) -> UInt64 {
        c[.tdxEPTViolationExit] + c[.snpPSCExit] + c[.snpMSRPSCExit] + c[.snpNPF4K] + c[.snpNPF2M]
    }

    /// Bytes the successful accepts in `c` accepted (TDX by level, SNP PVALIDATE by size).
    static func acceptedBytes(_ c: OpCounts) -> UInt64 {
        c[.tdxAccept4KSuccess] * PageLevel.size4K.bytes + c[.tdxAccept2MSuccess] * PageLevel.size2M.bytes
            + c[.tdxAccept1GSuccess] * PageLevel.size1G.bytes
            + c[.snpPvalidate4KSuccess] * PageLevel.size4K.bytes + c[.snpPvalidate2MSuccess] * PageLevel.size2M.bytes
    }

    /// Host memory committed to the guest, private and shared, in bytes.
    /// TDX: guest_memfd folios allocated under private attributes, plus the
    /// S-EPT and DPAMT pages (host memory for private mappings), against
    /// folios under shared attributes (`TDXVM.committedPages` is their sum).
    /// SNP: every RMP-assigned page (the model's SNP guest has no shared memory).
    /// - Complexity: O(runs of the folio and attribute maps).
    func committed() -> (private: UInt64, shared: UInt64) {
        if let vm {
            var shared: UInt64 = 0
            vm.gmem.folioAllocated.forEachRun(in: .lowest ..< .highest) { frames, allocated in
                guard allocated else { return }
                shared += vm.attributes.privateAttr.measure(in: frames) { !$0 }
            }
            return ((vm.committedPages - shared) * 4096, shared * 4096)
        }
        if let snp { return (snp.committedPages * 4096, 0) }
        // guest_memfd holds private pages only here (VM-wide attributes: conversion to shared punches them out);
        // the VMM's own shared memory is not tracked on the SNP host model.
        if let snpVM { return (snpVM.hostCommittedPages * 4096, 0) }
        return (0, 0)
    }
}

// MARK: Steps of a boot

extension Recorder {
    /// The run begins: the host model it reads, and a first row at time 0
    /// (the TD's initial image already added).
    func start(vm: TDXVM?, snp: SNPPlatform?, snpVM: SNPVM? = nil) {
        self.vm = vm
        self.snp = snp
        self.snpVM = snpVM
        place(0, row(nil).values)
    }

    /// The firmware hands the EFI memory map to the OS loader (`onHandOff`
    /// of `FirmwareBoot.run`), `seconds` into the firmware phase.
    func handOff(_ map: EFIMemoryMap, at seconds: Double) {
        let ranges = snapshotRanges(firmwareMap: map, table: nil)
        handOffSnapshot = MemorySnapshot(label: "firmware hand-off", time: segmentStart + seconds, ranges: ranges)
        preKernelUnaccepted = map.descriptors.filter { $0.type == .unaccepted }.reduce(0) { $0 + $1.bytes.value }
    }

    /// The firmware and EFI stub phases, the hand-off snapshot and the one at ExitBootServices.
    func firmwareDone(_ r: BootResult, _ fw: FirmwareBootResult) {
        settledAccepted[Column.firmware.rawValue] = r.acceptedFirmware
        phase("firmware", fw.firmwareClock, seconds: r.times.firmware)
        if let h = handOffSnapshot { record.snapshots.append(h); handOffSnapshot = nil }
        settledAccepted[Column.efiStub.rawValue] = r.acceptedStub
        if let t = fw.table {
            preKernelUnaccepted = t.bitmap.countSet(in: t.allUnits) * t.unitSize
        } else {
            preKernelUnaccepted = fw.map.descriptors.filter { $0.type == .unaccepted }.reduce(0) { $0 + $1.bytes.value }
        }
        phase("efi_stub", fw.stubClock, seconds: r.times.efiStub)
        snapshot("ExitBootServices", firmwareMap: fw.map, table: fw.table)
    }

    /// Rows taken on a clock that ran beside `before` (deferred init's
    /// padata chunks during `memblock_free_all()`), whose counts are settled
    /// now: theirs are added so the counters stay cumulative.
    func appendPending(_ rows: [Row], after before: PhaseClock) {
        let calls = Double(Self.acceptCalls(before.counts)), exits = Double(Self.exits(before.counts))
        pending = rows.map { r in
            var r = r
            r.values[Column.acceptCalls.rawValue] += calls
            r.values[Column.exits.rawValue] += exits
            for cpu in 0..<min(vcpus, before.vcpus) {
                let c = VCPUCounters(before.perVCPUCounts[cpu])
                r.values[Self.vcpuColumn(cpu, 0)] += Double(c.acceptedBytes)
                r.values[Self.vcpuColumn(cpu, 1)] += Double(c.acceptCalls)
                r.values[Self.vcpuColumn(cpu, 2)] += Double(c.exits)
            }
            return r
        }
    }
}

// MARK: Host runs

extension Recorder {
    /// A host command ended with the run's clock at `clock`: its phase, and
    /// a row of the host's committed memory and the counters.
    func hostStep(_ name: String, _ clock: PhaseClock) {
        settledCalls = Self.acceptCalls(clock.counts)
        settledExits = Self.exits(clock.counts)
        for cpu in 0..<min(vcpus, clock.vcpus) { settledVCPU[cpu] = VCPUCounters(clock.perVCPUCounts[cpu]) }
        phase(name, nil, seconds: max(0, clock.seconds(costs) - segmentStart))
    }
}
