import CoCoGuest
import CostModel
import Firmware
import GuestKernel
import KVM
public import MemoryModel
import SNP

/// QEMU's device-memory region on q35 (`pc_get_device_memory_range()`):
/// the window memory devices are plugged into, from the end of RAM above
/// 4 GiB rounded up to 1 GiB. Its size here is what the scenario's
/// `hotplug=` phases need (QEMU sizes it from `maxmem`, plus 1 GiB of
/// alignment slack per slot; the slack is not modelled): the virtio-mem
/// device's region first (the device exists from the start, its requested
/// size 0), then room for every DIMM the scenario plugs.
public struct HotplugLayout: Sendable, Equatable {
    /// The whole window; nil when the scenario plugs nothing.
    public var window: AddressRange?
    /// The virtio-mem device's region (nil: no virtio-mem device).
    public var virtioMemRegion: AddressRange?
    /// Where DIMMs go (first fit, each 128 MiB-aligned).
    public var dimmArea: AddressRange?

    /// Memory block size of an x86-64 guest below 64 GiB
    /// (`memory_block_size_bytes()`): DIMMs are whole blocks.
    public static let memoryBlockBytes: UInt64 = 128 << 20

    public init(memory: UInt64, workload: Workload) {
        var virtio: UInt64 = 0, dimms: UInt64 = 0
        for case .hotplug(let size, let kind) in workload.flattened {
            if kind == .virtioMem { virtio += size } else { dimms += size }
        }
        guard virtio + dimms > 0, let layout = try? Q35Layout(memory: memory) else { return }
        let base = alignUp(layout.highRAM?.end ?? (1 << 32), PageLevel.size1G.bytes)
        let virtioBytes = alignUp(virtio, Self.memoryBlockBytes)
        if virtio > 0 { virtioMemRegion = AddressRange(start: base, size: virtioBytes) }
        if dimms > 0 { dimmArea = AddressRange(start: base + virtioBytes, size: dimms) }
        window = AddressRange(start: base, size: virtioBytes + dimms)
    }
}

extension Workload {
    /// Whether this phase plugs or unplugs memory.
    public var isHotplug: Bool {
        switch self {
        case .hotplug, .unplug: true
        default: false
        }
    }

    /// The phases in order, nested lists opened.
    public var flattened: [Workload] {
        if case .phases(let ps) = self { return ps.flatMap(\.flattened) }
        return [self]
    }
}

extension Scenario {
    /// Commands that cannot carry hot-plugged memory yet refuse a scenario
    /// with `hotplug=`/`unplug=` phases rather than give a result that
    /// leaves the memory out: the capture kernel's vmcore and the next
    /// kernel's memory map are built from boot memory only.
    /// A scenario's `host` steps build the host model's guest on one node:
    /// a NUMA guest is refused rather than given one node's answer. (`dump`
    /// and `kexec` model the nodes: each node's memmap buffer, the node in
    /// `page->flags`, pages laid out by node, docs/DUMPS.md; the next kernel
    /// on the first kernel's nodes, docs/KEXEC.md.)
    public func refuseNUMA(in command: String) throws {
        guard isNUMA else { return }
        throw CocomemError(.unsupported, "\(command) of a NUMA guest (--numa with more than one node) is not modelled: \(command == "host" ? "the host model's guest" : "the \(command) model") is built on one node; boot, dump and kexec model the nodes (docs/SCENARIOS.md, NUMA)")
    }

    public func refuseHotplug(in command: String) throws {
        guard workload.flattened.contains(where: \.isHotplug) else { return }
        throw CocomemError(.invalidScenario, "\(command) with hotplug= or unplug= phases is not modelled: the \(command == "dump" ? "vmcore" : "next kernel") would leave the hot-plugged memory out (docs/HOTPLUG.md)")
    }
}

/// The memory devices QEMU has plugged so far in one run: where each DIMM
/// sits, how much of the virtio-mem region is plugged, and the memslots
/// backing them.
final class MemoryDevices {
    let layout: HotplugLayout
    /// DIMMs present, in the order they were plugged.
    var dimms: [AddressRange] = []
    /// Bytes of the virtio-mem region plugged (from its start).
    var virtioPlugged: UInt64 = 0
    var virtioSlotAdded = false
    init(layout: HotplugLayout) { self.layout = layout }

