public import CostModel
import MemoryModel

/// What runs on the host around one vCPU taking 4K accept faults while the
/// other vCPUs of the TD are idle and take their periodic tick, and
/// optionally while a host thread converts private 4K pages to shared.
public struct HostFaultContentionConfig: Sendable, Equatable {
    /// vCPUs of the TD: vCPU 0 faults, the others are idle.
    public var vcpus: Int
    /// The guest's tick rate on an idle vCPU (CONFIG_HZ; 0: no tick, as
    /// NO_HZ_IDLE gives a vCPU with nothing queued).
    public var hz: UInt64
    /// 4K accept faults vCPU 0 takes back to back.
    public var faults: UInt64
    /// Private-to-shared conversions of one 4K page a second
    /// (`KVM_SET_MEMORY_ATTRIBUTES` after a MapGPA; 0: none).
    public var conversionsPerSecond: UInt64
    /// How long TDH.VP.ENTER's epoch section (`adjust_tlb_tracking_state()`:
    /// lock, sample TD_EPOCH, `_lock_xadd_16b` REFCOUNT, unlock) and
    /// TDH.MEM.TRACK's exclusive section hold `epoch_lock`, in nanoseconds.
    /// An assumption (a few cache-line transfers); no figure is published.
    public var epochSectionNanoseconds: UInt64
    public var seed: UInt64
    /// Step every event even where nothing can contend (tests).
    public var stepEverything: Bool

    public init(vcpus: Int = 248, hz: UInt64 = 1000, faults: UInt64 = 10_000, conversionsPerSecond: UInt64 = 0,
                epochSectionNanoseconds: UInt64 = 50, seed: UInt64 = 0, stepEverything: Bool = false) {
        self.vcpus = vcpus; self.hz = hz; self.faults = faults; self.conversionsPerSecond = conversionsPerSecond
        self.epochSectionNanoseconds = epochSectionNanoseconds; self.seed = seed; self.stepEverything = stepEverything
    }

    /// One clear error for a configuration the model cannot run.
    /// - Complexity: O(1).
    public func validate() throws {
        guard (1...4096).contains(vcpus) else { throw CocomemError(.invalidArgument, "vcpus \(vcpus): must be 1 to 4096") }
        guard hz <= 10_000 else { throw CocomemError(.invalidArgument, "hz \(hz): must be at most 10000") }
        guard (1...10_000_000).contains(faults) else { throw CocomemError(.invalidArgument, "faults \(faults): must be 1 to 10000000") }
        guard conversionsPerSecond <= 1_000_000 else {
            throw CocomemError(.invalidArgument, "conversions per second \(conversionsPerSecond): must be at most 1000000")
        }
        guard epochSectionNanoseconds <= 1_000_000 else { throw CocomemError(.invalidArgument, "epoch section \(epochSectionNanoseconds) ns: must be at most 1 ms") }
    }
}

/// What the faulting vCPU, the idle vCPUs and the converter met.
public struct HostFaultContentionResult: Sendable, Equatable {
    public var faults: UInt64 = 0
    /// Virtual time from the first fault's TDCALL to the last ACCEPT's return.
    public var faultPicoseconds: UInt64 = 0
    /// One fault with nothing in its way: the guest's TDCALL, the TD exit,
    /// KVM's fault handling and TDH.VP.ENTER, TDH.MEM.PAGE.AUG, the
    /// re-executed ACCEPT.
    public var uncontendedFaultPicoseconds: UInt64 = 0
    /// `kvm->mmu_lock` taken for read by the faults and for write by the conversions.
    public var mmuRead = ContentionStats()
    public var mmuWrite = ContentionStats()
    /// TDH.MEM.PAGE.AUG that found `secure_ept_lock` held exclusive
    /// (TDX_OPERAND_BUSY, RET_PF_RETRY, retried in `tdx_handle_ept_violation()`).
    public var augBusy: UInt64 = 0
    /// TDH.VP.ENTER of the faulting vCPU and of idle vCPUs that found
    /// `epoch_lock` held by TDH.MEM.TRACK (TDX_OPERAND_BUSY; KVM enters again).
    public var faulterEnterBusy: UInt64 = 0
    public var idleEnterBusy: UInt64 = 0
    /// Entries held back by `tdh_do_no_vcpus()` (`wait_for_sept_zap`).
    public var entriesHeldBack: UInt64 = 0
    /// TDH.MEM.TRACK that found `epoch_lock` held shared by an entering vCPU.
    public var trackBusy: UInt64 = 0
    /// `tdh_do_no_vcpus()` retries (a BUSY TRACK retried with every vCPU kicked out).
    public var doNoVCPUsRetries: UInt64 = 0
    /// IPIs to vCPUs in guest mode (`KVM_REQ_OUTSIDE_GUEST_MODE`), and how many hit the faulting vCPU.
    public var kicks: UInt64 = 0
    public var faulterKicked: UInt64 = 0
    /// Ticks the idle vCPUs took (wake, TDH.VP.ENTER, tick, TDVMCALL(HLT)).
    public var idleTicks: UInt64 = 0
    public var conversions: UInt64 = 0
    /// Events handed out by the scheduler (0 when replayed in bulk).
    public var events: UInt64 = 0
    /// Lock-order violations seen while stepping: a zap's BLOCK, granted
    /// `mmu_lock` for write, finding `secure_ept_lock` held (a fault's AUG
    /// still in the module, which only its read lock may cover). Always 0
    /// unless the model is broken; tests hold it there.
    public var lockOrderViolations: UInt64 = 0
    public init() {}

