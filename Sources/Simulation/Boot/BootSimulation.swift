public import CoCoGuest
public import CostModel
public import Firmware
public import GuestKernel
public import KVM
public import MemoryModel
import SNP
import TDXModule

/// Virtual time of each phase, in seconds.
public struct PhaseTimes: Sendable {
    public var firmware = 0.0, efiStub = 0.0, kernelBoot = 0.0, deferredInit = 0.0
    public var earlyAllocations = 0.0, userspace = 0.0, workload = 0.0
    public var totalBoot: Double { firmware + efiStub + kernelBoot + deferredInit + earlyAllocations + userspace }
}

/// How far a boot's times can be trusted (issue 17): the times at both
/// ends of the calibration's ranges, and whether the guest is larger than
/// any source measured. Filled by the caller that asks (`cocomem boot`).
public struct CalibrationNote: Sendable {
    /// The profile the costs came from (nil: the file's base values).
    public var profile: String?
    /// Total boot time and workload time at the cheap and the dear end of
    /// every calibrated range (with the base values inside).
    public var totalBootBand: ClosedRange<Double>?
    public var workloadBand: ClosedRange<Double>?
    /// What lies beyond the calibrated range (`CalibratedRange.extrapolation`).
    public var extrapolation: String?
    public init(profile: String?, totalBootBand: ClosedRange<Double>?, workloadBand: ClosedRange<Double>?, extrapolation: String?) {
        self.profile = profile; self.totalBootBand = totalBootBand; self.workloadBand = workloadBand; self.extrapolation = extrapolation
    }
}

/// Everything a boot produces.
public struct BootResult {
    /// Set by `cocomem boot`: the band and range of these times.
    public var calibrationNote: CalibrationNote? = nil
    public var scenario: Scenario
    public var firmware: FirmwareBootResult
    public var kernel: GuestKernel?
    public var acceptedFirmware: UInt64 = 0
    public var acceptedStub: UInt64 = 0
    public var acceptedKernelBoot: UInt64 = 0
    public var acceptedWorkload: UInt64 = 0
    public var times = PhaseTimes()
    public var counts = OpCounts()
    public var buildCounts = OpCounts()
    public var perPhaseCounts: [(String, OpCounts)] = []
    public var committedBytes: UInt64 = 0
    public var fullyAcceptedAfter: Double? = nil
    public var events: [String] = []
    public var outcome: AcceptOutcome = .ok
    /// What the run lost or clamped while completing: memory the kernel
    /// could not use, allocations given less than they asked for. A run
    /// that is otherwise ok with any of these is `degraded`.
    public var degradations: [String] = []
    /// The KVM host model the TD ran on (nil for SNP and the placeholder host).
    public var host: TDXVM? = nil
    /// Conversions between private and shared memory since the platform
    /// started, and the guest memory shared at the end.
    public var sharedMemory = SharedMemoryStats()
    public var sharedBytes: UInt64 = 0
    /// The KVM SEV-SNP host model the guest ran on (`--host snp`), or nil.
    public var snpHost: SNPVM? = nil
    /// What the run recorded over virtual time (issue 14): phases, series,
    /// memory snapshots, vCPU lanes, allocation latency.
    public var record = RunRecord()

    public var outcomeString: String {
        switch outcome {
        case .ok: degradations.isEmpty ? "ok" : "degraded: " + degradations.joined(separator: "; ")
        case .terminated(let why): "guest_terminated: \(why)"
        }
    }

    /// Whether the run completed but lost or clamped something.
    public var isDegraded: Bool { outcome == .ok && !degradations.isEmpty }
}

/// Assembles firmware, platform and kernel for a scenario and boots it.
public struct BootSimulation {
    public let scenario: Scenario
    public let costs: CostTable
    /// Told the bytes accepted as a `--step-by-step` boot goes (the one
    /// boot mode slow enough to need it); nil: nobody is shown progress.
    /// It sees only how far the run is, never changes it.
    public let progress: (any ProgressReporter)?
    /// The memory devices QEMU has plugged during this run (`hotplug=` phases).
    let devices: MemoryDevices

    public init(scenario: Scenario, calibration: Calibration, progress: (any ProgressReporter)? = nil) {
        self.scenario = scenario
        costs = CostTable(calibration)
        self.progress = progress
        devices = MemoryDevices(layout: scenario.hotplugLayout)
    }

    struct Acceptors {
        var firmware: any ArchAcceptor
        var stub: any ArchAcceptor
        var kernel: any ArchAcceptor
        var platform: any GuestPlatform
        var buildCounts: OpCounts
        var vm: TDXVM? = nil
        /// The SEV-SNP host model (`--host snp`).
        var snpVM: SNPVM? = nil
        /// What the run records (nil when the scenario does not record).
        var recorder: Recorder? = nil
    }

