import CoCoGuest
public import CostModel
public import GuestKernel
import MemoryModel

/// How the TDX module takes the TD's S-EPT tree lock (`secure_ept_lock`)
/// on the host's side of an accept fault.
public enum TDXModuleSEPTLocking: String, Sendable, CaseIterable {
    /// TDX module 1.0 (the 2021 source, "Intel Proprietary ... TDX Source
    /// Code LIMITED USE LICENSE", taken to be the 1.0 generation by its date
    /// and by what it lacks, e.g. the host-side entry lock): `tdh_mem_page_aug()` and
    /// `tdh_mem_sept_add()` call `lock_sept_check_and_walk_private_gpa()`
    /// with `TDX_LOCK_EXCLUSIVE` and release with
    /// `release_sharex_lock_ex(&tdcs_ptr->executions_ctl_fields.secure_ept_lock)`:
    /// every AUG and SEPT.ADD of the TD excludes every other.
    case v1_0 = "1.0"
    /// TDX module 1.5 and later (intel/tdx-module at 1666adc, MIT):
    /// `TDX_LOCK_SHARED` plus the S-EPT entry's host-side lock
    /// (`sept_lock_acquire_host()`); AUGs of different pages do not exclude
    /// each other. `tdg_mem_page_accept()` takes no tree lock in either.
    case v1_5 = "1.5"
}

/// What one eager acceptance run covers.
public struct EagerAcceptConfig: Sendable, Equatable {
    /// Guest RAM; q35 puts 2 GiB below 4 GiB once RAM exceeds 2816 MiB, and
    /// TDVF accepts all of it before the kernel, so the kernel's eager
    /// accepts are the RAM above 4 GiB.
    public var memoryBytes: UInt64
    public var vcpus: Int
    /// CONFIG_DEFERRED_STRUCT_PAGE_INIT: with it, `memblock_free_all()` on
    /// the boot CPU frees (and accepts) the Normal zone's first section only
    /// and `deferred_init_memmap()` does the rest on padata threads; without
    /// it the boot CPU accepts everything in `memblock_free_all()`.
    public var deferredStructPageInit = true
    /// 4K (`tdx`) or 2M (`tdx-huge`) private mappings on the host.
    public var host: TDXHostModel = .tdx
    public var module: TDXModuleSEPTLocking = .v1_5
    /// The guest kernel's `accept_memory()` locking (by release).
    public var locking: AcceptMemoryLocking = .acceptingList
    /// How long `__filemap_add_folio()` holds the guest_memfd mapping's
    /// `xa_lock` (the i_pages lock of the one guest_memfd inode behind the
    /// guest's RAM) for each new folio, in nanoseconds. An assumption: no
    /// figure is published (Nikita Kalyazin's batching patch for
    /// guest_memfd population quotes 8.3% saved by "the reduction in
    /// locking and tree walking when adding folios").
    public var gmemLockNanoseconds: UInt64 = 100
    public var seed: UInt64 = 0
    /// Every block an event of its own (tests hold the bulk replay equal).
    public var stepEverything = false

    public init(memoryBytes: UInt64, vcpus: Int) { self.memoryBytes = memoryBytes; self.vcpus = vcpus }

    /// One clear error for a configuration the model cannot run.
    /// - Complexity: O(1).
    public func validate() throws {
        guard (1...4096).contains(vcpus) else { throw CocomemError(.invalidArgument, "vcpus \(vcpus): must be 1 to 4096") }
        guard memoryBytes >= 128 << 20, memoryBytes <= 16 << 40, memoryBytes % (4 << 20) == 0 else {
            throw CocomemError(.invalidArgument, "memory \(memoryBytes) bytes: must be a multiple of 4 MiB from 128 MiB to 16 TiB")
        }
        guard gmemLockNanoseconds <= 1_000_000 else { throw CocomemError(.invalidArgument, "gmem lock hold \(gmemLockNanoseconds) ns: must be at most 1 ms") }
    }