    /// Mean cost of one fault, in picoseconds.
    public var perFaultPicoseconds: UInt64 { faults == 0 ? 0 : faultPicoseconds / faults }
}

/// The host side of concurrency on the 4K accept-fault path of a TDX guest,
/// as actors on the seeded `VirtualTimeScheduler`, each lock taken where
/// the source takes it:
///
/// - The fault (vCPU 0): the guest's `TDG.MEM.PAGE.ACCEPT` meets a missing
///   S-EPT leaf and exits (`tdx.accept.4k.ept_violation`); the TD exit, KVM's
///   handling and the next TDH.VP.ENTER (`tdx.ept_violation_exit`, charged
///   before the map); `kvm_tdp_mmu_map()` under `read_lock(&kvm->mmu_lock)`
///   with `tdx_sept_set_private_spte()` → TDH.MEM.PAGE.AUG (`tdx.aug.4k`),
///   which takes the TDR and TDCS `op_state_lock` shared and
///   `secure_ept_lock` shared (tdh_mem_page_aug.c); a BUSY there is
///   RET_PF_RETRY, retried in `tdx_handle_ept_violation()`'s local loop.
///   Then TDH.VP.ENTER's epoch section, `epoch_lock` shared
///   (`adjust_tlb_tracking_state()`; BUSY while TDH.MEM.TRACK holds it
///   exclusive), and the re-executed ACCEPT (`tdx.accept.4k.success`).
/// - Each idle vCPU: halted in `kvm_vcpu_halt()` after TDVMCALL(HLT), out
///   of guest mode; at every tick (`hz`, a seeded phase) the LAPIC timer
///   wakes it, TDH.VP.ENTER takes `epoch_lock` shared, the guest runs its
///   tick and exits with TDVMCALL(HLT). It is in guest mode, and kicked
///   by `tdx_track()`, for `kernel.idle_tick_exit - kvm.vcpu_kick` of each
///   tick (an assumption: the tick's second half, handler and HLT exit).
///   It takes no `mmu_lock` and no S-EPT lock.
/// - The converter (when `conversionsPerSecond > 0`, seeded arrivals
///   `conversionsPerSecond` a second on average): a 4K private leaf
///   zapped as `tdx_sept_remove_private_spte()` does under `write_lock()`:
///   TDH.MEM.RANGE.BLOCK (`secure_ept_lock` exclusive), `tdx_track()`
///   (TDH.MEM.TRACK, `epoch_lock` exclusive; BUSY when a vCPU is in
///   TDH.VP.ENTER's epoch section, then `tdh_do_no_vcpus()` holds entries
///   back, kicks every vCPU in guest mode and retries; then
///   `KVM_REQ_OUTSIDE_GUEST_MODE` to every vCPU in guest mode, one
///   `kvm.vcpu_kick` each), TDH.MEM.PAGE.REMOVE and WBINVD.
///
/// `mmu_lock` is the queued rwlock: a reader waits while a writer holds it
/// or waits for it (qrwlock holds new readers behind a waiting writer); a
/// writer waits for the readers in. The module's locks never wait
/// (`ShareExclusiveTryLock`). The fault's cost comes out of these steps;
/// nothing scales it by the vCPU count.
///
/// Bulk: without a converter nothing ever takes a lock exclusive, so no
/// try fails and no reader waits; the run is replayed in O(vCPUs) (faults
/// back to back, ticks counted per vCPU up to the last fault's end).
/// Tests hold this equal to stepping.
public struct HostFaultContention {
    enum FaultStage { case exitToMap, map(requested: UInt64), enter, done }
    enum ConverterStage { case request, grant(requested: UInt64), track, retryTrack, release, done }