    /// The memslots QEMU creates for a q35 TD: RAM below 4 GiB, RAM above
    /// it, and the firmware flash (each bound to a guest_memfd).
    static func memslots(_ layout: Q35Layout, backing: GmemBacking) -> [Memslot] {
        var slots = [Memslot(id: 1, baseGFN: GuestFrameNumber(0), pages: layout.lowRAM.upperAddress.frame.value, backing: backing)]
        if let h = layout.highRAM { slots.append(Memslot(id: 2, baseGFN: h.lowerAddress.frame, pages: h.bytes.frames(), backing: backing)) }
        slots.append(Memslot(id: 3, baseGFN: Q35Layout.flash.lowerAddress.frame, pages: Q35Layout.flash.bytes.frames(), backing: .buddy))
        return slots
    }

    /// A runnable TD on the upstream host (4K private mappings) with one
    /// memslot covering `[0, bytes)`, for tools that accept memory directly.
    public static func plainTDXHost(coveringBytes bytes: UInt64, costs: CostTable) throws -> TDXVM {
        try plainTDXHost(coveringBytes: bytes, costs: costs, model: .tdx)
    }

    /// The same on the host model `model`: `.tdxHuge` maps private memory
    /// at 2M (hugetlb-backed guest_memfd), as the Intel downstream kernels
    /// behind accept-90g did (docs/CALIBRATION.md).
    public static func plainTDXHost(coveringBytes bytes: UInt64, costs: CostTable, model: TDXHostModel) throws -> TDXVM {
        let (opts, features) = model.configuration
        let slot = Memslot(id: 1, baseGFN: GuestFrameNumber(0), pages: ByteCount(alignUp(bytes, PageLevel.size1G.bytes)).frames(),
                           backing: model == .tdxHuge ? .hugetlb2M : .buddy)
        let vm = try TDXVM(options: opts, features: features, vcpus: 1, slots: [slot], costs: costs)
        vm.finalize()
        return vm
    }

    /// The KVM host model for a TDX scenario, with the initial image added.
    func makeTDXVM(_ layout: Q35Layout, added: Range<UInt64>, flash: Range<UInt64>) throws -> (TDXVM, OpCounts) {
        let s = scenario
        var (opts, defaultFeatures) = s.tdxHost.configuration
        if let d = s.dpamtSeries { opts.dpamtSeries = d }
        if let b = s.hostPhysBits { opts.hostPhysBits = b }
        if let p = s.hostPlacement { opts.septPlacement = p }
        if let n = s.hostIsolatedFreePages { opts.hostIsolatedFreePages = n }
        var features = defaultFeatures
        features.privateMappings1G = s.tdxModule1G
        let backing = s.gmemBacking ?? (s.tdxHost == .tdxHuge ? .hugetlb2M : .buddy)
        let vm = try TDXVM(options: opts, features: features, vcpus: s.vcpus, slots: Self.memslots(layout, backing: backing), costs: costs)
        if s.traceHost { vm.hostTrace = HostTrace() }
        // --step-by-step steps the host's zaps too (each leaf's BLOCK, TRACK, REMOVE).
        vm.stepsZaps = s.stepByStep
        var build = try vm.addInitialMemory(Range(raw: added))
        build.add(try vm.addInitialMemory(Range(raw: flash)))
        vm.finalize()
        return (vm, build)
    }

    func makeAcceptors(_ layout: Q35Layout) throws -> Acceptors {
        let s = scenario
        // The host's build interface still takes raw frame numbers; both ranges are page-aligned.
        let added = Q35Layout.firmwareAddedRAM.frames.raw
        let flash = Q35Layout.flash.frames.raw
        switch s.platform {
        case .tdx:
            let (vm, build) = try makeTDXVM(layout, added: added, flash: flash)
            let fw = TDXAcceptor(host: vm, driver: .edk2(pageSize: .size2M), costs: costs)
            let linux = TDXAcceptor(host: vm, driver: .linux, costs: costs)
            return Acceptors(firmware: fw, stub: linux, kernel: linux, platform: TDXGuestPlatform(host: vm), buildCounts: build, vm: vm)
        case .snp where s.snpHost:
            return try makeSNPHostAcceptors(layout, added: Range(raw: added), flash: Range(raw: flash))
        case .snp:
            let p = SNPPlatform(policy: s.hostMapping == .map2M ? .back2M : .back4K, prefaultOnPSC: s.snpPrefault)
            p.launchUpdate(Range(raw: added)); p.launchUpdate(Range(raw: flash))
            // The EFI stub accepts through the MSR protocol, as d54d610243a4 made it (before it the stub
            // ran the decompressor's GHCB path under the firmware's page tables, which that commit says
            // cannot work; that outcome is not modelled, docs/KEXEC.md).
            let stub = SNPAcceptor(platform: p, driver: .linuxMSR, costs: costs)
            configureLinuxSNPAcceptor(stub, version: s.kernel.version)
            let platform = SNPGuestPlatform(platform: p)
            platform.evictsCache = stub.evictsCache
            return Acceptors(firmware: SNPAcceptor(platform: p, driver: .edk2, costs: costs),
                             stub: stub,
                             kernel: SNPAcceptor(platform: p, driver: .linuxGHCB, costs: costs),
                             platform: platform, buildCounts: OpCounts())
        }
    }

