public import CoCoGuest
public import Firmware
public import GuestKernel
public import KVM
public import MemoryModel
import SNP
public import TDXModule

/// A workload run after boot.
public enum Workload: Sendable, Equatable {
    case none
    /// Touch this many bytes of anonymous memory (eatmemory-like).
    case touch(UInt64)
    /// Grow the page cache by this many bytes.
    case pageCache(UInt64)
    /// Allocate and touch `bytesPerSecond` of anonymous memory every second
    /// for `seconds` (a service warming up), spread over the vCPUs.
    case rate(bytesPerSecond: UInt64, seconds: UInt64)
    /// Grow the hugetlb pool by this many bytes of 2 MiB pages
    /// (`echo N > /proc/sys/vm/nr_hugepages`): order-9 allocations from the
    /// buddy allocator, accepting like any allocation, not written.
    case hugetlb(UInt64)
    /// Several workloads one after the other (a scenario file's list of
    /// phases; the `--workload` flag gives one).
    case phases([Workload])
    /// `hotplug=SIZE[:dimm|virtio-mem]`: the host plugs SIZE of memory (a
    /// new DIMM, or SIZE more of the virtio-mem device's requested size) and
    /// the guest adds and onlines it (issue 16 §4, `BootSimulation+Hotplug`).
    case hotplug(UInt64, MemoryDeviceKind)
    /// `unplug=SIZE[:dimm|virtio-mem]`: the most recent DIMM of SIZE is
    /// ejected, or the virtio-mem requested size drops by SIZE.
    case unplug(UInt64, MemoryDeviceKind)
    /// `PHASE@N`: a touch, pagecache, hugetlb or rate phase run on NUMA
    /// node N (`numactl --cpunodebind=N --preferred=N`: node N's vCPUs,
    /// node N's zonelist, falling back to the others by distance).
    indirect case onNode(Int, Workload)

    /// Parses `none`, `touch=SIZE`, `pagecache=SIZE`, `touch=all`,
    /// `rate=SIZE:SECONDS` (SIZE per second for SECONDS), `hugetlb=SIZE`.
    public static func parse(_ s: String, memory: UInt64) throws -> Workload {
        if s == "none" { return .none }
        if let at = s.lastIndex(of: "@") {
            let nodeText = s[s.index(after: at)...]
            guard let node = Int(nodeText), node >= 0, node < NUMALayout.maximumNodes else {
                throw CocomemError(.invalidArgument, "workload '\(s)': '@\(nodeText)' is not a NUMA node number (0 to \(NUMALayout.maximumNodes - 1))")
            }
            let phase = try parse(String(s[..<at]), memory: memory)
            switch phase {
            case .touch, .pageCache, .hugetlb, .rate: return .onNode(node, phase)
            default: throw CocomemError(.invalidArgument, "workload '\(s)': only touch, pagecache, hugetlb and rate phases run on a node (@N)")
            }
        }
        let parts = s.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { throw CocomemError(.invalidArgument, "workload '\(s)' is not none, touch=SIZE, pagecache=SIZE, hugetlb=SIZE or rate=SIZE:SECONDS") }
        if parts[0] == "rate" {
            let f = parts[1].split(separator: ":").map(String.init)
            guard f.count == 2, let secs = UInt64(f[1]), secs > 0, secs <= 1_000_000 else {
                throw CocomemError(.invalidArgument, "workload '\(s)': expected rate=SIZE:SECONDS, e.g. rate=512M:60")
            }
            return .rate(bytesPerSecond: try ByteCount.parse(f[0]).value, seconds: secs)
        }
        if parts[0] == "hotplug" || parts[0] == "unplug" { return try parseHotplug(s, parts[0], parts[1]) }
        let size = parts[1] == "all" ? memory : try ByteCount.parse(parts[1]).value
        switch parts[0] {
        case "touch": return .touch(size)
        case "pagecache": return .pageCache(size)
        case "hugetlb":
            guard size % (2 << 20) == 0 else { throw CocomemError(.invalidArgument, "workload '\(s)': the hugetlb pool grows in 2 MiB pages") }
            return .hugetlb(size)
        default: throw CocomemError(.invalidArgument, "unknown workload '\(parts[0])' (expected touch, pagecache, hugetlb, rate, hotplug or unplug)")
        }
    }