    public let config: HostFaultContentionConfig
    let accEV: UInt64, exit: UInt64, aug: UInt64, accOK: UInt64
    let tickWindow: UInt64, kick: UInt64, epochHold: UInt64
    let block: UInt64, track: UInt64, remove: UInt64, wbinvd: UInt64
    let tickPeriod: UInt64, conversionPeriod: UInt64

    public init(config: HostFaultContentionConfig, costs: CostTable) {
        self.config = config
        let ps = costs.vcpuPicoseconds
        accEV = ps[Op.tdxAccept4KEPTViolation.index]
        exit = ps[Op.tdxEPTViolationExit.index]
        aug = ps[Op.tdxAug4K.index]
        accOK = ps[Op.tdxAccept4KSuccess.index]
        kick = ps[Op.kvmVCPUKick.index]
        let tick = ps[Op.kernelIdleTickExit.index]
        tickWindow = tick > kick ? tick - kick : tick
        epochHold = config.epochSectionNanoseconds * 1000
        block = ps[Op.tdxBlock.index]; track = ps[Op.tdxTrack.index]; remove = ps[Op.tdxRemove.index]
        wbinvd = ps[Op.tdxWbinvd4K.index]
        tickPeriod = config.hz == 0 ? 0 : 1_000_000_000_000 / config.hz
        conversionPeriod = config.conversionsPerSecond == 0 ? 0 : 1_000_000_000_000 / config.conversionsPerSecond
    }

    /// One fault with nothing in its way.
    public var uncontendedFault: UInt64 { accEV + exit + aug + accOK }

    /// Runs the faults to the end.
    /// - Complexity: O(vCPUs) replayed; stepped, O(events · log actors) with
    ///   events ≈ 3 per fault + 1 per tick + 4 per conversion.
    public func run() -> HostFaultContentionResult {
        var random = SplitMix64(seed: config.seed)
        let idlePhases = (1..<max(1, config.vcpus)).map { _ in tickPeriod == 0 ? 0 : random.next() % tickPeriod }
        let convPhase = conversionPeriod == 0 ? 0 : random.next() % conversionPeriod
        if !config.stepEverything && config.conversionsPerSecond == 0 { return replay(idlePhases: idlePhases) }
        var s = Stepper(model: self, idlePhases: idlePhases, convPhase: convPhase)
        return s.run()
    }

    /// The run without exclusive lockers: every try succeeds at once.
    func replay(idlePhases: [UInt64]) -> HostFaultContentionResult {
        var r = HostFaultContentionResult()
        r.faults = config.faults
        r.uncontendedFaultPicoseconds = uncontendedFault
        r.faultPicoseconds = config.faults * uncontendedFault
        r.mmuRead.acquisitions = config.faults
        let end = r.faultPicoseconds
        if tickPeriod > 0 {
            for p in idlePhases where p < end { r.idleTicks += (end - 1 - p) / tickPeriod + 1 }
        }
        return r
    }

    struct Stepper {
        let m: HostFaultContention
        let idlePhases: [UInt64]
        var scheduler: VirtualTimeScheduler
        var r = HostFaultContentionResult()
        var sept = ShareExclusiveTryLock()
        var epoch = ShareExclusiveTryLock()
        // mmu_lock (one reader: the fault; one writer: the converter).
        var readHeldUntil: UInt64 = 0
        var writerHeld = false
        var writerWaiting = false
        var parkedReader: UInt64? = nil
        // Guest mode: the faulting vCPU from its entry to its next exit; an idle vCPU in its tick window.
        var inGuestUntil: [UInt64]
        var faulterDelay: UInt64 = 0
        var noEntryUntil: UInt64 = 0
        var fault: FaultStage = .exitToMap
        var done: UInt64 = 0
        var faulterEnd: UInt64? = nil
        var nextTick: [UInt64]
        var conv: ConverterStage = .request
        var nextConversion: UInt64
        var random: SplitMix64
        let converter: Int