    /// RAM q35 maps below 4 GiB (`pc_q35_init()`: `below_4g_mem_size` is
    /// 2 GiB once RAM exceeds 0xB0000000).
    public var lowBytes: UInt64 { memoryBytes > 0xB000_0000 ? 2 << 30 : memoryBytes }
    public var highBytes: UInt64 { memoryBytes - lowBytes }
}

/// Which bound made a 4 MiB block last as long as it did.
public enum EagerAcceptBound: Int, Sendable, CaseIterable {
    /// The vCPU's own work: exits, SEAMCALLs, TDCALLs, zeroing at the core's rate, struct pages.
    case vcpu
    /// Its share of the write bandwidth (`shared_write_gib_per_s`).
    case bandwidth
    /// The guest_memfd mapping's `xa_lock`.
    case gmemLock
    /// `secure_ept_lock` held exclusive by AUG and SEPT.ADD (module 1.0).
    case septLock
    /// `unaccepted_memory_lock` held across the accept (6.5.0-6.5.8).
    case unacceptedLock

    public var name: String {
        switch self {
        case .vcpu: return "vcpu"
        case .bandwidth: return "bandwidth"
        case .gmemLock: return "gmem_xa_lock"
        case .septLock: return "secure_ept_lock"
        case .unacceptedLock: return "unaccepted_memory_lock"
        }
    }
}

/// What an eager acceptance run took.
public struct EagerAcceptResult: Sendable, Equatable {
    public var vcpus = 0
    /// `memblock_free_all()` on the boot CPU (before `smp_init()`).
    public var bspPicoseconds: UInt64 = 0
    /// `deferred_init_memmap()`'s padata job: from its start to the last worker's end.
    public var padataPicoseconds: UInt64 = 0
    public var bspBlocks: UInt64 = 0
    public var padataBlocks: UInt64 = 0
    /// padata workers (`nworks`) and chunks of the job.
    public var workers = 0
    public var chunks = 0
    /// Blocks by the bound that set their length, indexed by `EagerAcceptBound.rawValue`.
    public var boundBlocks: [UInt64] = Array(repeating: 0, count: EagerAcceptBound.allCases.count)
    /// `unaccepted_memory_lock` across the accept (6.5.0-6.5.8 only).
    public var unacceptedLock = ContentionStats()
    /// EPT-violation exits of one steady 4 MiB block (1024 on a 4K host, 2 on a 2M host).
    public var exitsPerBlock: UInt64 = 0
    /// Scheduler events (steps run inline included).
    public var events: UInt64 = 0
    /// Of those, the steps a worker ran inline (replayed in bulk): 0 when stepping.
    public var inlineSteps: UInt64 = 0
    /// When each padata worker finished, from the job's start.
    public var workerEnds: [UInt64] = []
    public init() {}

    public var totalPicoseconds: UInt64 { bspPicoseconds + padataPicoseconds }
    /// The bound that set the length of most blocks (the boot CPU's included).
    /// - Complexity: O(1).
    public var dominantBound: EagerAcceptBound {
        EagerAcceptBound.allCases.max { boundBlocks[$0.rawValue] < boundBlocks[$1.rawValue] } ?? .vcpu
    }
}