    /// `hotplug=SIZE[:dimm|virtio-mem]` and `unplug=...`: a DIMM is whole
    /// 128 MiB memory blocks (`memory_block_size_bytes()`, what
    /// `add_memory()` takes), a virtio-mem change whole 4 MiB MAX_ORDER
    /// blocks (the model onlines whole blocks; a smaller plug would be
    /// accepted at once by `__free_pages_core()`, which is not modelled).
    static func parseHotplug(_ s: String, _ verb: String, _ value: String) throws -> Workload {
        let f = value.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard f.count <= 2 else { throw CocomemError(.invalidArgument, "workload '\(s)': expected \(verb)=SIZE[:dimm|virtio-mem]") }
        let size: UInt64
        do { size = try ByteCount.parse(f[0]).value } catch let e as CocomemError {
            throw CocomemError(e.code, "workload '\(s)': \(e.message)")
        }
        let kind: MemoryDeviceKind
        if f.count == 2 {
            guard let k = MemoryDeviceKind(rawValue: f[1]) else {
                throw CocomemError(.invalidArgument, "workload '\(s)': device '\(f[1])' is not dimm or virtio-mem")
            }
            kind = k
        } else { kind = .dimm }
        let unit: UInt64 = kind == .dimm ? 128 << 20 : 4 << 20
        guard size > 0, size % unit == 0 else {
            throw CocomemError(.invalidArgument, "workload '\(s)': a \(kind.rawValue) \(verb) is a positive multiple of \(ByteCount(unit))")
        }
        guard size <= 1 << 52 else { throw CocomemError(.invalidSize, "workload '\(s)': more than 4 PiB") }
        return verb == "hotplug" ? .hotplug(size, kind) : .unplug(size, kind)
    }
}

/// Which TDX host a boot runs against.
public enum TDXHostModel: String, Sendable, CaseIterable {
    /// The KVM + TDX module model as upstream today: private memory mapped
    /// at 4K, no Dynamic PAMT.
    case tdx
    /// The KVM + TDX module model with the TDX huge page series v3 and
    /// DPAMT v4 (seed 004): 2M private mappings once the TD is runnable.
    case tdxHuge = "tdx-huge"

    /// KVM options and module features for this host.
    public var configuration: (KVMOptions, TDXModuleFeatures) {
        var f = TDXModuleFeatures()
        switch self {
        case .tdx:
            f.dynamicPAMT = false
            return (.upstream4K, f)
        case .tdxHuge:
            return (KVMOptions(), f)
        }
    }
}

