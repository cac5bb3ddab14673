public import CoCoGuest
public import CostModel
public import MemoryModel

/// Firmware generations whose acceptance behaviour differs.
public enum FirmwareGeneration: String, Sendable, CaseIterable {
    /// Upstream TDVF (edk2 OvmfPkg, 2023+): `TdxHelperProcessTdHob` accepts
    /// all RAM below 4 GiB in SEC, BSP and APs in 32 MiB chunks with 2M pages
    /// (`MpAcceptMemoryResourceRange`, BZ4172); RAM above stays type 15.
    case tdvf
    /// Pre-upstream TdvfPkg (2021-22): `ProcessHobList` accepts RAM in HOB
    /// order until `PcdTdxAcceptPartialMemorySize` plus the fw_cfg kernel,
    /// setup, command line and initrd sizes is reached, on the BSP alone; the
    /// rest is reported unaccepted. A partial size of 0 accepts everything.
    case tdvf2022 = "tdvf-2022"
    /// OVMF for SEV-SNP: `AmdSevSnpInitialize` pre-validates RAM below 4 GiB
    /// with large PSC entries; RAM above is type 15; AmdSevDxe accepts all of
    /// it at ExitBootServices unless the loader called `AllowUnacceptedMemory()`.
    case ovmfSNP = "ovmf-snp"
}

/// What OVMF makes of an E820 SoftReserved range on an SEV-SNP guest.
public enum SoftReservedHandling: String, Sendable {
    /// Before 4e90b65e7b (edk2-stable202605): `PlatformAddHobCB()` logs the
    /// type as "NOT HANDLED" and builds no resource HOB, so the range is in
    /// no memory map.
    case notHandled
    /// 4e90b65e7b builds a tested system-memory HOB with
    /// `EFI_RESOURCE_ATTRIBUTE_SPECIAL_PURPOSE`; `AmdSevSnpInitialize()`
    /// turns every system-memory HOB at or above 4 GiB into
    /// `EFI_RESOURCE_MEMORY_UNACCEPTED`, SP included: an Unaccepted
    /// descriptor carrying `EFI_MEMORY_SP` (edk2-stable202605).
    case unaccepted
    /// 6c6d0a72c2 (PR 12774): SP HOBs keep their type and are pre-validated
    /// in place like memory below 4 GiB: a Conventional descriptor with
    /// `EFI_MEMORY_SP`, which edk2 never allocates from.
    case retained
}

/// What the OS loader and kernel know, which decides the SNP protocol dance
/// and whether type 15 is usable.
public struct BootLoaderConfig: Sendable {
    /// The kernel has CONFIG_UNACCEPTED_MEMORY (6.5+); without it type 15 is
    /// not RAM to it and that memory is lost.
    public var kernelSupportsUnaccepted = true
    /// The EFI stub calls `OVMF_SEV_MEMORY_ACCEPTANCE_PROTOCOL.AllowUnacceptedMemory()`
    /// before ExitBootServices (`setup_unaccepted_memory()`, 6.5+).
    public var stubCallsAcceptanceProtocol = true
    /// The boot loader calls ExitBootServices itself (GRUB's legacy `linux`
    /// path), so the stub never runs its protocol call.
    public var loaderCallsExitBootServices = false
    /// How the kernel's EFI stub treats memory that may be hot-plugged
    /// (mainline: not at all).
    public var hotplugAwareness: StubHotplugAwareness = .none
    public init() {}
}