    /// The KVM SEV-SNP host model for an SNP scenario (`--host snp`): q35's
    /// memslots on guest_memfd (buddy pages for `--host-mapping 4k`, hugetlb
    /// 2M folios for `2m`), the firmware image measured by
    /// KVM_SEV_SNP_LAUNCH_UPDATE, the vCPUs' VMSAs made guest-owned by
    /// KVM_SEV_SNP_LAUNCH_FINISH, and the guest's drivers as `SNPHostAcceptor`s
    /// over one `SNPHostGuest`.
    func makeSNPHostAcceptors(_ layout: Q35Layout, added: Range<GuestFrameNumber>, flash: Range<GuestFrameNumber>) throws -> Acceptors {
        let s = scenario
        let vm = try SNPVM(vcpus: s.vcpus, slots: Self.memslots(layout, backing: s.hostMapping == .map2M ? .hugetlb2M : .buddy))
        for r in [added, flash] {
            if case .invalid(let why) = vm.launchUpdate(r) { throw CocomemError(.invalidScenario, "SNP host: SNP_LAUNCH_UPDATE: \(why)") }
        }
        vm.launchFinish()
        vm.prefaultOnPSC = s.snpPrefault
        if s.traceHost { vm.traceHost(costs: costs) }
        let build = vm.ops
        let guest = SNPHostGuest(host: vm)
        let stub = SNPHostAcceptor(guest: guest, driver: .linuxMSR, costs: costs)
        configureLinuxSNPAcceptor(stub, version: s.kernel.version)
        let platform = SNPHostPlatform(vm: vm, guest: guest)
        platform.evictsCache = stub.evictsCache
        return Acceptors(firmware: SNPHostAcceptor(guest: guest, driver: .edk2, costs: costs), stub: stub,
                         kernel: SNPHostAcceptor(guest: guest, driver: .linuxGHCB, costs: costs),
                         platform: platform, buildCounts: build, snpVM: vm)
    }

    /// Sets what a Linux SNP driver does besides PSC and PVALIDATE for
    /// kernel `version` in this scenario: `sev_evict_cache()` (7b306dfa326f,
    /// unless the CPU has COHERENCY_SFW_NO) and the SVSM at VMPL>0.
    func configureLinuxSNPAcceptor(_ a: SNPAcceptor, version: KernelVersion) {
        a.evictsCache = version.snpEvictsCacheAfterValidation && !scenario.snpCoherencySfwNo
        a.vmpl = scenario.snpVMPL
    }

    /// The same for a driver on the SNP host model (VMPL 0 only).
    func configureLinuxSNPAcceptor(_ a: SNPHostAcceptor, version: KernelVersion) {
        a.evictsCache = version.snpEvictsCacheAfterValidation && !scenario.snpCoherencySfwNo
    }

    /// The decompressor's `arch_accept_memory()` on SNP
    /// (arch/x86/boot/compressed/sev.c `snp_accept_memory()`): the MSR
    /// protocol a page at a time from d54d610243a4, 64-entry GHCB
    /// descriptors before it. Nil on TDX, where it is the kernel's
    /// `tdx_accept_memory()`.
    func decompressorAcceptor(_ platform: any GuestPlatform, version: KernelVersion) -> (any ArchAcceptor)? {
        if let h = platform as? SNPHostPlatform {
            let a = SNPHostAcceptor(guest: SNPHostGuest(host: h.vm), driver: version.snpEarlyAcceptUsesMSRProtocol ? .linuxMSR : .linuxGHCB, costs: costs)
            a.stepByStep = scenario.stepByStep
            configureLinuxSNPAcceptor(a, version: version)
            return a
        }
        guard let p = (platform as? SNPGuestPlatform)?.platform else { return nil }
        let a = SNPAcceptor(platform: p, driver: version.snpEarlyAcceptUsesMSRProtocol ? .linuxMSR : .linuxGHCB, costs: costs)
        a.stepByStep = scenario.stepByStep
        configureLinuxSNPAcceptor(a, version: version)
        return a
    }

    /// Runs the whole boot and the workload.
    public func run() throws -> BootResult {
        try bootShowingProgress().result
    }