/// Eager acceptance (`accept_memory=eager`) of a TDX guest's RAM above
/// 4 GiB on several vCPUs, as actors on the seeded `VirtualTimeScheduler`.
///
/// Which code accepts, on which threads, in which pieces (mm/mm_init.c,
/// mm/page_alloc.c, kernel/padata.c; 6.12.y, 6.16 and 7.0 alike):
/// `__free_pages_core()` calls `accept_memory(page_to_phys(page), PAGE_SIZE
/// << order)` for every MAX_PAGE_ORDER block that `page_contains_unaccepted()`
/// because `__free_unaccepted()` declines when `accept_memory=eager`. The
/// blocks are freed by `memblock_free_all()` on the boot CPU and, with
/// deferred struct page init, by `deferred_init_memmap()`:
/// `padata_do_multithreaded()` with `max_threads` = the node's CPUs
/// (`deferred_page_init_max_threads()`: x86's in arch/x86/mm/init_64.c,
/// later the generic one in mm/mm_init.c, the same value), `nworks = min(size / section,
/// max_threads)` workers (the calling thread is one), chunks of
/// `size / (nworks * 4)` rounded up to a section, each worker taking the next
/// chunk under `ps->lock` when it is done (`padata_mt_helper()`); each chunk
/// is `deferred_init_memmap_chunk()`: struct pages, then `__free_pages_core()`
/// of each 4 MiB block.
///
/// One block is one `accept_memory()` → `tdx_accept_memory()` call; its
/// operations (on a 4K host: per 2 MiB a 2M ACCEPT that exits, a 4K AUG and
/// SEPT.ADD, SIZE_MISMATCH, then 4K ACCEPTs each taking an EPT-violation
/// exit, `kvm_tdp_mmu_map()` under `mmu_lock` read, a guest_memfd folio
/// (`filemap_add_folio()` under the mapping's `xa_lock`, cleared), AUG, and
/// the re-executed ACCEPT zeroing 4 KiB with MOVDIR64B) are counted by
/// running the model's own `TDXAcceptor` on the host model once.
///
/// Shared resources: `mmu_lock` is taken for read only (no reader waits for
/// a reader); the module's locks are shared on 1.5+ and exclusive for AUG
/// and SEPT.ADD on 1.0; the guest_memfd `xa_lock` once per new folio; the
/// write bandwidth for the host's clear and the module's zeroing. Within a
/// block the ~1000 faults of its vCPU interleave with those of the others
/// at a granularity the model does not step: a block started while k vCPUs
/// accept lasts `max(own work, k × bytes / bandwidth, k × xa_lock holds,
/// k × exclusive S-EPT holds)`, the steady state of k identical fault loops
/// sharing FIFO locks and bandwidth (an approximation, stated as one). On
/// kernels before 50e782a86c98 (6.5.0-6.5.8) `unaccepted_memory_lock` is
/// held across the whole accept, a real block-sized lock, stepped exactly.
///
/// Bulk: an actor whose next steps all fall before every other actor's
/// pending event runs them inline (the scheduler's random stream skipped
/// as if each had been queued); tests hold this equal to stepping.
public struct EagerAcceptScaling {
    public let config: EagerAcceptConfig
    let costs: CostTable
    let calibration: Calibration
    /// Costs of one block: the steady one, and the first of each 1 GiB (its SEPT.ADD of a PD page).
    let steady: BlockCost
    let gibFirst: BlockCost

    struct BlockCost: Equatable {
        var acceptCPU: UInt64 = 0, initCPU: UInt64 = 0, bytes: UInt64 = 0
        var gmemHold: UInt64 = 0, septHold: UInt64 = 0, exits: UInt64 = 0
    }

    static let block: UInt64 = 4 << 20
    static let section: UInt64 = 128 << 20

    /// The model of `config` under `calibration`; counts a block's
    /// operations by running `TDXAcceptor` on three 4 MiB blocks of the host model.
    /// - Complexity: O(operations of three blocks), about 3,000 on a 4K host.
    public init(config: EagerAcceptConfig, calibration: Calibration) throws {
        try config.validate()
        self.config = config
        self.calibration = calibration
        costs = CostTable(calibration)
        // The operations of tdx_accept_memory() on 4 MiB blocks, from the acceptor model on this host model.
        let host = try BootSimulation.plainTDXHost(coveringBytes: (1 << 32) + (2 << 30), costs: costs, model: config.host)
        let acc = TDXAcceptor(host: host, driver: .linux, costs: costs)
        acc.stepByStep = true
        var clock = PhaseClock(vcpus: 1)
        // Blocks 0 and 1 of a GiB, then the first block of the next GiB (it adds the PD page's SEPT.ADD).
        var counts: [OpCounts] = []
        for i in [UInt64(0), 1, 256] {
            let before = clock.counts
            _ = acc.accept(AddressRange(start: (1 << 32) + i * Self.block, size: Self.block), vcpu: 0, clock: &clock)
            if i != 0 { counts.append(clock.counts - before) }
        }
        steady = Self.cost(counts[0], costs: costs, calibration: calibration, config: config)
        gibFirst = Self.cost(counts[1], costs: costs, calibration: calibration, config: config)
    }