public struct FirmwareConfig: Sendable {
    public var generation: FirmwareGeneration
    /// `PcdTdxAcceptPartialMemorySize` for tdvf-2022, in bytes (0 = accept all).
    public var partialAcceptBytes: UInt64 = 256 << 20
    /// fw_cfg kernel image and initrd sizes (tdvf-2022 adds them to the partial size).
    public var kernelImageBytes: UInt64 = 12 << 20
    public var initrdBytes: UInt64 = 32 << 20
    /// SNP firmware provides OVMF_SEV_MEMORY_ACCEPTANCE_PROTOCOL (26847fb6be,
    /// edk2-stable202302). No edk2 release reports type 15 without it: the
    /// protocol came before 0d129ef7c3 "SEV-SNP make >=4GB unaccepted" in the
    /// same series; false models other firmware.
    public var snpAcceptanceProtocol = true
    /// How GetMemoryMap() hands the map to the OS loader: every generation
    /// here is edk2, which merges equal neighbours (`CoreGetMemoryMap()`).
    public var getMemoryMap: GetMemoryMapStyle = .edk2
    /// QEMU's device-memory region, the window DIMMs and virtio-mem devices
    /// are plugged into (`etc/reserved-memory-end` tells the firmware where
    /// it ends); nil when the VM has none (no `maxmem` above `-m`).
    public var hotplugWindow: AddressRange? = nil
    /// edk2 PR 12811 (code first, July 2026): PlatformInitLib finds the
    /// window, PlatformPei builds an unaccepted resource HOB tagged
    /// `EFI_RESOURCE_ATTRIBUTE_UNACCEPTED_HOT_PLUG` for it, and the DXE core
    /// hands it to the OS as an `EfiUnacceptedMemoryType` descriptor with
    /// `EFI_MEMORY_UHP`; AmdSevDxe's accept-all pass skips it. No released
    /// edk2 does this.
    public var markUHPWindow = false
    /// TDVF's multi-core accept takes the sub-2 MiB tail of a range with
    /// 4 KiB pages on the BSP: b15f98e68f "OvmfPkg/IntelTdx: Fix TDVF boot
    /// failure with odd-sized memory below 2816M" (edk2 PR 11525,
    /// edk2-stable202511). False is every earlier tag: with more than one
    /// vCPU `BspApAcceptMemoryResourceRange()` accepts
    /// `MIN(ACCEPT_CHUNK_SIZE, PhysicalEnd - PhysicalAddress) / AcceptPageSize`
    /// 2 MiB pages per chunk, so the tail is left PENDING while
    /// `TransferTdxHobList()` reports it as tested system memory.
    public var tdvfAcceptsSub2MTail = true
    /// A SoftReserved (Specific Purpose Memory) range QEMU's E820 table
    /// lists above 4 GiB, and what this firmware makes of it (SEV-SNP).
    public var softReserved: AddressRange? = nil
    public var softReservedHandling: SoftReservedHandling = .unaccepted
    public init(generation: FirmwareGeneration) { self.generation = generation }
}

/// The result of running the firmware up to the kernel's start.
public struct FirmwareBootResult {
    /// The map as the kernel receives it after ExitBootServices.
    public var map: EFIMemoryMap
    /// The map as the OS loader first saw it (before any EBS-time change).
    public var mapAtLoader: EFIMemoryMap
    public var table: UnacceptedTable?
    /// Ranges accepted by the firmware and by the EFI stub.
    public var firmwareAccepted: [AddressRange] = []
    public var stubAccepted: [AddressRange] = []
    /// RAM the kernel cannot use because it does not understand type 15.
    public var lostBytes: UInt64 = 0
    public var events: [String] = []
    public var firmwareClock: PhaseClock
    public var stubClock: PhaseClock
    public var outcome: AcceptOutcome = .ok
    /// RAM below 4 GiB the firmware reported as accepted system memory
    /// without accepting it (TDVF before b15f98e68f: the MP path's sub-2 MiB
    /// tails).
    public var droppedByFirmware: [AddressRange] = []
}

/// Runs firmware and the EFI stub for a q35 guest.
public struct FirmwareBoot {
    public let layout: Q35Layout
    public let config: FirmwareConfig
    public let loader: BootLoaderConfig
    public let vcpus: Int

    public init(layout: Q35Layout, config: FirmwareConfig, loader: BootLoaderConfig, vcpus: Int) {
        self.layout = layout
        self.config = config
        self.loader = loader
        self.vcpus = vcpus
    }