    /// `boot()`, with the progress line of a `step-by-step` boot.
    func bootShowingProgress() throws -> (result: BootResult, acceptors: Acceptors) {
        guard scenario.stepByStep, let progress else { return try boot() }
        // An upper bound: a lazy boot accepts only part of the guest, and
        // holes are never accepted, so the line shows no ETA.
        let task = ProgressTask("step-by-step boot, memory accepted", total: scenario.memory, totalIsExact: false)
        return try progress.run(task) { try boot() }
    }

    /// The firmware, the EFI stub and the kernel's boot, returning the
    /// platform the guest runs on with the result (kexec boots the next
    /// kernel on the same platform).
    func boot() throws -> (result: BootResult, acceptors: Acceptors) {
        let s = scenario
        try s.validate()
        let layout = try Q35Layout(memory: s.memory)
        var acc = try makeAcceptors(layout)
        for a in [acc.firmware, acc.stub, acc.kernel] {
            a.stepByStep = s.stepByStep
            if s.stepByStep, let progress {
                (a as? TDXAcceptor)?.progress = progress
                (a as? SNPAcceptor)?.progress = progress
            }
        }
        let recorder = s.record ? Recorder(costs: costs, vcpus: s.vcpus) : nil
        recorder?.start(vm: acc.vm, snp: (acc.platform as? SNPGuestPlatform)?.platform, snpVM: acc.snpVM)
        acc.recorder = recorder
        var fwConfig = FirmwareConfig(generation: s.firmware)
        fwConfig.partialAcceptBytes = s.partialAcceptBytes
        fwConfig.snpAcceptanceProtocol = s.snpAcceptanceProtocol
        // An edk2 tag before edk2-stable202511 lacks b15f98e68f (the TDVF tail fix).
        fwConfig.tdvfAcceptsSub2MTail = s.edk2Release?.hasOddSizeBelow2816MFix ?? true
        fwConfig.softReserved = s.softReservedRange
        fwConfig.softReservedHandling = s.softReservedHandling
        prepareHotplug(&fwConfig, platform: acc.platform)
        var loader = s.loader
        loader.hotplugAwareness = s.kernel.hotplugAcceptance.stubAwareness(hotplugWindow: fwConfig.hotplugWindow)
        // The 2022 kernels had no accept_memory=eager: eager meant firmware accepting everything.
        let eagerFirmware = !s.lazy && s.firmware == .tdvf2022
        let fw = try FirmwareBoot(layout: layout, config: fwConfig, loader: loader, vcpus: s.vcpus)
            .run(acceptor: acc.firmware, stubAcceptor: acc.stub, costs: costs, eagerFirmware: eagerFirmware, platform: acc.platform,
                 onHandOff: recorder.map { rec in { map, clock in
                     rec.handOff(map, at: clock.seconds(rec.costs))
                     // The EFI stub's clock starts at the hand-off.
                     rec.vm?.hostTrace?.timeBase = clock.seconds(rec.costs)
                     rec.snpVM?.hostTrace?.timeBase = clock.seconds(rec.costs)
                 } })
        var r = BootResult(scenario: s, firmware: fw)
        r.buildCounts = acc.buildCounts
        r.events = fw.events
        r.acceptedFirmware = fw.firmwareAccepted.reduce(0) { $0 + $1.size }
        r.acceptedStub = fw.stubAccepted.reduce(0) { $0 + $1.size }
        r.times.firmware = fw.firmwareClock.seconds(costs)
        r.times.efiStub = fw.stubClock.seconds(costs)
        r.perPhaseCounts = [("firmware", fw.firmwareClock.counts), ("efi_stub", fw.stubClock.counts)]
        r.outcome = fw.outcome
        recorder?.firmwareDone(r, fw)
        if fw.lostBytes > 0 {
            // setup_e820() (FirmwareBoot): type 15 left in the map the kernel cannot use.
            let why = !s.loader.kernelSupportsUnaccepted ? "kernel without CONFIG_UNACCEPTED_MEMORY"
                : "the EFI stub did not run (the loader called ExitBootServices)"
            r.degradations.append("\(why): \(ByteCount(fw.lostBytes)) of \(ByteCount(s.memory)) is EFI type 15 (unaccepted), treated as reserved and lost")
        }
        guard fw.outcome == .ok else { return (finish(&r, acc), acc) }

        if s.platform == .snp, s.snpVMPL > 0, !s.kernel.version.snpRunsBelowVMPL0 {
            // Before 99ef9f59847c (6.11) sev_enable() insists on VMPL0: enforce_vmpl0()'s RMPADJUST of the
            // boot GHCB page fails below it and the guest terminates before the kernel proper runs.
            r.outcome = .terminated("SNP: kernel \(s.kernel.version) at VMPL\(s.snpVMPL): enforce_vmpl0()'s RMPADJUST fails below VMPL0 and the guest terminates (GHCB_TERM_NOT_VMPL0); SVSM support is 99ef9f59847c, 6.11")
            return (finish(&r, acc), acc)
        }
        let unaccepted = fw.table.map { UnacceptedMemory(table: $0, acceptor: acc.kernel, costs: costs) }
        let earlyUHP = watchEarlyUHPAccepts(unaccepted, fwConfig, loader)
        var ramTypes: Set<EFIMemoryType> = [.conventional, .bootServicesCode, .bootServicesData, .loaderCode, .loaderData]
        if s.loader.kernelSupportsUnaccepted && !s.loader.loaderCallsExitBootServices { ramTypes.insert(.unaccepted) }
        // A UHP-aware kernel leaves EFI_MEMORY_UHP ranges out of E820 until they are hot-added.
        let uhpAware = loader.hotplugAwareness == .uhpAware
        // setup_e820(): a usable type with EFI_MEMORY_SP is E820_TYPE_SOFT_RESERVED when
        // efi_soft_reserve_enabled() (CONFIG_EFI_SOFT_RESERVE, no efi=nosoftreserve), not RAM;
        // EFI_UNACCEPTED_MEMORY is RAM whatever its attributes.
        let softReserved = fw.map.descriptors.filter { $0.type != .unaccepted && ramTypes.contains($0.type) && $0.attribute.contains(.sp) }
        for d in softReserved {
            r.events.append("kernel: e820 \(d.range) soft reserved (EFI_MEMORY_SP): not System RAM; hmem registers it for device-dax (dax_hmem), which kmem may online as System RAM; the firmware validated it, so either touches accepted memory")
        }
        for d in fw.map.descriptors where d.type == .unaccepted && d.attribute.contains(.sp) && ramTypes.contains(.unaccepted) {
            r.events.append("kernel: \(d.range) is EFI_UNACCEPTED_MEMORY with EFI_MEMORY_SP; setup_e820() makes it RAM (process_unaccepted_memory()), so it is ordinary memory accepted on demand, not Soft Reserved, and no dax device is made")
        }
        let ram = mergeRanges(fw.map.descriptors.filter {
            ramTypes.contains($0.type) && !(uhpAware && $0.attribute.contains(.uhp)) && !($0.type != .unaccepted && $0.attribute.contains(.sp))
        }.map(\.range))
        let kernelImage = AddressRange(start: 16 << 20, size: s.kernel.kernelInitBytes)
        let numa = s.isNUMA ? NUMATopology(layout: try s.numaLayout(), belowFourGiB: layout.lowRAM.end, vcpus: s.vcpus) : nil
        // efi_reserve_boot_services() walks the EFI memmap's boot services descriptors.
        let bootServices = fw.map.descriptors.filter { $0.type == .bootServicesCode || $0.type == .bootServicesData }.map(\.range)
        bootKernel(config: s.kernel, ram: ram, unaccepted: unaccepted, platform: acc.platform,
                   image: kernelImage, initrd: nil, workload: s.workload, into: &r, recorder: recorder, numa: numa,
                   bootServices: bootServices)
        var done = finish(&r, acc)
        if case .terminated(let why) = done.outcome, let first = earlyUHP?.first {
            done.outcome = .terminated("broken: \(first) of the EFI_MEMORY_UHP hot-plug window accepted before any memory was plugged there "
                                       + "(a kernel unaware of UHP takes it for ordinary unaccepted memory; accepting it early is invalid, edk2 issue 12810): \(why)")
        }
        return (done, acc)
    }