    /// The memslot id of a DIMM at `r` (slots 1-3 are boot RAM and flash).
    func slotID(_ r: AddressRange) -> Int { 1000 + Int((r.start - (layout.window?.start ?? 0)) / HotplugLayout.memoryBlockBytes) }
    static let virtioSlotID = 999

    /// `memory_device_get_free_addr()`: the first gap in the DIMM area that fits.
    func placeDIMM(_ size: UInt64) -> AddressRange? {
        guard let area = layout.dimmArea else { return nil }
        var at = area.start
        for d in dimms.sorted(by: { $0.start < $1.start }) {
            if d.start >= at + size { break }
            at = max(at, alignUp(d.end, HotplugLayout.memoryBlockBytes))
        }
        return at + size <= area.end ? AddressRange(start: at, size: size) : nil
    }
}

/// The first accept of an unplugged part of a UHP window, if any.
final class EarlyUHPAccepts { var first: AddressRange? = nil }

extension BootSimulation {
    /// The machine's side of the hot-plug window at boot: the firmware's
    /// view of it (the window, and `EFI_MEMORY_UHP` with edk2 PR 12811), and
    /// on SNP which frames the VMM has memory behind.
    func prepareHotplug(_ fw: inout FirmwareConfig, platform: any GuestPlatform) {
        guard let w = scenario.hotplugLayout.window else { return }
        fw.hotplugWindow = w
        fw.markUHPWindow = scenario.firmwareMarksUHP
        if let snp = (platform as? SNPGuestPlatform)?.platform {
            var m = IntervalMap<GuestFrameNumber, Bool>(initial: true)
            m.assign(w.framesCovering, false)
            snp.vmmMemory = m
        }
    }

    /// Watches the kernel's `arch_accept_memory()` calls for one reaching
    /// the part of an `EFI_MEMORY_UHP` window nothing is plugged into yet
    /// (only when the firmware marks the window and the kernel does not read
    /// the attribute). The returned box holds the first such call.
    func watchEarlyUHPAccepts(_ u: UnacceptedMemory?, _ fw: FirmwareConfig, _ loader: BootLoaderConfig) -> EarlyUHPAccepts? {
        guard let u, fw.markUHPWindow, let w = fw.hotplugWindow, loader.hotplugAwareness != .uhpAware else { return nil }
        let box = EarlyUHPAccepts()
        let devices = devices
        u.onArchAccept = { a, b in
            guard box.first == nil else { return }
            var plugged = devices.dimms
            if let v = devices.layout.virtioMemRegion { plugged.append(AddressRange(start: v.start, size: devices.virtioPlugged)) }
            if let hit = [AddressRange(start: a, end: b).clamped(to: w)].subtracting(plugged).first(where: { !$0.isEmpty }) { box.first = hit }
        }
        return box
    }

    /// A `hotplug=SIZE:KIND` phase: QEMU plugs the memory (a DIMM with its
    /// memory backend and memslot, or more of the virtio-mem region), then
    /// the guest adds and onlines it (`GuestKernel.hotAdd`). A refused add is
    /// a degradation; a fatal event is the outcome.
    func hotplugPhase(_ size: UInt64, _ kind: MemoryDeviceKind, _ kernel: GuestKernel, clock: inout PhaseClock,
                      degradations: inout [String]) -> AcceptOutcome {
        let name = "hotplug=\(ScenarioFile.size(size)):\(kind.rawValue)"
        let r: AddressRange
        switch kind {
        case .dimm:
            guard let place = devices.placeDIMM(size) else {
                degradations.append("\(name): no room left in the hot-plug window")
                return .ok
            }
            r = place
            devices.dimms.append(r)
        case .virtioMem:
            guard let region = devices.layout.virtioMemRegion, devices.virtioPlugged + size <= region.size else {
                degradations.append("\(name): the virtio-mem region is fully plugged")
                return .ok
            }
            r = AddressRange(start: region.start + devices.virtioPlugged, size: size)
            devices.virtioPlugged += size
        }
        if let o = hostPlug(r, kind, kernel.platform), o != .ok { return o }
        let result = kernel.hotAdd(r, device: kind, clock: &clock)
        if let why = result.refused { degradations.append(why) }
        return result.outcome
    }

