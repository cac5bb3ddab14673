import CoCoGuest
import Foundation
public import Firmware
import GuestKernel
public import MemoryModel
public import Simulation

/// One line of a guest's kernel log: printk's time stamp and the text
/// after it (with the subsystem's `pr_fmt` prefix).
public struct DmesgLine: Equatable, Sendable {
    /// Seconds since the kernel started (`local_clock()`), virtual time.
    public var seconds: Double
    public var text: String
    public init(seconds: Double, text: String) { self.seconds = seconds; self.text = text }

    /// printk's `[%5lu.%06lu] ` prefix (kernel/printk/printk.c `print_time()`).
    public var formatted: String {
        let micros = UInt64((seconds * 1_000_000).rounded())
        let whole = String(micros / 1_000_000), frac = String(micros % 1_000_000)
        return "[" + String(repeating: " ", count: max(0, 5 - whole.count)) + whole + "."
            + String(repeating: "0", count: 6 - frac.count) + frac + "] " + text
    }
}

/// The kernel image's sections as `mem_init_print_info()` prints them, in
/// KiB. The model does not build a kernel, so it does not know them: they
/// are 0 unless given (`compare` takes them from the real log).
public struct KernelImageSections: Equatable, Sendable {
    public var code: UInt64 = 0, rwdata: UInt64 = 0, rodata: UInt64 = 0, initSize: UInt64 = 0, bss: UInt64 = 0
    public init() {}
}

extension BootResult {
    /// The SRAT and NUMA lines of `setup_arch()` → `initmem_init()`:
    /// `acpi_numa_processor_affinity_init()` for each vCPU (APIC IDs as QEMU
    /// numbers them: the socket above the core bits), then
    /// `acpi_numa_memory_affinity_init()` for each memory affinity
    /// structure, then `numa_cleanup_meminfo()`'s merges of a node's blocks
    /// (trimmed to memblock's first and last address) across holes no other
    /// node's memory lies in. No "NUMA: Initialized distance table" line:
    /// QEMU builds no SLIT without `-numa dist`, so `numa_alloc_distance()`
    /// never runs and `node_distance()` answers 10 and 20.
    func numaLines(_ numa: NUMATopology, memory: [AddressRange]) -> [String] {
        var out: [String] = []
        let perSocket = max(1, scenario.vcpus / scenario.sockets)
        let coreBits = perSocket <= 1 ? 0 : (UInt64.bitWidth - UInt64(perSocket - 1).leadingZeroBitCount)
        for cpu in 0..<scenario.vcpus {
            let apic = ((cpu / perSocket) << coreBits) | (cpu % perSocket)
            let hex = String(apic, radix: 16)
            out.append("ACPI: SRAT: PXM \(numa.cpuNode[cpu]) -> APIC 0x\(hex.count < 2 ? "0" + hex : hex) -> Node \(numa.cpuNode[cpu])")
        }
        func mem(_ r: AddressRange) -> String { "[mem \(hex010(r.start))-\(hex010(r.end - 1))]" }
        for (n, r) in numa.memory { out.append("ACPI: SRAT: Node \(n) PXM \(n) \(mem(r))") }
        guard let low = memory.first?.start, let high = memory.last?.end else { return out }
        var blocks = numa.memory.map { (node: $0.node, range: $0.range.clamped(to: AddressRange(start: low, end: high))) }.filter { !$0.range.isEmpty }
        var i = 0
        while i < blocks.count {
            var j = i + 1
            while j < blocks.count {
                let bi = blocks[i], bj = blocks[j]
                let merged = AddressRange(start: min(bi.range.start, bj.range.start), end: max(bi.range.end, bj.range.end))
                let blocked = blocks.contains { $0.node != bi.node && $0.range.overlaps(merged) }
                if bi.node == bj.node, !blocked {
                    out.append("NUMA: Node \(bi.node) \(mem(bi.range)) + \(mem(bj.range)) -> \(mem(merged))")
                    blocks[i].range = merged
                    blocks.remove(at: j)
                } else { j += 1 }
            }
            i += 1
        }
        return out
    }