/// Everything that defines one simulated boot.
public struct Scenario: Sendable {
    /// The most vCPUs a scenario may have.
    public static let maximumVCPUs = 4096
    public var platform: PlatformKind = .tdx
    public var memory: UInt64 = ByteCount.gib(4).value
    public var vcpus: Int = 4
    public var lazy = true
    /// SEV-SNP host backing (4K or 2M guest_memfd folios).
    public var hostMapping: HostMappingPolicy = .map4K
    /// The TDX host model the guest runs against.
    public var tdxHost: TDXHostModel = .tdx
    /// An SEV-SNP guest runs on the KVM SEV-SNP host model (`SNPVM`:
    /// guest_memfd, the NPT, the RMP, `snp_begin_psc()`), not the
    /// guest-facing `SNPPlatform` (`--host snp`, the `host:` key `kind: snp`).
    /// `hostMapping` chooses its guest_memfd backing: `4k` buddy pages,
    /// `2m` hugetlb 2M folios.
    public var snpHost = false
    /// guest_memfd backing for the KVM host model (default: buddy for
    /// `tdx`, hugetlb 2M for `tdx-huge`).
    public var gmemBacking: GmemBacking? = nil
    /// Forward-looking: the TDX module maps private memory at 1G
    /// (`TDXModuleFeatures.privateMappings1G`, `--tdx-module-1g`); needs
    /// `tdx-huge` (KVM maps private memory above 4K) and pays off with
    /// hugetlb 1G guest_memfd folios.
    public var tdxModule1G = false
    /// The Dynamic PAMT series the host kernel runs (`--dpamt v4|v6`; nil:
    /// the host model's own, v4 on `tdx-huge`); `tdx-huge` only, the `tdx`
    /// host having no Dynamic PAMT.
    public var dpamtSeries: DPAMTSeries? = nil
    /// The host's KeyID-reduced `x86_phys_bits` (`--host-phys-bits`, 36...52;
    /// nil: `KVMOptions`'s 46): v6 enables Dynamic PAMT only within 48.
    public var hostPhysBits: Int? = nil
    /// Where the host allocator puts S-EPT and TDX control pages
    /// (`--host-placement`, `--host-free-4k`; `KVMOptions.septPlacement`).
    public var hostPlacement: SEPTPlacement? = nil
    public var hostIsolatedFreePages: UInt64? = nil
    public var firmware: FirmwareGeneration = .tdvf
    /// The edk2 stable tag the firmware was named by (`edk2-stable202508`),
    /// if any; `firmware` is the generation it maps to (`EDK2Release`).
    public var edk2Release: EDK2Release? = nil
    public var partialAcceptBytes: UInt64 = 256 << 20
    public var snpAcceptanceProtocol = true
    public var snpPrefault = false
    /// The VMPL an SEV-SNP guest runs at (0 to 3). Above 0 an SVSM runs at
    /// VMPL0 and Linux validates memory through it (SVSM_CORE_PVALIDATE,
    /// `--vmpl`); firmware validation is not changed (edk2's SVSM path is
    /// not modelled).
    public var snpVMPL = 0
    /// The CPU reports COHERENCY_SFW_NO (CPUID Fn8000001F_EBX[31]), so
    /// kernels with 7b306dfa326f skip `sev_evict_cache()`
    /// (`--snp-coherency-sfw-no`).
    public var snpCoherencySfwNo = false
    public var loader = BootLoaderConfig()
    public var kernel = KernelConfig()
    /// Memory allocated by user space on the way to a shell (page cache and anonymous).
    public var bootAllocationBytes: UInt64 = 256 << 20
    public var workload: Workload = .none
    public var seed: UInt64 = 0
    /// Simulate every TDCALL/PVALIDATE one at a time (for checking the bulk path).
    public var stepByStep = false
    /// Fill `BootResult.record` (and the kexec and dump results' records):
    /// phases, series, snapshots, vCPU lanes, allocation latency (issue 14).
    public var record = true
    /// Record the host-visible trace of the guest's memory use on the TDX
    /// host (`boot --host-trace FILE`, `TDXVM.hostTrace`); an output, not
    /// part of the scenario file.
    public var traceHost = false
    /// edk2 PR 12811: the firmware describes the hot-plug window as
    /// unaccepted memory with `EFI_MEMORY_UHP` (`--uhp`).
    public var firmwareMarksUHP = false
    /// A SoftReserved (Specific Purpose Memory) range of this many bytes at
    /// the top of RAM above 4 GiB, as QEMU lists it in its E820 table
    /// (`--soft-reserved`; SEV-SNP only); 0: none.
    public var softReservedBytes: UInt64 = 0
    /// edk2 6c6d0a72c2 "OvmfPkg/PlatformPei: retain SoftReserved memory
    /// under SEV-SNP" (PR 12774; on master after edk2-stable202605, in no
    /// stable tag): the range keeps its type and is pre-validated
    /// (`--retain-soft-reserved`).
    public var retainSoftReserved = false

    /// The SoftReserved range: the last `softReservedBytes` of RAM above 4 GiB.
    public var softReservedRange: AddressRange? {
        guard softReservedBytes > 0, let high = try? Q35Layout(memory: memory).highRAM else { return nil }
        let end = alignDown(high.end, 4096)
        return AddressRange(start: end - softReservedBytes, end: end)
    }

