import MemoryModel

/// Where kexec segments go. Both searches place a buffer in "System RAM"
/// (E820 RAM: ACPI tables and NVS, reserved and persistent memory are
/// other resource types and never searched, and hot-added driver-managed
/// memory is skipped), without regard to what the running kernel uses
/// there: the relocation at reboot overwrites it, which is why
/// destinations may be memory the kernel never accepted.
enum KexecPlacement {
    static let pageSize: UInt64 = 4096

    /// `kexec_locate_mem_hole()` → `kexec_walk_resources()` →
    /// `locate_mem_hole_callback()` (kernel/kexec_file.c). `regions` are the
    /// System RAM resources in address order (for a crash image, the
    /// "Crash kernel" resource alone). Since b3ba234171cd ("kexec_file:
    /// load kernel at top of system RAM if required", v6.8) a top-down
    /// buffer walks the regions from the top (`walk_system_ram_res_rev()`);
    /// before it, every walk went bottom-up and a top-down buffer went to
    /// the top of the first region it fit in. The buffer's own
    /// `top_down` decides the direction inside a region.
    /// - Complexity: O(regions + steps × segments), a step being one page
    ///   moved past a clash with an earlier segment.
    static func kernelLocate(_ b: KexecBuf, regions: [AddressRange], placed: [KexecSegment], reverseWalk: Bool) -> UInt64? {
        let walk = b.topDown && reverseWalk ? Array(regions.reversed()) : regions
        for r in walk where r.size > 0 {
            let start = r.start, end = r.end - 1  // resource ends are inclusive
            if r.size < b.memsz { continue }
            if end < b.min || start > b.max { continue }
            let found = b.topDown ? topDown(b, start: start, end: end, placed: placed)
                                  : bottomUp(b, start: start, end: end, placed: placed)
            if let f = found { return f }
        }
        return nil
    }

    /// `locate_mem_hole_top_down()`: from the top of the region, step down a
    /// page past any clash with a placed segment, aligning down each time.
    static func topDown(_ b: KexecBuf, start: UInt64, end: UInt64, placed: [KexecSegment]) -> UInt64? {
        let tempEnd = min(end, b.max)
        guard tempEnd + 1 >= b.memsz else { return nil }
        var s = tempEnd - b.memsz + 1
        while true {
            s = alignDown(s, b.align)
            if s < start || s < b.min { return nil }
            if clashes(s, b.memsz, placed) {
                guard s >= pageSize else { return nil }
                s -= pageSize
                continue
            }
            return s
        }
    }

    /// `locate_mem_hole_bottom_up()`.
    static func bottomUp(_ b: KexecBuf, start: UInt64, end: UInt64, placed: [KexecSegment]) -> UInt64? {
        var s = max(start, b.min)
        while true {
            s = alignUp(s, b.align)
            let e = s + b.memsz - 1
            if e > end || e > b.max { return nil }
            if clashes(s, b.memsz, placed) { s += pageSize; continue }
            return s
        }
    }

    /// `kimage_is_destination_range()`.
    static func clashes(_ start: UInt64, _ size: UInt64, _ placed: [KexecSegment]) -> Bool {
        placed.contains { $0.range.overlaps(AddressRange(start: start, size: size)) }
    }

    /// kexec-tools' `locate_hole()` (kexec/kexec.c): the RAM ranges minus
    /// the segments placed so far, clipped to `[mem_min, mem_max]` and the
    /// buffer's bounds, the start aligned up. Bottom-up takes the first
    /// range that fits; top-down takes the last one and aligns down from its
    /// end, without checking the aligned base against the range start
    /// again (`add_segment()` then rejects a base outside RAM, and an
    /// overlap fails in the next `sort_segments()` or the kernel's check).
    /// - Returns: the base, or nil when no range fits ("Could not find a
    ///   free area of memory of 0x%lx bytes...").
    static func userLocate(_ b: KexecBuf, ram: [AddressRange], placed: [KexecSegment], memMin: UInt64, memMax: UInt64) -> UInt64? {
        var base: UInt64? = nil
        for f in freeRanges(ram: ram, placed: placed) {
            var start = max(f.start, memMin, b.min)
            start = alignUp(start, b.align)
            let end = min(f.end - 1, memMax, b.max)  // inclusive
            if start >= end || start >= memMax || end <= memMin { continue }
            guard end - start >= b.memsz - 1 else { continue }
            if !b.topDown { return start }
            guard end + 1 >= b.memsz else { continue }
            base = alignDown(end - b.memsz + 1, b.align)
        }
        guard let h = base, h + b.memsz - 1 <= b.max else { return nil }
        return h
    }

    /// RAM with the placed segments cut out, in address order.
    static func freeRanges(ram: [AddressRange], placed: [KexecSegment]) -> [AddressRange] {
        ram.subtracting(placed.map(\.range))
    }
}