    /// A kernel's boot from the decompressor to a shell and the workload:
    /// what a boot loader starts after ExitBootServices, or kexec starts
    /// with the kernel at `image` and the initrd it loaded. The kernel finds
    /// the unaccepted table as the previous owner of the machine left it.
    func bootKernel(config: KernelConfig, ram: [AddressRange], unaccepted: UnacceptedMemory?, platform: any GuestPlatform,
                    image kernelImage: AddressRange, initrd: AddressRange?, workload: Workload, into r: inout BootResult,
                    recorder: Recorder?, prefix: String = "", numa: NUMATopology? = nil, bootServices: [AddressRange] = []) {
        let s = scenario
        unaccepted?.stepByStep = s.stepByStep
        let kernel = GuestKernel(config: config, vcpus: s.vcpus, costs: costs, platform: platform, ram: ram, unaccepted: unaccepted, numa: numa)
        r.kernel = kernel
        kernel.actorSeed = s.seed
        kernel.actorsStepEverything = s.stepByStep
        recorder?.kernel = kernel
        recorder?.counterSettled = 0
        if let rec = recorder { kernel.onAcceptBatch = { rec.sample($0) } }
        if let a = unaccepted?.acceptor as? SNPAcceptor { configureLinuxSNPAcceptor(a, version: config.version) }
        if let a = unaccepted?.acceptor as? SNPHostAcceptor { configureLinuxSNPAcceptor(a, version: config.version) }
        var kclock = PhaseClock(vcpus: s.vcpus)
        kclock.charge(.kernelFixed, vcpu: 0, costs: costs)
        var outcome = kernel.decompress(image: kernelImage, clock: &kclock, acceptor: decompressorAcceptor(platform, version: config.version))
        // __startup_64() → sme_postprocess_startup(): __bss_decrypted made shared (SNP, earlyDecrypted).
        if outcome == .ok { outcome = kernel.smePostprocessStartup(image: kernelImage, clock: &kclock) }
        if outcome == .ok {
            _ = kernel.reserveUnacceptedTable()
            if let i = initrd { kernel.reserve(i, .initrd) }
            outcome = kernel.memblockAllocations(kernelImage: kernelImage, bootServices: bootServices, clock: &kclock)
        }
        if outcome == .ok { outcome = kernel.freeAll(early: &kclock) }
        // arch_cpu_finalize_init() → mem_encrypt_init(): the SWIOTLB made shared.
        if outcome == .ok { outcome = kernel.swiotlbUpdateMemAttributes(clock: &kclock) }
        // start_kernel(): efi_enter_virtual_mode() after mm_core_init(); before
        // a4b0bf6a40f3 it frees boot services memory there.
        if outcome == .ok { kernel.efiEnterVirtualMode() }
        r.times.kernelBoot = kclock.seconds(costs)
        recorder?.phase(prefix + "kernel_boot", kclock, seconds: r.times.kernelBoot)
        // kernel_init_freeable(): smp_init() (early allocations, before any
        // watermark), then page_alloc_init_late() (deferred init), then the
        // initcalls, where init_per_zone_wmark_min() sets the watermarks.
        var eclock = PhaseClock(vcpus: s.vcpus)
        if outcome == .ok { outcome = kernel.earlyAllocations(clock: &eclock) }
        r.times.earlyAllocations = eclock.seconds(costs)
        recorder?.phase(prefix + "early_allocations", eclock, seconds: r.times.earlyAllocations)
        var dclock = PhaseClock(vcpus: s.vcpus)
        if outcome == .ok { outcome = kernel.deferredInit(clock: &dclock) }
        r.times.deferredInit = dclock.seconds(costs)
        recorder?.phase(prefix + "deferred_init", dclock, seconds: r.times.deferredInit)
        kernel.initWatermarks()
        kernel.freeReservation(.initrd)
        var uclock = PhaseClock(vcpus: s.vcpus)
        uclock.charge(.userspaceFixed, vcpu: 0, costs: costs)
        // kernel_init() → free_initmem() → mem_encrypt_free_decrypted_mem() (SNP, earlyDecrypted).
        if outcome == .ok { outcome = kernel.memEncryptFreeDecryptedMem(clock: &uclock) }
        var full: Double? = nil
        // User space on the way to a shell runs on every vCPU (the
        // allocations below go to the least-loaded one).
        kernel.wakeVCPUs(0..<s.vcpus)
        if outcome == .ok {
            let want = ByteCount(s.bootAllocationBytes).frames()
            let (got, o) = kernel.allocateOnNodes(pages: want, use: .pageCache, touch: true, clock: &uclock, fullyAcceptedAt: &full)
            outcome = o
            if o == .ok, got < want {
                r.degradations.append("user space on the way to a shell clamped: requested \(ByteCount(s.bootAllocationBytes)), given \(ByteCount(got * 4096)) (page allocation failure: out of memory)")
            }
        }
        r.times.userspace = uclock.seconds(costs)
        // At the shell every vCPU idles, halted until a workload wakes it.
        kernel.idleAllVCPUs()
        // Just after init starts, where 807174a93d24's report saw kswapd loop.
        var endless = outcome == .ok ? kernel.endlessReclaimOnWake() : nil
        recorder?.phase(prefix + "userspace", uclock, seconds: r.times.userspace)
        recorder?.snapshot(prefix.isEmpty ? "end of boot" : "end of boot (next kernel)")
        r.acceptedKernelBoot = unaccepted?.acceptedBytes ?? 0
        recorder?.switchKernelActor(to: .workload)
        unaccepted?.acceptedBytes = 0
        recorder?.counterSettled = 0
        r.perPhaseCounts += [("kernel_boot", kclock.counts), ("deferred_init", dclock.counts),
                             ("early_allocations", eclock.counts), ("userspace", uclock.counts)]
        if kernel.totalUnacceptedPages == 0 { r.fullyAcceptedAfter = r.times.totalBoot }

        // The workload after boot.
        var wclock = PhaseClock(vcpus: s.vcpus)
        if outcome == .ok {
            let wfull: Double?
            (outcome, wfull) = runWorkload(workload, kernel, clock: &wclock, clamped: &r.degradations, recorder: recorder, prefix: prefix)
            if r.fullyAcceptedAfter == nil, let w = wfull { r.fullyAcceptedAfter = r.times.totalBoot + w }
        }
        r.times.workload = wclock.seconds(costs)
        r.acceptedWorkload = unaccepted?.acceptedBytes ?? 0
        r.perPhaseCounts.append(("workload", wclock.counts))
        if endless == nil, outcome == .ok { endless = kernel.endlessReclaimOnWake() }
        if let e = endless { r.degradations.append(prefix.isEmpty ? e.description : "next kernel: " + e.description) }
        r.events += kernel.events
        r.outcome = outcome
        kernel.onAcceptBatch = nil
    }