        init(model: HostFaultContention, idlePhases: [UInt64], convPhase: UInt64) {
            m = model
            self.idlePhases = idlePhases
            converter = model.config.vcpus
            scheduler = VirtualTimeScheduler(actors: model.config.vcpus + 1, seed: model.config.seed)
            inGuestUntil = Array(repeating: 0, count: model.config.vcpus)
            nextTick = [0] + idlePhases
            nextConversion = convPhase
            random = SplitMix64(seed: model.config.seed ^ 0x636F_6E76)
        }

        mutating func run() -> HostFaultContentionResult {
            r.uncontendedFaultPicoseconds = m.uncontendedFault
            // The first fault: the guest's TDCALL at 0 exits.
            scheduler.schedule(0, at: m.accEV + m.exit)
            if m.tickPeriod > 0 { for v in 1..<m.config.vcpus { scheduler.schedule(v, at: nextTick[v]) } }
            if m.conversionPeriod > 0 { scheduler.schedule(converter, at: nextConversion) }
            while let (a, t) = scheduler.next() {
                r.events &+= 1
                if a == 0 { stepFault(at: t) } else if a == converter { stepConverter(at: t) } else { stepIdle(a, at: t) }
            }
            r.faults = done
            r.faultPicoseconds = faulterEnd ?? 0
            return r
        }

        func finished(_ t: UInt64) -> Bool { faulterEnd.map { t >= $0 } ?? false }

        mutating func stepFault(at t: UInt64) {
            if faulterDelay > 0 {
                // Kicked out of guest mode: one more exit and entry before it goes on.
                scheduler.schedule(0, at: t + faulterDelay); faulterDelay = 0; return
            }
            switch fault {
            case .exitToMap:
                fault = .map(requested: t)
                tryMap(at: t, requested: t)
            case .map(let requested):
                tryMap(at: t, requested: requested)
            case .enter:
                if t < noEntryUntil { r.entriesHeldBack &+= 1; scheduler.schedule(0, at: noEntryUntil); return }
                guard epoch.tryShared(at: t, hold: m.epochHold) else {
                    r.faulterEnterBusy &+= 1; scheduler.schedule(0, at: epoch.exclusiveFreeAt); return
                }
                // The ACCEPT runs again and succeeds; the next one's TDCALL exits.
                let returned = t + m.accOK
                done &+= 1
                if done == m.config.faults {
                    fault = .done; faulterEnd = returned; inGuestUntil[0] = returned
                } else {
                    fault = .exitToMap
                    inGuestUntil[0] = returned + m.accEV
                    scheduler.schedule(0, at: returned + m.accEV + m.exit)
                }
            case .done: return
            }
        }

        /// `kvm_tdp_mmu_map()` under the read lock, TDH.MEM.PAGE.AUG in it.
        mutating func tryMap(at t: UInt64, requested: UInt64) {
            if writerHeld || writerWaiting { parkedReader = requested; fault = .map(requested: requested); return }
            parkedReader = nil
            r.mmuRead.record(requested: requested, granted: t)
            readHeldUntil = t + m.aug
            guard sept.tryShared(at: t, hold: m.aug) else {
                // TDX_OPERAND_BUSY → -EBUSY → RET_PF_RETRY; the local retry loop drops the lock and faults again.
                r.augBusy &+= 1; readHeldUntil = t
                fault = .map(requested: sept.exclusiveFreeAt)
                scheduler.schedule(0, at: sept.exclusiveFreeAt)
                return
            }
            fault = .enter
            scheduler.schedule(0, at: t + m.aug)
        }