    /// How this scenario's firmware treats a SoftReserved range.
    public var softReservedHandling: SoftReservedHandling {
        if retainSoftReserved { return .retained }
        // 4e90b65e7b "OvmfPkg/PlatformInitLib: Add SoftReserved memory type support": edk2-stable202605.
        if let r = edk2Release, r.tag < "edk2-stable202605" { return .notHandled }
        return .unaccepted
    }
    /// `-numa node,memdev=` sizes, node 0 first (nil: no `-numa`, one node).
    public var numaNodeSizes: [UInt64]? = nil
    /// `-smp N,sockets=S` (QEMU ≥ 6.2 makes a plain `-smp N` one socket).
    public var sockets: Int = 1

    /// The NUMA layout QEMU builds (one node without `-numa`).
    public func numaLayout() throws -> NUMALayout {
        guard let sizes = numaNodeSizes else {
            try NUMALayout.checkSockets(sockets, vcpus: vcpus)
            return .single(memory: memory, sockets: sockets)
        }
        return try NUMALayout(nodeSizes: sizes, sockets: sockets, memory: memory, vcpus: vcpus)
    }

    /// `--numa N|SIZE,...` as the scenario keeps it: the node sizes, or nil
    /// for one node (so a one-node guest reads and prints as without the
    /// option). The sizes are checked against the memory and vCPUs here.
    public static func numaNodeSizes(_ text: String, memory: UInt64, vcpus: Int, sockets: Int) throws -> [UInt64]? {
        try numaNodeSizes(NUMALayout.parseSizes(text, memory: memory), memory: memory, vcpus: vcpus, sockets: sockets)
    }

    /// The node sizes checked, or nil for one node.
    public static func numaNodeSizes(_ sizes: [UInt64], memory: UInt64, vcpus: Int, sockets: Int) throws -> [UInt64]? {
        guard sizes.count > 1 else {
            // One node: no SRAT; its size must still be the guest's memory.
            guard sizes == [memory] else {
                throw CocomemError(.invalidSize, "--numa: the nodes add up to \(ByteCount(sizes[0])), not the guest's \(ByteCount(memory)) (QEMU: total memory for NUMA nodes should equal RAM size)")
            }
            return nil
        }
        _ = try NUMALayout(nodeSizes: sizes, sockets: sockets, memory: memory, vcpus: vcpus)
        return sizes
    }

    /// Whether the guest has more than one node.
    public var isNUMA: Bool { (numaNodeSizes?.count ?? 1) > 1 }

    /// Where the scenario's memory devices go (nil window: none).
    public var hotplugLayout: HotplugLayout { HotplugLayout(memory: memory, workload: workload) }

    public init() {}

    /// Checks combinations the model cannot represent.
    public func validate() throws {
        guard vcpus >= 1, vcpus <= Scenario.maximumVCPUs else { throw CocomemError(.invalidArgument, "vcpus must be between 1 and \(Scenario.maximumVCPUs)") }
        if platform == .snp && firmware != .ovmfSNP {
            throw CocomemError(.invalidArgument, "firmware \(firmware.rawValue) is a TDX firmware; SNP guests use ovmf-snp")
        }
        if platform == .tdx && firmware == .ovmfSNP {
            throw CocomemError(.invalidArgument, "firmware ovmf-snp is for SNP guests; TDX guests use tdvf or tdvf-2022")
        }
        try refuseOptionsThatCannotApply()
        _ = try Q35Layout(memory: memory)
        let numa = try numaLayout()
        for case .onNode(let n, _) in workload.flattened where n >= numa.nodeCount {
            throw CocomemError(.invalidArgument, "workload phase '@\(n)': node \(n) does not exist; the guest has \(numa.nodeCount) node\(numa.nodeCount == 1 ? "" : "s") (0 to \(numa.nodeCount - 1))")
        }
        // Sizes that cannot fit the guest are refused up front, not discovered by an overflow deep in the boot.
        let defaultAllocation = Scenario().bootAllocationBytes
        guard bootAllocationBytes <= max(memory, defaultAllocation) else {
            throw CocomemError(.invalidSize, "boot allocation of \(bootAllocationBytes) bytes is larger than the guest's \(memory) bytes of memory")
        }
        if let m = kernel.minFreeKbytes, !KernelConfig.minFreeKbytesRange.contains(m) {
            throw CocomemError(.invalidArgument, "vm.min_free_kbytes \(m) is out of the sysctl's range \(KernelConfig.minFreeKbytesRange.lowerBound) to \(KernelConfig.minFreeKbytesRange.upperBound)")
        }
        guard (0...3).contains(snpVMPL) else {
            throw CocomemError(.invalidArgument, "VMPL \(snpVMPL) does not exist: SEV-SNP has VMPL0 to VMPL3")
        }
        if let f = kernel.watermarkScaleFactor, !KernelConfig.watermarkScaleFactorRange.contains(f) {
            throw CocomemError(.invalidArgument, "vm.watermark_scale_factor \(f) is out of the sysctl's range \(KernelConfig.watermarkScaleFactorRange.lowerBound) to \(KernelConfig.watermarkScaleFactorRange.upperBound)")
        }
                guard kernel.kernelInitBytes <= memory else {
            throw CocomemError(.invalidSize, "kernel init size of \(kernel.kernelInitBytes) bytes is larger than the guest's \(memory) bytes of memory")
        }
    }