    /// Ranges of RAM the firmware accepts before the OS loader, and what is
    /// left unaccepted below 4 GiB (tdvf-2022 only).
    func preAcceptPlan(eagerFirmware: Bool) -> (accept: [AddressRange], lowUnaccepted: AddressRange?) {
        switch config.generation {
        case .tdvf, .ovmfSNP:
            return (layout.ramResources.filter { $0.end <= 1 << 32 }, nil)
        case .tdvf2022:
            let partial = config.partialAcceptBytes
            // Saturating: a PcdTdxAcceptPartialMemorySize beyond the RAM accepts all of it (it overflowed).
            let (withImage, o1) = partial.addingReportingOverflow(config.kernelImageBytes)
            let (withInitrd, o2) = withImage.addingReportingOverflow(config.initrdBytes)
            var budget = (partial == 0 || eagerFirmware || o1 || o2) ? UInt64.max : withInitrd
            var plan: [AddressRange] = []
            var lowLeft: AddressRange? = nil
            for r in layout.ramResources where budget > 0 {
                let take = min(r.size, budget)
                plan.append(AddressRange(start: r.start, size: take))
                budget -= take
                if take < r.size, r.end <= 1 << 32 { lowLeft = AddressRange(start: alignUp(r.start + take, 4096), end: r.end) }
            }
            // Low RAM resources not reached at all stay unaccepted too.
            if budget == 0, let last = plan.last, last.end < layout.lowRAM.end, lowLeft == nil {
                lowLeft = AddressRange(start: last.end, end: layout.lowRAM.end)
            }
            return (plan, lowLeft)
        }
    }

