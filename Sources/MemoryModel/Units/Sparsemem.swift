/// x86-64 SPARSEMEM sections: `SECTION_SIZE_BITS` = 27, 128 MiB each.
public enum Sparsemem {
    public static let sectionBytes: UInt64 = 128 << 20
    /// `section_map_size()`: the 2 MiB of struct pages of one section, PMD-aligned.
    public static let sectionMapBytes: UInt64 = 2 << 20

    /// The number of sections that hold any RAM: `presentSections(ram).count`,
    /// counted per range (a 4 PiB guest has 2^25 sections).
    /// - Complexity: O(ranges log ranges).
    public static func presentSectionCount(_ ram: [AddressRange]) -> UInt64 {
        var n: UInt64 = 0
        var last: UInt64? = nil   // the highest section counted so far
        for r in ram.sorted(by: { $0.start < $1.start }) where !r.isEmpty {
            var first = r.start / sectionBytes
            let end = (r.end - 1) / sectionBytes
            if let l = last {
                if end <= l { continue }
                first = max(first, l + 1)
            }
            n += end - first + 1
            last = end
        }
        return n
    }

    /// Section numbers that hold any RAM (`memory_present()`), ascending.
    /// - Complexity: O(ranges + sections).
    public static func presentSections(_ ram: [AddressRange]) -> [UInt64] {
        var out: [UInt64] = []
        for r in ram.sorted(by: { $0.start < $1.start }) where !r.isEmpty {
            for s in (r.start / sectionBytes)...((r.end - 1) / sectionBytes) where out.last != s { out.append(s) }
        }
        return out
    }
}

/// The zones of an x86-64 node by physical address: DMA below 16 MiB,
/// DMA32 below 4 GiB, Normal above (`zone_sizes_init()`).
public enum X86Zones {
    /// 0 DMA, 1 DMA32, 2 Normal.
    @inlinable public static func index(ofAddress addr: UInt64) -> Int { addr < (16 << 20) ? 0 : addr < (1 << 32) ? 1 : 2 }
}
