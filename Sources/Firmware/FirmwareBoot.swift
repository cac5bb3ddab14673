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
    public func run(acceptor: any ArchAcceptor, stubAcceptor: any ArchAcceptor, costs: CostTable,
                    eagerFirmware: Bool = false, onHandOff: ((EFIMemoryMap, PhaseClock) -> Void)? = nil) throws -> FirmwareBootResult {
        var fwClock = PhaseClock(vcpus: vcpus)
        fwClock.charge(.firmwareFixed, vcpu: 0, costs: costs)
        let plan = preAcceptPlan(eagerFirmware: eagerFirmware)
        var accepted: [AddressRange] = []
        var events: [String] = []
        var outcome = AcceptOutcome.ok

        switch config.generation {
        case .tdvf:
            outcome = tdvfAccept(plan.accept, acceptor: acceptor, clock: &fwClock, accepted: &accepted)
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
        if config.markUHPWindow, let w = config.hotplugWindow {
            mapAtLoader = try EFIMemoryMap(mapAtLoader.descriptors + [EFIMemoryDescriptor(type: .unaccepted, start: w.start, end: w.end, attribute: [.ramDefault, .uhp])])
            events.append("firmware: hot-plug window \(w) described as unaccepted memory with EFI_MEMORY_UHP (edk2 PR 12811)")
        }
        var map = mapAtLoader
        let loaderView = mapAtLoader.returned(by: config.getMemoryMap)
        if outcome == .ok { onHandOff?(loaderView, fwClock) }
        var result = FirmwareBootResult(map: map.returned(by: config.getMemoryMap), mapAtLoader: loaderView, table: nil, firmwareAccepted: accepted,
                                        events: events, firmwareClock: fwClock, stubClock: PhaseClock(vcpus: vcpus),
                                        outcome: outcome)
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

    /// `TdxHelperProcessTdHob`: the BSP accepts the APs' stacks
    /// (ALIGN(vCPUs × 16 KiB, 2 MiB)) from the first region, then each range
    /// with `MpAcceptMemoryResourceRange`: the BSP takes an unaligned head; a
    /// remainder of at most 32 MiB is the BSP's; otherwise CPU i accepts the
    /// 32 MiB chunks i, i+N, i+2N, ...
    func tdvfAccept(_ ranges: [AddressRange], acceptor: any ArchAcceptor, clock: inout PhaseClock,
                    accepted: inout [AddressRange]) -> AcceptOutcome {
        var rs = ranges
        let chunk: UInt64 = 32 << 20
        if vcpus > 1, !rs.isEmpty {
            let stack = alignUp(UInt64(vcpus) * 16 * 1024, 2 << 20)
            let s = AddressRange(start: rs[0].start, end: min(rs[0].end, rs[0].start + stack))
            let o = acceptor.accept(s, vcpu: 0, clock: &clock); accepted.append(s)
            if o != .ok { return o }
            rs[0].start = s.end
        }
        for r in rs where !r.isEmpty {
            var start = r.start
            let head = min(alignUp(start, 2 << 20), r.end)
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
            var i: UInt64 = 0
            while start + i * chunk < r.end {
                let c = AddressRange(start: start + i * chunk, end: min(r.end, start + (i + 1) * chunk))
                let o = acceptor.accept(c, vcpu: Int(i % UInt64(vcpus)), clock: &clock)
                if o != .ok { return o }
                i += 1
            }
            accepted.append(AddressRange(start: start, end: r.end))
        }
        return .ok
    }
}