    /// Runs the firmware. `acceptor` is the firmware's accept driver (edk2),
    /// `stubAcceptor` the EFI stub's (Linux boot stub).
    /// `onHandOff` is called when the firmware hands its memory map to the
    /// OS loader (before the EFI stub runs), with the firmware's clock then:
    /// where a recorder takes the hand-off snapshot.
    /// `platform` is the guest's view of memory, through which the firmware's
    /// own loads and stores go (a touch of memory it left PENDING is fatal).
    public func run(acceptor: any ArchAcceptor, stubAcceptor: any ArchAcceptor, costs: CostTable,
                    eagerFirmware: Bool = false, platform: (any GuestPlatform)? = nil,
                    onHandOff: ((EFIMemoryMap, PhaseClock) -> Void)? = nil) throws -> FirmwareBootResult {
        var fwClock = PhaseClock(vcpus: vcpus)
        fwClock.charge(.firmwareFixed, vcpu: 0, costs: costs)
        let plan = preAcceptPlan(eagerFirmware: eagerFirmware)
        var accepted: [AddressRange] = []
        var events: [String] = []
        var outcome = AcceptOutcome.ok
        var dropped: [AddressRange] = []

        switch config.generation {
        case .tdvf:
            outcome = tdvfAccept(plan.accept, acceptor: acceptor, clock: &fwClock, accepted: &accepted, dropped: &dropped)
            if outcome == .ok, !dropped.isEmpty {
                outcome = touchDroppedTail(dropped, platform: platform, costs: costs, clock: &fwClock, events: &events)
            }
        case .tdvf2022:
            for r in plan.accept where outcome == .ok {
                outcome = acceptor.accept(r, vcpu: 0, clock: &fwClock)
                accepted.append(r)
            }
        case .ovmfSNP:
            for r in plan.accept where outcome == .ok && r.start < 1 << 32 {
                outcome = acceptor.accept(r, vcpu: 0, clock: &fwClock)
                accepted.append(r)
            }
        }
        // High RAM: unaccepted (type 15) for every generation here; tdvf-2022
        // accepts part of it when its budget reaches above 4 GiB.
        var mapAtLoader = try layout.efiMap(highType: .unaccepted, lowUnaccepted: plan.lowUnaccepted)
        if config.generation == .tdvf2022 {
            for r in accepted where r.start >= 1 << 32 { mapAtLoader.retype(r, to: .conventional) }
        }
        if let sp = config.softReserved, outcome == .ok {
            outcome = describeSoftReserved(sp, in: &mapAtLoader, acceptor: acceptor, clock: &fwClock, accepted: &accepted, events: &events)
        }
        if config.markUHPWindow, let w = config.hotplugWindow {
            mapAtLoader = try EFIMemoryMap(mapAtLoader.descriptors + [EFIMemoryDescriptor(type: .unaccepted, start: w.start, end: w.end, attribute: [.ramDefault, .uhp])])
            events.append("firmware: hot-plug window \(w) described as unaccepted memory with EFI_MEMORY_UHP (edk2 PR 12811)")
        }
        var map = mapAtLoader
        let loaderView = mapAtLoader.returned(by: config.getMemoryMap)
        if outcome == .ok { onHandOff?(loaderView, fwClock) }
        var result = FirmwareBootResult(map: map.returned(by: config.getMemoryMap), mapAtLoader: loaderView, table: nil, firmwareAccepted: accepted,
                                        events: events, firmwareClock: fwClock, stubClock: PhaseClock(vcpus: vcpus),
                                        outcome: outcome, droppedByFirmware: dropped)
        guard outcome == .ok else { return result }

        // The OS loader: EFI stub (or a loader that exits boot services itself).
        var stubClock = PhaseClock(vcpus: vcpus)
        let stubRuns = !loader.loaderCallsExitBootServices
        var table: UnacceptedTable? = nil
        if stubRuns && loader.kernelSupportsUnaccepted {
            table = try EFIStub.allocateUnacceptedBitmap(map: &map, hotplug: loader.hotplugAwareness)
            if let t = table { events.append("efi stub: unaccepted table at \(t.address), unit 2M, phys_base \(t.physBase), \(t.size) bytes") }
        }
        // SNP: AmdSevDxe accepts everything at ExitBootServices unless allowed.
        if config.generation == .ovmfSNP && config.snpAcceptanceProtocol {
            let allowed = stubRuns && loader.kernelSupportsUnaccepted && loader.stubCallsAcceptanceProtocol
            if allowed {
                events.append("efi stub: AllowUnacceptedMemory() via OVMF_SEV_MEMORY_ACCEPTANCE_PROTOCOL")
            } else {
                let keyBefore = map.mapKey
                // PR 12811's AmdSevDxe skips EFI_MEMORY_UHP: the window has no memory to validate.
                let toAccept = map.descriptors.filter { $0.type == .unaccepted && !$0.attribute.contains(.uhp) }.map(\.range)
                for r in toAccept where outcome == .ok {
                    outcome = acceptor.accept(r, vcpu: 0, clock: &fwClock)
                    result.firmwareAccepted.append(r)
                    map.retype(r, to: .conventional)
                }
                // AcceptAllMemory() adds each range back as plain system memory: EFI_MEMORY_SP is lost (6c6d0a72c2's message).
                for d in map.descriptors where d.type == .conventional && d.attribute.contains(.sp) && toAccept.contains(d.range) {
                    map.describe(d.range, as: .conventional, attribute: d.attribute.subtracting(.sp))
                    events.append("firmware: AcceptAllMemory re-added the SoftReserved range \(d.range) as ordinary system memory without EFI_MEMORY_SP")
                }
                if map.mapKey != keyBefore {
                    events.append("firmware: ResolveUnacceptedMemory accepted all unaccepted memory at ExitBootServices")
                    events.append("loader: first ExitBootServices() failed (EFI_INVALID_PARAMETER, stale map key); GetMemoryMap() and retry succeeded")
                }
                // The table sized for type-15 memory now describes nothing to accept.
                if var t = table { t.bitmap.clear(t.allUnits); table = t }
            }
        }
        result.firmwareClock = fwClock
        guard outcome == .ok else { result.outcome = outcome; result.map = map.returned(by: config.getMemoryMap); return result }
        events.append("ExitBootServices()")

        // setup_e820(), on the map GetMemoryMap() returns at ExitBootServices():
        // one process_unaccepted_memory() per Unaccepted descriptor; type 15
        // is RAM only for a kernel that supports it.
        map = map.returned(by: config.getMemoryMap)
        for d in map.descriptors where d.type == .unaccepted {
            // A UHP-aware stub leaves the window out of E820 and the bitmap until hot-add.
            if d.attribute.contains(.uhp), loader.hotplugAwareness == .uhpAware { continue }
            guard stubRuns && loader.kernelSupportsUnaccepted, var t = table else {
                result.lostBytes += d.bytes.value
                continue
            }
            let (acc, o) = EFIStub.processUnacceptedMemory(d.range, table: &t, acceptor: stubAcceptor, clock: &stubClock)
            table = t
            result.stubAccepted += acc
            if o != .ok { outcome = o; break }
        }
        if result.lostBytes > 0 {
            events.append("kernel: \(ByteCount(result.lostBytes)) of type-15 memory treated as reserved (unknown memory type 15) and lost")
        }
        result.map = map
        result.table = table
        result.events = events
        result.stubClock = stubClock
        result.outcome = outcome
        return result
    }