    /// The e820 table `setup_e820()` handed the kernel.
    public var e820Table: [E820Entry] {
        EFIStub.e820Table(map: firmware.map, unacceptedSupported: scenario.loader.kernelSupportsUnaccepted && !scenario.loader.loaderCallsExitBootServices)
    }

    /// memblock.memory as `free_area_init()` walks it ("Early memory node
    /// ranges"): the e820 RAM after `trim_bios_range()` (page 0 made
    /// reserved, 640K-1M removed), plus the unaccepted table's pages that
    /// `reserve_unaccepted()` adds with `memblock_add()`, adjacent regions merged.
    public var memblockMemory: [AddressRange] {
        var ram = GuestKernel.trimBIOSRange(e820Table.filter { $0.type == .ram }.map(\.range))
        if let t = kernel?.reservation(.unacceptedTable) { ram.append(t) }
        var merged: [AddressRange] = []
        for r in ram.sorted(by: { $0.start < $1.start }) where !r.isEmpty {
            if let last = merged.last, r.start <= last.end { merged[merged.count - 1].end = max(last.end, r.end) } else { merged.append(r) }
        }
        return merged
    }

    /// The memory lines a guest's `dmesg` shows, in the kernel's formats,
    /// time-stamped in the model's virtual time. Lines of `setup_arch()`
    /// are at 0 (the model does not time its steps); `mm_core_init()`'s and
    /// `smp_init()`'s at the end of the kernel_boot phase; deferred init's
    /// line after its phase; "Freeing unused kernel image" after the early
    /// allocations, before user space (the report's phase order).
    /// - Complexity: O(descriptors + reservations).
    public func dmesg(sections: KernelImageSections = KernelImageSections()) -> [DmesgLine] {
        var out: [DmesgLine] = []
        func at(_ t: Double, _ s: String) { out.append(DmesgLine(seconds: t, text: s)) }
        if scenario.platform == .tdx { at(0, "tdx: Guest detected") }
        at(0, "BIOS-provided physical RAM map:")
        for e in e820Table { at(0, e.line()) }
        // efi=debug: efi_print_memmap().
        for l in firmware.map.kernelFormat().splitLines() where !l.isEmpty { at(0, String(l)) }
        // setup_arch(): trim_bios_range() after efi_init().
        for l in GuestKernel.trimBIOSRangeLines { at(0, l) }
        let memory = memblockMemory
        guard let maxPFNEnd = e820Table.filter({ $0.type == .ram }).map(\.range.end).max(), let low = memory.first?.start else { return out }
        if let numa = kernel?.numa, !numa.isSingleNode {
            for l in numaLines(numa, memory: memory) { at(0, l) }
        }
        at(0, "smpboot: Allowing \(scenario.vcpus) CPUs, 0 hotplug CPUs")
        // free_area_init(): zone ranges from arch_zone_{lowest,highest}_possible_pfn.
        at(0, "Zone ranges:")
        let dmaEnd = min(UInt64(16 << 20), maxPFNEnd), dma32End = min(UInt64(1) << 32, maxPFNEnd)
        func zone(_ name: String, _ s: UInt64, _ e: UInt64) {
            let label = "  " + name.padding(toLength: 8, withPad: " ", startingAt: 0) + " "
            at(0, label + (s >= e ? "empty" : "[mem \(hex16(s))-\(hex16(e - 1))]"))
        }
        zone("DMA", low, dmaEnd)
        zone("DMA32", dmaEnd, dma32End)
        zone("Normal", max(dma32End, UInt64(1) << 32), maxPFNEnd)
        zone("Device", 0, 0)
        at(0, "Movable zone start for each node")
        at(0, "Early memory node ranges")
        if let numa = kernel?.numa, !numa.isSingleNode {
            // memblock regions carry their node; free_area_init() prints each, then each node's span.
            let tagged = memory.flatMap { numa.split($0) }
            for (n, r) in tagged { at(0, "  node " + String(n).leftPadded(3) + ": [mem \(hex16(r.start))-\(hex16(r.end - 1))]") }
            for n in 0..<numa.nodeCount {
                let parts = tagged.filter { $0.node == n }.map(\.range)
                guard let s = parts.first?.start, let e = parts.last?.end else { continue }
                at(0, "Initmem setup node \(n) [mem \(hex16(s))-\(hex16(e - 1))]")
            }
        } else {
            for r in memory { at(0, "  node   0: [mem \(hex16(r.start))-\(hex16(r.end - 1))]") }
            at(0, "Initmem setup node 0 [mem \(hex16(low))-\(hex16(maxPFNEnd - 1))]")
        }
        let boot = times.kernelBoot
        guard let kernel else { return out }
        // swiotlb_init_remap() in mm_core_init(): the lines the model kept.
        for e in kernel.events where e.hasPrefix("software IO TLB: ") {
            for part in e.dropFirst("software IO TLB: ".count).components(separatedBy: "; ") { at(boot, "software IO TLB: " + part) }
        }
        // mem_init_print_info(): free pages after memblock_free_all(); what
        // it left to deferred init (each node's last zone past its first
        // section) is not yet freed, so it counts as reserved.
        let physpages = memory.reduce(0) { $0 + $1.bytes.frames() }
        // Boot services memory is still reserved when mem_init() prints.
        let unreserved = memory.subtracting(kernel.reserved + kernel.bootServices.freed)
        let freedEarly = unreserved.subtracting(kernel.deferredAtFreeAll).reduce(0) { $0 + $1.bytes.frames() }
        let k = { (p: UInt64) in p * 4 }
        at(boot, "Memory: \(k(freedEarly))K/\(k(physpages))K available (\(sections.code)K kernel code, \(sections.rwdata)K rwdata, "
            + "\(sections.rodata)K rodata, \(sections.initSize)K init, \(sections.bss)K bss, \(k(physpages - freedEarly))K reserved, 0K cma-reserved)")
        at(boot, scenario.platform == .tdx ? "Memory Encryption Features active: Intel TDX" : "Memory Encryption Features active: AMD SEV SEV-ES SEV-SNP")
        at(boot, "smp: Bringing up secondary CPUs ...")
        let nodes = kernel.numa.nodeCount
        at(boot, "smp: Brought up \(nodes) node\(nodes == 1 ? "" : "s"), \(scenario.vcpus) CPU\(scenario.vcpus == 1 ? "" : "s")")
        if nodes > 1 {
            // One pgdatinit thread a node, each printing when its node is done.
            let lines = kernel.deferredInitNodePicoseconds.enumerated().filter { $0.element > 0 }.sorted { ($0.element, $0.offset) < ($1.element, $1.offset) }
            for (n, ps) in lines {
                at(boot + Double(ps) / 1e12, "node \(n) deferred pages initialised in \(ps / 1_000_000_000)ms")
            }
        } else if kernel.config.deferredStructPageInit && times.deferredInit > 0 {
            at(boot + times.deferredInit, "node 0 deferred pages initialised in \(UInt64(times.deferredInit * 1000))ms")
        }
        // efi_free_boot_services(), an arch_initcall (a4b0bf6a40f3, 7.0).
        for e in kernel.events where e.hasPrefix("efi: Freeing EFI boot services memory: ") {
            at(boot + times.deferredInit + times.earlyAllocations, e)
        }
        if outcome == .ok {
            at(boot + times.deferredInit + times.earlyAllocations, "Freeing unused kernel image (initmem) memory: \(sections.initSize)K")
        }
        return out
    }
}

/// `%#010Lx`: `0x` and at least eight hex digits, as the SRAT and NUMA lines print addresses.
func hex010(_ v: UInt64) -> String {
    let s = String(v, radix: 16)
    return "0x" + String(repeating: "0", count: max(0, 8 - s.count)) + s
}
