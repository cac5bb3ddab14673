import MemoryModel

/// One zone as `/proc/zoneinfo` shows it (`zoneinfo_show_print()`,
/// mm/vmstat.c), limited to what the model keeps: the watermarks, the spans,
/// `lowmem_reserve[]` (printed as `protection:`) and the `nr_free_pages` and
/// `nr_unaccepted` counters. `boost` and `cma` are zero in the model (no
/// fragmentation event raises `watermark_boost`, no CMA area exists).
public struct ZoneinfoEntry: Sendable, Equatable {
    /// `zone_names[]`: DMA, DMA32, Normal, Movable, Device.
    public var name: String
    /// The node (`Node %d, zone %8s`).
    public var node: Int = 0
    public var freePages: UInt64 = 0
    public var min: UInt64 = 0, low: UInt64 = 0, high: UInt64 = 0, promo: UInt64 = 0
    public var spanned: UInt64 = 0, present: UInt64 = 0, managed: UInt64 = 0
    /// `lowmem_reserve[MAX_NR_ZONES]`.
    public var protection: [UInt64] = Array(repeating: 0, count: ZoneKind.maxNrZones)
    public var unacceptedPages: UInt64 = 0
    /// `populated_zone()`: present pages. An unpopulated zone stops after
    /// its `protection:` line.
    public var isPopulated: Bool { present > 0 }
}

extension GuestKernel {
    /// Every zone of every node (`walk_zones_in_node()` for each online
    /// node, populated or not): the three the model fills and the empty
    /// Movable and Device zones a distribution kernel also has.
    /// - Complexity: O(zones × RAM ranges).
    public var zoneinfo: [ZoneinfoEntry] {
        var out: [ZoneinfoEntry] = []
        for n in 0..<numa.nodeCount {
            for (k, kind) in ZoneKind.allCases.enumerated() {
                let i = n * ZoneKind.allCases.count + k
                let z = zones[i]
                let single = numa.isSingleNode
                out.append(ZoneinfoEntry(name: kind.rawValue, node: n, freePages: z.freePages, min: z.watermarkMin, low: z.watermarkLow,
                                         high: z.watermarkHigh, promo: z.watermarkPromo,
                                         spanned: single ? spannedPages(kind) : spannedPages(zone: i),
                                         present: single ? presentPages(kind) : presentPages(zone: i), managed: z.managed,
                                         protection: z.lowmemReserve, unacceptedPages: z.unacceptedPages))
            }
            for name in ZoneKind.emptyZoneNames {
                var e = ZoneinfoEntry(name: name, node: n)
                if name == "Movable", watermarksReady {
                    let w = emptyMovableZoneWatermark
                    (e.min, e.low, e.high, e.promo) = (w, w, w, w)
                }
                out.append(e)
            }
        }
        return out
    }

    /// `/proc/zoneinfo` in the kernel's format for the lines the model keeps
    /// (see `ZoneinfoEntry`); the per-node stats of the first populated zone,
    /// the other counters, the pagesets and the trailing fields are left out.
    public var procZoneinfo: String {
        var o = ""
        for e in zoneinfo {
            o += "Node \(e.node), zone " + e.name.leftPadded(8)
            o += "\n  pages free     \(e.freePages)"
            for (label, v) in [("boost", UInt64(0)), ("min", e.min), ("low", e.low), ("high", e.high), ("promo", e.promo),
                               ("spanned", e.spanned), ("present", e.present), ("managed", e.managed), ("cma", 0)] {
                o += "\n        " + label.rightPadded(8) + " \(v)"
            }
            o += "\n        protection: (" + e.protection.map(String.init).joined(separator: ", ") + ")"
            if e.isPopulated {
                o += "\n      " + "nr_free_pages".rightPadded(12) + " \(e.freePages)"
                o += "\n      " + "nr_unaccepted".rightPadded(12) + " \(e.unacceptedPages)"
            }
            o += "\n"
        }
        return o
    }
}

/// One node's span as its `pglist_data` holds it.
public struct NodeSpan: Sendable, Equatable {
    /// `node_start_pfn` and the end of the node's memblock memory
    /// (`get_pfn_range_for_nid()`).
    public var pfns: Range<UInt64>
    /// `node_present_pages`: its zones' present pages (`calculate_node_totalpages()`).
    public var presentPages: UInt64
    /// Its zones' `spanned_pages`, DMA, DMA32, Normal, Movable, Device.
    public var zoneSpannedPages: [UInt64]
}

extension GuestKernel {
    /// Every node's span, in node order (what `free_area_init_node()` sets
    /// in each `pglist_data`).
    /// - Complexity: O(zones × RAM ranges).
    public var nodeSpans: [NodeSpan] {
        let perNode = ZoneKind.allCases.count
        var lo = Array(repeating: UInt64.max, count: numa.nodeCount), hi = Array(repeating: UInt64(0), count: numa.nodeCount)
        for part in memblockMemory.flatMap(zoneParts) {
            let n = part.zone / perNode
            lo[n] = min(lo[n], part.range.start / 4096); hi[n] = max(hi[n], part.range.end / 4096)
        }
        let zi = zoneinfo
        return (0..<numa.nodeCount).map { n in
            let zones = zi.filter { $0.node == n }
            return NodeSpan(pfns: lo[n] == .max ? 0..<0 : lo[n]..<hi[n], presentPages: zones.reduce(0) { $0 + $1.present },
                            zoneSpannedPages: zones.map(\.spanned))
        }
    }
}