    /// A SoftReserved range in the map the OS loader gets, by
    /// `config.softReservedHandling` (OvmfPkg PlatformInitLib/MemDetect.c
    /// `PlatformAddHobCB()`, PlatformPei/AmdSev.c `AmdSevSnpInitialize()`,
    /// MdeModulePkg Gcd.c: `EFI_RESOURCE_ATTRIBUTE_SPECIAL_PURPOSE` becomes
    /// the `EFI_MEMORY_SP` capability whatever the memory type).
    func describeSoftReserved(_ sp: AddressRange, in map: inout EFIMemoryMap, acceptor: any ArchAcceptor, clock: inout PhaseClock,
                              accepted: inout [AddressRange], events: inout [String]) -> AcceptOutcome {
        switch config.softReservedHandling {
        case .notHandled:
            map.describe(sp, as: nil)
            events.append("firmware: PlatformAddHobCB: E820 SoftReserved \(sp) NOT HANDLED (edk2 before 4e90b65e7b, edk2-stable202605): no resource HOB, so \(ByteCount(sp.size)) is in no memory map and the guest never sees it")
            return .ok
        case .unaccepted:
            map.describe(sp, as: .unaccepted, attribute: [.ramDefault, .sp])
            events.append("firmware: AmdSevSnpInitialize made the SoftReserved range \(sp) unaccepted like all RAM above 4 GiB (edk2 before 6c6d0a72c2, PR 12774): an Unaccepted descriptor with EFI_MEMORY_SP")
            return .ok
        case .retained:
            // PEI pre-validates it as it does memory below 4 GiB.
            let o = acceptor.accept(sp, vcpu: 0, clock: &clock)
            accepted.append(sp)
            map.describe(sp, as: .conventional, attribute: [.ramDefault, .sp])
            events.append("firmware: SoftReserved range \(sp) kept as system memory with EFI_MEMORY_SP and pre-validated in PEI (6c6d0a72c2, PR 12774)")
            return o
        }
    }