    /// An `unplug=SIZE:KIND` phase: the guest offlines and removes the
    /// memory (`GuestKernel.hotRemove`), then QEMU takes it away: a DIMM's
    /// memslot is deleted and its backend freed (TDX: TDH.MEM.PAGE.REMOVE
    /// for each private page; SNP: the RMP entries return to the host); a
    /// virtio-mem unplug discards only the shared memory behind the blocks
    /// (`ram_block_discard_range()`), so private pages stay mapped and
    /// accepted in the host.
    func unplugPhase(_ size: UInt64, _ kind: MemoryDeviceKind, _ kernel: GuestKernel, clock: inout PhaseClock,
                     degradations: inout [String]) -> AcceptOutcome {
        let name = "unplug=\(ScenarioFile.size(size)):\(kind.rawValue)"
        let r: AddressRange
        switch kind {
        case .dimm:
            guard let i = devices.dimms.lastIndex(where: { $0.size == size }) else {
                degradations.append("\(name): no DIMM of that size is plugged")
                return .ok
            }
            r = devices.dimms[i]
        case .virtioMem:
            guard let region = devices.layout.virtioMemRegion, devices.virtioPlugged >= size else {
                degradations.append("\(name): less than that is plugged into the virtio-mem region")
                return .ok
            }
            // virtio-mem unplugs from the highest blocks first.
            r = AddressRange(start: region.start + devices.virtioPlugged - size, size: size)
        }
        let result = kernel.hotRemove(r, device: kind, clock: &clock)
        if let why = result.refused { degradations.append(why); return result.outcome }
        guard result.outcome == .ok else { return result.outcome }
        switch kind {
        case .dimm:
            devices.dimms.removeAll { $0 == r }
            if let vm = (kernel.platform as? TDXGuestPlatform)?.host as? TDXVM {
                // The vCPU that ran the guest's eject is in QEMU's I/O exit meanwhile.
                let o = vm.deleteMemslot(id: devices.slotID(r), ejectingVCPU: GuestKernel.hotplugVCPU)
                if o != .ok { return .terminated("KVM: \(o)") }
            }
            if let snp = (kernel.platform as? SNPGuestPlatform)?.platform {
                snp.reclaim(r.framesCovering)
                snp.vmmMemory?.assign(r.framesCovering, false)
            }
        case .virtioMem:
            devices.virtioPlugged -= size
        }
        return .ok
    }

    /// The memory behind a plugged range, in the host: TDX a memslot bound
    /// to a guest_memfd (the virtio-mem region's one memslot is added with
    /// its first plug); SNP the VMM's RAM block. Returns a fatal outcome if
    /// KVM refuses.
    func hostPlug(_ r: AddressRange, _ kind: MemoryDeviceKind, _ platform: any GuestPlatform) -> AcceptOutcome? {
        if let vm = (platform as? TDXGuestPlatform)?.host as? TDXVM {
            let backing = scenario.gmemBacking ?? (scenario.tdxHost == .tdxHuge ? .hugetlb2M : .buddy)
            let slot: Memslot
            switch kind {
            case .dimm: slot = Memslot(id: devices.slotID(r), baseGFN: GuestPhysicalAddress(r.start).frame, pages: r.size / 4096, backing: backing)
            case .virtioMem:
                guard !devices.virtioSlotAdded, let region = devices.layout.virtioMemRegion else { return nil }
                devices.virtioSlotAdded = true
                slot = Memslot(id: MemoryDevices.virtioSlotID, baseGFN: GuestPhysicalAddress(region.start).frame, pages: region.size / 4096, backing: backing)
            }
            do { try vm.addMemslot(slot) } catch { return .terminated("KVM: KVM_SET_USER_MEMORY_REGION2 failed: \(error)") }
        }
        if let snp = (platform as? SNPGuestPlatform)?.platform { snp.vmmMemory?.assign(r.framesCovering, true) }
        return nil
    }
}
