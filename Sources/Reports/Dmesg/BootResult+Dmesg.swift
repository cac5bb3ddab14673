import CoCoGuest
import Foundation
public import Firmware
public import GuestKernel
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
    /// The e820 table `setup_e820()` handed the kernel.
    public var e820Table: [E820Entry] {
        EFIStub.e820Table(map: firmware.map, unacceptedSupported: scenario.loader.kernelSupportsUnaccepted && !scenario.loader.loaderCallsExitBootServices)
    }

    /// memblock.memory as `free_area_init()` walks it ("Early memory node
    /// ranges"): the e820 RAM after `trim_bios_range()` (page 0 made
    /// reserved, 640K-1M removed), plus the unaccepted table's pages that
    /// `reserve_unaccepted()` adds with `memblock_add()`, adjacent regions merged.
    public var memblockMemory: [AddressRange] {
        var ram = e820Table.filter { $0.type == .ram }.map(\.range)
        ram = ram.subtracting([AddressRange(start: 0, end: 0x1000), AddressRange(start: 0xA_0000, end: 0x10_0000)])
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
        let memory = memblockMemory
        guard let maxPFNEnd = e820Table.filter({ $0.type == .ram }).map(\.range.end).max(), let low = memory.first?.start else { return out }
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
        for r in memory { at(0, "  node   0: [mem \(hex16(r.start))-\(hex16(r.end - 1))]") }
        at(0, "Initmem setup node 0 [mem \(hex16(low))-\(hex16(maxPFNEnd - 1))]")
        let boot = times.kernelBoot
        guard let kernel else { return out }
        // swiotlb_init_remap() in mm_core_init(): the lines the model kept.
        for e in kernel.events where e.hasPrefix("software IO TLB: ") {
            for part in e.dropFirst("software IO TLB: ".count).components(separatedBy: "; ") { at(boot, "software IO TLB: " + part) }
        }
        // mem_init_print_info(): free pages after memblock_free_all(); the
        // deferred Normal zone is not yet freed, so it counts as reserved.
        let physpages = memory.reduce(0) { $0 + $1.bytes.frames() }
        let unreserved = memory.subtracting(kernel.reserved)
        let freedEarly = kernel.config.deferredStructPageInit
            ? unreserved.reduce(0) { $0 + $1.clamped(to: AddressRange(start: 0, end: 1 << 32)).bytes.frames() }
            : unreserved.reduce(0) { $0 + $1.bytes.frames() }
        let k = { (p: UInt64) in p * 4 }
        at(boot, "Memory: \(k(freedEarly))K/\(k(physpages))K available (\(sections.code)K kernel code, \(sections.rwdata)K rwdata, "
            + "\(sections.rodata)K rodata, \(sections.initSize)K init, \(sections.bss)K bss, \(k(physpages - freedEarly))K reserved, 0K cma-reserved)")
        at(boot, scenario.platform == .tdx ? "Memory Encryption Features active: Intel TDX" : "Memory Encryption Features active: AMD SEV SEV-ES SEV-SNP")
        at(boot, "smp: Bringing up secondary CPUs ...")
        at(boot, "smp: Brought up 1 node, \(scenario.vcpus) CPU\(scenario.vcpus == 1 ? "" : "s")")
        if kernel.config.deferredStructPageInit && times.deferredInit > 0 {
            at(boot + times.deferredInit, "node 0 deferred pages initialised in \(UInt64(times.deferredInit * 1000))ms")
        }
        if outcome == .ok {
            at(boot + times.deferredInit + times.earlyAllocations, "Freeing unused kernel image (initmem) memory: \(sections.initSize)K")
        }
        return out
    }
}