    static func cost(_ c: OpCounts, costs: CostTable, calibration: Calibration, config: EagerAcceptConfig) -> BlockCost {
        var b = BlockCost()
        for (op, n) in c.nonZero {
            b.acceptCPU += costs.vcpuPicoseconds[op.index] * n
            b.bytes += costs.bytes[op.index] * n
        }
        let pages = block / 4096
        b.initCPU = costs.vcpuPicoseconds[Op.kernelStructPageInit.index] * pages
        b.bytes += costs.bytes[Op.kernelStructPageInit.index] * pages
        let augs = c[.tdxAug4K] + c[.tdxAug2M] + c[.tdxAug1G]
        b.gmemHold = augs * config.gmemLockNanoseconds * 1000
        if config.module == .v1_0 {
            // The SEAMCALL's own time, without the host's clear of the page (outside the module).
            for op in [Op.tdxAug4K, .tdxAug2M, .tdxAug1G, .tdxSeptAdd] {
                b.septHold += UInt64((calibration[op].nanoseconds * 1000).rounded()) * c[op]
            }
        }
        b.exits = c[.tdxAccept4KEPTViolation] + c[.tdxAccept2MEPTViolation] + c[.tdxAccept1GEPTViolation]
        return b
    }

    /// Whether the block at `addr` is the first of its 1 GiB.
    func cost(at addr: UInt64) -> BlockCost { addr % (1 << 30) == 0 ? gibFirst : steady }

    /// Length of a block started while `k` vCPUs accept, and its bound.
    func duration(_ b: BlockCost, k: Int) -> (UInt64, EagerAcceptBound) {
        let kk = UInt64(max(1, k))
        let bw = UInt64((Double(b.bytes) * Double(kk) / costs.sharedBytesPerSecond * 1e12).rounded())
        var best = (b.acceptCPU + b.initCPU, EagerAcceptBound.vcpu)
        for (v, bound) in [(bw, EagerAcceptBound.bandwidth), (kk * b.gmemHold, .gmemLock), (kk * b.septHold, .septLock)] where v > best.0 {
            best = (v, bound)
        }
        return best
    }

    /// The padata workers and chunks of `deferred_init_memmap()` over `[start, end)`.
    static func padata(start: UInt64, end: UInt64, maxThreads: Int) -> (workers: Int, chunks: [AddressRange]) {
        guard start < end else { return (0, []) }
        let size = alignUp(end, section) - start
        let nworks = Int(max(1, min(size / section, UInt64(max(1, maxThreads)))))
        return (nworks, GuestKernel.padataChunks(AddressRange(start: start, end: end), maxThreads: maxThreads))
    }

    /// Runs the boot CPU's part, then the padata job.
    /// - Complexity: O(blocks · log vCPUs) stepped; replayed in bulk, O((chunks + vCPUs) · log vCPUs) events
    ///   and O(blocks) arithmetic.
    public func run() -> EagerAcceptResult {
        var r = EagerAcceptResult()
        r.vcpus = config.vcpus
        let base: UInt64 = 1 << 32, end = base + config.highBytes
        let bspEnd = config.deferredStructPageInit ? min(end, base + Self.section) : end
        r.exitsPerBlock = steady.exits
        // memblock_free_all(): the boot CPU alone.
        var a = base
        while a + Self.block <= bspEnd {
            let (d, bound) = duration(cost(at: a), k: 1)
            r.bspPicoseconds += d; r.bspBlocks += 1; r.boundBlocks[bound.rawValue] += 1
            a += Self.block
        }
        guard bspEnd < end else { return r }
        let (workers, chunks) = Self.padata(start: bspEnd, end: end, maxThreads: config.vcpus)
        r.workers = workers; r.chunks = chunks.count
        var job = PadataJob(model: self, chunks: chunks, workers: workers)
        job.run(into: &r)
        return r
    }

    /// The padata job on the scheduler: each worker an actor.
    struct PadataJob {
        let m: EagerAcceptScaling
        let chunks: [AddressRange]
        var scheduler: VirtualTimeScheduler
        var nextChunk = 0
        /// Each worker's current chunk position and end.
        var at: [UInt64], chunkEnd: [UInt64]
        var active: Int
        var ends: [UInt64]
        var lock = QueuedSpinLock()