    /// `TdxHelperProcessTdHob()` (OvmfPkg/IntelTdx/TdxHelperLib/SecTdxHelper.c):
    /// with more than one vCPU the BSP first accepts the APs' stacks
    /// (`AcceptMemoryForAPsStack()`, ALIGN(vCPUs × 16 KiB, 2 MiB)) from the
    /// first region, then each range goes through
    /// `MpAcceptMemoryResourceRange()`: the BSP takes an unaligned head; a
    /// remainder of at most 32 MiB is the BSP's (`BspAcceptMemoryResourceRange()`,
    /// which takes a sub-2 MiB tail at 4 KiB); otherwise CPU i accepts the
    /// 32 MiB chunks i, i+N, i+2N, ... in
    /// `BspApAcceptMemoryResourceRange()`, each as
    /// `MIN(ACCEPT_CHUNK_SIZE, PhysicalEnd - PhysicalAddress) / AcceptPageSize`
    /// 2 MiB pages, so the last chunk's sub-2 MiB tail is not in any chunk.
    /// b15f98e68f (`config.tdvfAcceptsSub2MTail`) has CPU 0 accept it
    /// afterwards with 4 KiB pages; before it the tail is left PENDING and
    /// returned in `dropped`.
    func tdvfAccept(_ ranges: [AddressRange], acceptor: any ArchAcceptor, clock: inout PhaseClock,
                    accepted: inout [AddressRange], dropped: inout [AddressRange]) -> AcceptOutcome {
        var rs = ranges
        let chunk: UInt64 = 32 << 20, page2M: UInt64 = 2 << 20
        if vcpus > 1, !rs.isEmpty {
            let stack = alignUp(UInt64(vcpus) * 16 * 1024, page2M)
            let s = AddressRange(start: rs[0].start, end: min(rs[0].end, rs[0].start + stack))
            let o = acceptor.accept(s, vcpu: 0, clock: &clock); accepted.append(s)
            if o != .ok { return o }
            rs[0].start = s.end
        }
        for r in rs where !r.isEmpty {
            var start = r.start
            let head = min(alignUp(start, page2M), r.end)
            if head > start {
                let o = acceptor.accept(AddressRange(start: start, end: head), vcpu: 0, clock: &clock)
                accepted.append(AddressRange(start: start, end: head))
                if o != .ok { return o }
                start = head
            }
            guard start < r.end else { continue }
            if r.end - start <= chunk || vcpus == 1 {
                let o = acceptor.accept(AddressRange(start: start, end: r.end), vcpu: 0, clock: &clock)
                accepted.append(AddressRange(start: start, end: r.end))
                if o != .ok { return o }
                continue
            }
            // The end of the whole 2 MiB pages: `start` is 2 MiB aligned here.
            let pagesEnd = start + alignDown(r.end - start, page2M)
            var i: UInt64 = 0
            while start + i * chunk < r.end {
                let c = AddressRange(start: start + i * chunk, end: min(pagesEnd, start + (i + 1) * chunk))
                if !c.isEmpty {
                    let o = acceptor.accept(c, vcpu: Int(i % UInt64(vcpus)), clock: &clock)
                    if o != .ok { return o }
                }
                i += 1
            }
            let tail = AddressRange(start: pagesEnd, end: r.end)
            if tail.isEmpty || config.tdvfAcceptsSub2MTail {
                if !tail.isEmpty {
                    let o = acceptor.accept(tail, vcpu: 0, clock: &clock)
                    if o != .ok { return o }
                }
                accepted.append(AddressRange(start: start, end: r.end))
            } else {
                accepted.append(AddressRange(start: start, end: pagesEnd))
                dropped.append(tail)
            }
        }
        return .ok
    }

    /// What follows a tail TDVF left PENDING (before b15f98e68f):
    /// `TransferTdxHobList()` (PlatformInitLib/IntelTdx.c) turns every
    /// unaccepted resource HOB below 4 GiB into tested system memory, and
    /// `PublishPeiMemory()` (PlatformPei/MemDetect.c) gives the PEI core
    /// `[LowMemory - PeiMemoryCap, LowMemory)`, whose pages it hands out
    /// from the top down (`EfiFreeMemoryTop`), so the first page allocated in
    /// permanent memory is the last page of low RAM: the top of the dropped
    /// tail. IntelTdxX64's PEI-less start does the same with its HOB list
    /// (`ConstructFwHobList()`: `EfiFreeMemoryTop` at the end of the largest
    /// region below 4 GiB). The access goes to the platform (TDX with SEPT_VE_DISABLE: KVM
    /// kills the TD on a PENDING page).
    func touchDroppedTail(_ dropped: [AddressRange], platform: (any GuestPlatform)?, costs: CostTable,
                          clock: inout PhaseClock, events: inout [String]) -> AcceptOutcome {
        let total = dropped.reduce(0) { $0 + $1.size }
        events.append("firmware: TDVF's multi-core accept (BspApAcceptMemoryResourceRange) left \(ByteCount(total)) PENDING at \(dropped.map(\.description).joined(separator: ", ")): a sub-2 MiB tail of the last 32 MiB chunk, which no 2 MiB page covers (edk2 before b15f98e68f, PR 11525); TransferTdxHobList reports it as tested system memory")
        let lowTop = layout.lowRAM.end
        guard let platform, let top = dropped.last(where: { $0.end == lowTop }) else { return .ok }
        let gfn = GuestFrameNumber((top.end - 1) >> PageLevel.pageShift)
        events.append("firmware: PEI core's first page allocation in permanent memory (PublishPeiMemory: it ends at the top of low RAM, \(GuestPhysicalAddress(lowTop))) touches \(gfn.address)")
        let (ops, o) = platform.touch(gfn: gfn, vcpu: 0)
        clock.charge(ops, vcpu: 0, costs: costs)
        return o
    }
}