        mutating func stepIdle(_ v: Int, at t: UInt64) {
            if finished(t) { return }
            if t < noEntryUntil { r.entriesHeldBack &+= 1; scheduler.schedule(v, at: noEntryUntil); return }
            guard epoch.tryShared(at: t, hold: m.epochHold) else {
                r.idleEnterBusy &+= 1; scheduler.schedule(v, at: epoch.exclusiveFreeAt); return
            }
            r.idleTicks &+= 1
            inGuestUntil[v] = t + m.tickWindow
            // hrtimer: the next tick after this one (ticks missed while held back merge).
            repeat { nextTick[v] += m.tickPeriod } while nextTick[v] <= t
            scheduler.schedule(v, at: nextTick[v])
        }

        /// vCPUs in guest mode at `t` get `KVM_REQ_OUTSIDE_GUEST_MODE`'s IPI and are waited for.
        mutating func kickInGuest(at t: UInt64) -> UInt64 {
            var n: UInt64 = 0
            for v in inGuestUntil.indices where inGuestUntil[v] > t {
                n += 1
                if v == 0 { r.faulterKicked &+= 1; faulterDelay += m.kick } else { inGuestUntil[v] = t }
            }
            r.kicks &+= n
            return n
        }

        mutating func stepConverter(at t: UInt64) {
            if finished(t) { conv = .done; return }
            switch conv {
            case .request:
                conv = .grant(requested: t)
                grantWrite(at: t, requested: t)
            case .grant(let requested):
                grantWrite(at: t, requested: requested)
            case .track:
                // TDH.MEM.TRACK: epoch_lock exclusive at the start of the call.
                if epoch.tryExclusive(at: t, hold: m.epochHold) {
                    finishZap(trackedAt: t)
                } else {
                    // tdh_do_no_vcpus(): no entries, every vCPU in guest mode kicked out, TRACK again.
                    r.trackBusy &+= 1; r.doNoVCPUsRetries &+= 1
                    let n = kickInGuest(at: t)
                    let retry = max(t + n * m.kick, epoch.sharedFreeAt)
                    noEntryUntil = retry
                    conv = .retryTrack
                    scheduler.schedule(converter, at: retry)
                }
            case .retryTrack:
                if epoch.tryExclusive(at: t, hold: m.epochHold) {
                    finishZap(trackedAt: t)
                } else {
                    r.trackBusy &+= 1
                    noEntryUntil = max(noEntryUntil, epoch.sharedFreeAt)
                    scheduler.schedule(converter, at: epoch.sharedFreeAt)
                }
            case .release:
                release(at: t)
            case .done: return
            }
        }

        /// `write_lock(&kvm->mmu_lock)`; then TDH.MEM.RANGE.BLOCK.
        mutating func grantWrite(at t: UInt64, requested: UInt64) {
            if readHeldUntil > t { writerWaiting = true; scheduler.schedule(converter, at: readHeldUntil); return }
            writerWaiting = false; writerHeld = true
            r.mmuWrite.record(requested: requested, granted: t)
            if !sept.tryExclusive(at: t, hold: m.block) { r.lockOrderViolations &+= 1 }
            conv = .track
            scheduler.schedule(converter, at: t + m.block)
        }

        /// The TRACK succeeded at `t`: `tdx_track()`'s kicks, REMOVE and
        /// WBINVD under the write lock, released at the `.release` event.
        mutating func finishZap(trackedAt t: UInt64) {
            let afterTrack = t + m.track
            let n = kickInGuest(at: afterTrack)
            noEntryUntil = min(noEntryUntil, t)
            conv = .release
            scheduler.schedule(converter, at: afterTrack + n * m.kick + m.remove + m.wbinvd)
        }

        /// `write_unlock()`: a fault queued behind the writer takes the read
        /// lock now, before any writer that comes later (qrwlock's queue).
        mutating func release(at t: UInt64) {
            writerHeld = false
            r.conversions &+= 1
            if let req = parkedReader, !finished(t) { parkedReader = nil; tryMap(at: t, requested: req) }
            // Arrivals are seeded, an inter-arrival time uniform on [0, 2/rate): an assumption (how
            // MapGPA conversions arrive is not published), chosen so they do not run in lockstep with the faults.
            nextConversion = max(nextConversion + random.next() % (2 * m.conversionPeriod), t)
            conv = .request
            scheduler.schedule(converter, at: nextConversion)
        }
    }
}