        init(model: EagerAcceptScaling, chunks: [AddressRange], workers: Int) {
            m = model; self.chunks = chunks
            scheduler = VirtualTimeScheduler(actors: workers, seed: model.config.seed)
            at = Array(repeating: 0, count: workers); chunkEnd = at
            active = workers
            ends = Array(repeating: 0, count: workers)
        }

        mutating func run(into r: inout EagerAcceptResult) {
            for w in 0..<at.count { scheduler.schedule(w, at: 0) }
            while let (w, t) = scheduler.next() {
                var now = t
                var inline: UInt64 = 0
                // Steps of this worker before any other pending event run inline.
                while let next = step(w, at: now, into: &r) {
                    let others = scheduler.nextTime ?? .max
                    let bulk = !m.config.stepEverything && next < others
                        && (m.config.locking == .acceptingList || active == 1)
                    if !bulk { scheduler.ranInline(w, events: inline, until: now); scheduler.schedule(w, at: next); inline = 0; break }
                    inline += 1; r.inlineSteps += 1; now = next
                }
                if inline > 0 { scheduler.ranInline(w, events: inline, until: now) }
            }
            r.padataBlocks = r.boundBlocks.reduce(0, +) - r.bspBlocks
            r.workerEnds = ends
            r.padataPicoseconds = ends.max() ?? 0
            r.unacceptedLock = lock.stats
            r.events = scheduler.steps
        }

        /// Worker `w` at `t`: the next block of its chunk, or the next chunk's
        /// first block, or nothing left (it leaves the job). Returns when it
        /// goes on, nil when it has left.
        mutating func step(_ w: Int, at t: UInt64, into r: inout EagerAcceptResult) -> UInt64? {
            if at[w] >= chunkEnd[w] {
                // padata_mt_helper(): the next chunk under ps->lock, or done.
                guard nextChunk < chunks.count else { active -= 1; ends[w] = t; return nil }
                at[w] = chunks[nextChunk].start; chunkEnd[w] = chunks[nextChunk].end
                nextChunk += 1
            }
            let addr = at[w]
            at[w] += EagerAcceptScaling.block
            let b = m.cost(at: addr)
            switch m.config.locking {
            case .acceptingList:
                let (d, bound) = m.duration(b, k: active)
                r.boundBlocks[bound.rawValue] += 1
                return t + d
            case .lockHeldAcrossAccept:
                // Struct pages first, then accept_memory() with unaccepted_memory_lock held throughout.
                var accept = b; accept.initCPU = 0
                let (d, bound) = m.duration(accept, k: 1)
                let requested = t + b.initCPU
                let granted = lock.acquire(at: requested, hold: d)
                r.boundBlocks[(granted > requested ? EagerAcceptBound.unacceptedLock : bound).rawValue] += 1
                return granted + d
            }
        }
    }

    /// `config` at each vCPU count of `vcpus`, in order.
    /// - Complexity: O(runs), each as `run()`.
    public static func sweep(_ config: EagerAcceptConfig, vcpus: [Int], calibration: Calibration) throws -> [EagerAcceptResult] {
        try vcpus.map { v in
            var c = config; c.vcpus = v
            return try EagerAcceptScaling(config: c, calibration: calibration).run()
        }
    }

    /// The vCPU count from which the next count of the sweep (`rows` in
    /// increasing vCPUs; doubling in the default sweep) shortens the run by
    /// less than `gain` (10%): where eager acceptance stops scaling. Nil when
    /// every step of `rows` still gains that much.
    /// - Complexity: O(rows).
    public static func knee(_ rows: [(vcpus: Int, picoseconds: UInt64)], gain: Double = 1.10) -> Int? {
        for (row, next) in zip(rows, rows.dropFirst()) where next.vcpus > row.vcpus {
            if Double(row.picoseconds) < gain * Double(next.picoseconds) { return row.vcpus }
        }
        return nil
    }
}