    /// Runs a workload on the booted kernel. Returns the outcome and when
    /// memory became fully accepted, in seconds from the start of the workload.
    /// A phase the kernel gives less memory than it asked for (the
    /// allocator's out-of-memory stop) adds a line to `clamped`. `prefix`
    /// names the recorded phases of a kernel kexec booted (`next_kernel.`).
    func runWorkload(_ workload: Workload, _ kernel: GuestKernel, clock wclock: inout PhaseClock,
                     clamped: inout [String], recorder: Recorder? = nil, prefix: String = "") -> (AcceptOutcome, Double?) {
        let start = recorder?.segmentStart ?? 0
        kernel.allocationStalls.reset()
        // The phase wakes the vCPUs it runs on; they idle again at its end.
        kernel.wakeVCPUs(Self.workloadVCPUs(workload, kernel))
        let result = runWorkloadPhase(workload, kernel, clock: &wclock, clamped: &clamped, recorder: recorder, prefix: prefix)
        kernel.idleAllVCPUs()
        kernel.allocationStalls.foldWorkloadPhase()
        if let rec = recorder, workload != .none {
            if case .phases = workload {} else {
                // A phase the recorder has not closed (one clock, no slices) closes here.
                let name = prefix + "workload " + ScenarioFile.workload(workload)
                var isRate = false
                if case .rate = workload { isRate = true } else if case .onNode(_, .rate) = workload { isRate = true }
                if isRate { rec.phase(name, from: start) } else { rec.phase(name, wclock, seconds: wclock.seconds(costs)) }
                rec.closeLatency(phase: prefix + ScenarioFile.workload(workload), lazy: kernel.config.lazyAccept)
                rec.snapshot("end of " + name)
            }
        }
        return result
    }