    /// Options the model would silently ignore on this platform or firmware
    /// are errors. Only a value other than the default can be told apart
    /// (the scenario holds values, not whether they were given): the
    /// default `host: tdx` on an SNP guest, `host-mapping: 4k` on a TDX
    /// guest or `fw-partial-accept: 256M` with tdvf are accepted, as the
    /// printed scenario files carry them.
    func refuseOptionsThatCannotApply() throws {
        let defaults = Scenario()
        func refuse(_ option: String, _ why: String) throws {
            throw CocomemError(.invalidArgument, "\(option) cannot apply: \(why)")
        }
        switch platform {
        case .snp:
            if tdxHost != defaults.tdxHost {
                try refuse("--host \(tdxHost.rawValue)", "it chooses the TDX host model; an SNP guest runs on the SEV-SNP host model with --host snp (its folios set by --host-mapping)")
            }
            if let g = gmemBacking {
                try refuse("--gmem \(g.rawValue)", "it backs the TDX host model's guest_memfd; an SNP guest's host is --host snp, its folios set by --host-mapping")
            }
            if tdxModule1G { try refuse("--tdx-module-1g", "it is a TDX module feature; this is an SEV-SNP guest") }
            if let d = dpamtSeries { try refuse("--dpamt \(d.rawValue)", "Dynamic PAMT is the TDX module's; this is an SEV-SNP guest") }
            if hostPhysBits != nil { try refuse("--host-phys-bits", "it is the TDX host's address width for Dynamic PAMT; this is an SEV-SNP guest") }
            if hostPlacement != nil || hostIsolatedFreePages != nil { try refuse("--host-placement/--host-free-4k", "they place the TDX host's S-EPT and control pages; this is an SEV-SNP guest") }
            if snpHost {
                // What the SNP host model does not have yet (docs/STATUS.md, issue 18).
                if snpVMPL != 0 { try refuse("--vmpl \(snpVMPL)", "the SNP host model (--host snp) does not run an SVSM's SVSM_CORE_PVALIDATE calls; use it without --host snp") }
                if workload.flattened.contains(where: { if case .hotplug = $0 { true } else if case .unplug = $0 { true } else { false } }) {
                    try refuse("hotplug with --host snp", "the SNP host model has no memory device plugging; use it without --host snp")
                }
            }
        case .tdx:
            if snpHost { try refuse("--host snp", "it is the SEV-SNP host model; a TDX guest runs on --host tdx or tdx-huge") }
            if tdxModule1G && tdxHost != .tdxHuge {
                try refuse("--tdx-module-1g", "the \(tdxHost.rawValue) host maps private memory at 4K only; 1G private mappings need --host tdx-huge")
            }
            if let d = dpamtSeries, tdxHost != .tdxHuge {
                try refuse("--dpamt \(d.rawValue)", "the \(tdxHost.rawValue) host runs static PAMT (no Dynamic PAMT); the series apply to --host tdx-huge")
            }
            if hostIsolatedFreePages != nil && hostPlacement != .buddy {
                try refuse("--host-free-4k", "it is the buddy allocator's free-memory state: it needs --host-placement buddy")
            }
            if hostMapping != defaults.hostMapping {
                try refuse("--host-mapping \(hostMapping.rawValue)", "it is the SEV-SNP host backing; a TDX guest's host is set by --host and --gmem")
            }
            if snpPrefault { try refuse("--snp-prefault", "pre-faulting on page state change is an SEV-SNP host feature; this is a TDX guest") }
            if snpVMPL != 0 { try refuse("--vmpl \(snpVMPL)", "VMPLs and the SVSM are SEV-SNP's; this is a TDX guest") }
            if snpCoherencySfwNo { try refuse("--snp-coherency-sfw-no", "COHERENCY_SFW_NO is an SEV-SNP CPUID bit; this is a TDX guest") }
            if !snpAcceptanceProtocol {
                try refuse("--snp-firmware-without-protocol", "the memory acceptance protocol is OVMF's for SEV-SNP; this TDX guest runs \(firmware.rawValue)")
            }
            if !loader.stubCallsAcceptanceProtocol {
                try refuse("--no-acceptance-protocol-call", "only ovmf-snp offers the acceptance protocol the stub would call; this TDX guest runs \(firmware.rawValue)")
            }
        }
        if softReservedBytes > 0 {
            let size = ByteCount(softReservedBytes)
            guard platform == .snp else {
                try refuse("--soft-reserved \(size)", "TDVF builds its memory map from the TD HOB (TransferTdxHobList), not from QEMU's E820 table where SoftReserved ranges are; modelled for SEV-SNP guests")
                return
            }
            let high = (try Q35Layout(memory: memory)).highRAM
            guard softReservedBytes % (2 << 20) == 0, let high, softReservedBytes < alignDown(high.size, 4096) else {
                throw CocomemError(.invalidSize, "soft-reserved size \(size) must be a multiple of 2 MiB and smaller than the RAM above 4 GiB (\(ByteCount((try Q35Layout(memory: memory)).highRAM?.size ?? 0)))")
            }
        }
        if retainSoftReserved {
            guard softReservedBytes > 0 else { try refuse("--retain-soft-reserved", "there is no SoftReserved range (--soft-reserved)"); return }
            if let r = edk2Release, r.tag < "edk2-stable202605" {
                try refuse("--retain-soft-reserved", "6c6d0a72c2 (PR 12774) needs the SoftReserved support of 4e90b65e7b, first in edk2-stable202605; \(r.tag) leaves the range out of the map")
            }
        }
        if firmwareMarksUHP, hotplugLayout.window == nil {
            try refuse("--uhp", "it marks the hot-plug window, and this VM has none (no hotplug= phase)")
        }
        if kernel.hotplugAcceptance == .uhp, !firmwareMarksUHP {
            try refuse("--hotplug-accept uhp", "the UHP-aware kernel tracks hot-added memory only inside EFI_MEMORY_UHP ranges; add --uhp for a firmware that marks them")
        }
        if firmware != .tdvf2022, partialAcceptBytes != defaults.partialAcceptBytes {
            try refuse("--fw-partial-accept \(ByteCount(partialAcceptBytes))", "it is tdvf-2022's PcdTdxAcceptPartialMemorySize; firmware \(firmware.rawValue) accepts all memory below 4 GiB")
        }
        // The 2022 kernels had no accept_memory=eager: an eager tdvf-2022 boot
        // is the firmware accepting all memory (FirmwareBoot.preAcceptPlan's
        // eagerFirmware), which sets the partial size aside. 0 is "accept all"
        // already, so only another size is contradictory.
        if firmware == .tdvf2022, !lazy, partialAcceptBytes != defaults.partialAcceptBytes, partialAcceptBytes != 0 {
            try refuse("--fw-partial-accept \(ByteCount(partialAcceptBytes))", "with --accept eager, tdvf-2022 accepts all memory itself (the 2022 kernels had no accept_memory=eager), so no partial size is left to choose; use --accept lazy, or --fw-partial-accept 0")
        }
    }
}