    /// The vCPUs a workload phase's work runs on, which it wakes: the
    /// allocating phases spread their allocations over every vCPU (the
    /// least-loaded one takes each; a node's vCPUs for `node=`, every vCPU
    /// for a node without any, as `allocate()` does), a hot(un)plug phase
    /// runs on the BSP (`BootSimulation+Hotplug` charges vCPU 0), and a
    /// sequence wakes each of its phases' in turn (`runWorkload` per phase).
    static func workloadVCPUs(_ w: Workload, _ kernel: GuestKernel, node: Int? = nil) -> [Int] {
        switch w {
        case .none, .phases: return []
        case .hotplug, .unplug: return [0]
        case .onNode(let n, let inner): return workloadVCPUs(inner, kernel, node: n)
        case .touch, .pageCache, .rate, .hugetlb:
            if let n = node, kernel.numa.cpusOfNode.indices.contains(n), !kernel.numa.cpusOfNode[n].isEmpty {
                return kernel.numa.cpusOfNode[n]
            }
            return Array(0..<kernel.vcpus)
        }
    }

    func runWorkloadPhase(_ workload: Workload, _ kernel: GuestKernel, clock wclock: inout PhaseClock,
                          clamped: inout [String], recorder: Recorder?, prefix: String, node: Int? = nil) -> (AcceptOutcome, Double?) {
        var wfull: Double? = nil
        func allocate(_ b: UInt64, _ use: PageUse, touch: Bool) -> AcceptOutcome {
            let want = ByteCount(b).frames()
            let (got, o) = kernel.allocateOnNodes(pages: want, use: use, touch: touch, clock: &wclock, fullyAcceptedAt: &wfull, node: node, workload: true)
            if o == .ok, got < want {
                clamped.append("workload \(ScenarioFile.workload(node.map { Workload.onNode($0, workload) } ?? workload)) clamped: requested \(ByteCount(b)), given \(ByteCount(got * 4096)) (page allocation failure: out of memory)")
            }
            return o
        }
        switch workload {
        case .none: return (.ok, nil)
        case .touch(let b): return (allocate(b, .anonymous, touch: true), wfull)
        case .pageCache(let b): return (allocate(b, .pageCache, touch: true), wfull)
        case .rate(let perSecond, let seconds):
            return runRate(kernel, perSecond: perSecond, seconds: seconds, clock: &wclock, clamped: &clamped, recorder: recorder, prefix: prefix,
                           node: node, name: ScenarioFile.workload(node.map { Workload.onNode($0, workload) } ?? workload))
        case .onNode(let n, let phase):
            return runWorkloadPhase(phase, kernel, clock: &wclock, clamped: &clamped, recorder: recorder, prefix: prefix, node: n)
        case .hugetlb(let b): return (allocate(b, .hugetlb, touch: false), wfull)
        case .hotplug(let b, let kind): return (hotplugPhase(b, kind, kernel, clock: &wclock, degradations: &clamped), wfull)
        case .unplug(let b, let kind): return (unplugPhase(b, kind, kernel, clock: &wclock, degradations: &clamped), wfull)
        case .phases(let phases):
            // One phase after the other on the same kernel, each timed on its
            // own clock (as rate= times its slices): the workload's time is
            // their sum; a phase that kills the guest ends the sequence.
            var elapsed = 0.0
            for phase in phases {
                var pclock = PhaseClock(vcpus: wclock.vcpus)
                let (o, pfull) = runWorkload(phase, kernel, clock: &pclock, clamped: &clamped, recorder: recorder, prefix: prefix)
                if wfull == nil, let f = pfull { wfull = elapsed + f }
                elapsed += pclock.seconds(costs)
                wclock.record(pclock)
                if o != .ok { wclock.pacedSeconds = elapsed; return (o, wfull) }
            }
            wclock.pacedSeconds = elapsed
            return (.ok, wfull)
        }
    }

    /// `rate=SIZE:SECONDS`: every second, `perSecond` bytes are allocated and
    /// touched on the vCPUs. A slice whose work takes longer than a second
    /// delays the next. Returns the outcome and when memory became fully
    /// accepted, in seconds from the start of the workload.
    /// A slice given less than `perSecond` (out of memory) ends the workload
    /// there and adds a line to `clamped`.
    func runRate(_ kernel: GuestKernel, perSecond: UInt64, seconds: UInt64, clock: inout PhaseClock,
                 clamped: inout [String], recorder: Recorder? = nil, prefix: String = "", node: Int? = nil, name: String? = nil) -> (AcceptOutcome, Double?) {
        let name = name ?? ScenarioFile.workload(.rate(bytesPerSecond: perSecond, seconds: seconds))
        var elapsed = 0.0
        var full: Double? = nil
        for second in 0..<seconds {
            var slice = PhaseClock(vcpus: clock.vcpus)
            var sliceFull: Double? = nil
            let (got, o) = kernel.allocateOnNodes(pages: ByteCount(perSecond).frames(), use: .anonymous, touch: true, clock: &slice, fullyAcceptedAt: &sliceFull, node: node, workload: true)
            if full == nil, let f = sliceFull { full = elapsed + f }
            elapsed += max(1.0, slice.seconds(costs))
            clock.record(slice)
            recorder?.closeSegment(slice, seconds: max(1.0, slice.seconds(costs)), lane: prefix + "workload " + name)
            if o == .ok, got < ByteCount(perSecond).frames() {
                clamped.append("workload \(name) clamped: second \(second + 1) of \(seconds) was given \(ByteCount(got * 4096)) of \(ByteCount(perSecond)) (page allocation failure: out of memory), and the workload stopped there")
            }
            if o != .ok || got < ByteCount(perSecond).frames() { clock.pacedSeconds = elapsed; return (o, full) }
        }
        clock.pacedSeconds = elapsed
        return (.ok, full)
    }

    func finish(_ r: inout BootResult, _ acc: Acceptors) -> BootResult {
        r.counts = OpCounts()
        for (_, c) in r.perPhaseCounts { r.counts.add(c) }
        r.host = acc.vm
        r.snpHost = acc.snpVM
        if let vm = acc.vm {
            switch vm.outcome {
            case .ok: break
            case .vmBugged(let m), .vmDead(let m): r.outcome = .terminated("KVM: VM dead: \(m)")
            case .ioctlError(let m): r.outcome = .terminated("KVM: \(m)")
            }
        }
        r.committedBytes = acc.platform.committedBytes
        r.sharedMemory = acc.platform.sharedStats
        r.sharedBytes = acc.platform.sharedPages * 4096
        if let rec = acc.recorder { r.record = rec.finish() }
        acc.vm?.hostTrace?.endCall()
        acc.snpVM?.hostTrace?.endCall()
        return r
    }
}

func mergeRanges(_ rs: [AddressRange]) -> [AddressRange] {
    var out: [AddressRange] = []
    for r in rs.sorted(by: { $0.start < $1.start }) {
        if let l = out.last, l.end >= r.start { out[out.count - 1].end = max(l.end, r.end) } else { out.append(r) }
    }
    return out
}
