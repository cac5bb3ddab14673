public import KVM
import MemoryModel
import Simulation
import TDXModule

extension TDXVM {
    /// Stats keyed as debugfs names them, plus `seamcalls` (by leaf name and
    /// result), the KVM counters, host memory and the outcome.
    public var statsJSON: JSON {
        var calls: [(String, JSON)] = []
        for leaf in SEAMCALLLeaf.allCases {
            let byStatus = SEAMCALLCounts.statuses.compactMap { st -> (String, JSON)? in
                let n = module.calls[leaf: leaf, status: st]
                return n == 0 ? nil : (st.description, .uint(n))
            }
            if !byStatus.isEmpty { calls.append((leaf.description, .object(byStatus))) }
        }
        let kvm: [(String, JSON)] = KVMCounter.allCases.map { ($0.name, .uint(counters[$0])) }
        var fields: [(String, JSON)] = [
            ("pages_4k", .uint(pages4K)),
            ("pages_2m", .uint(pages2M)),
            ("seamcalls", .object(calls)),
            ("kvm", .object(kvm)),
            ("sept_pages", .uint(septPages)),
            ("pamt_pages", .uint(pamtPagesAllocated)),
            ("pamt", pamtJSON),
            ("host_allocator", hostAllocatorJSON),
            ("split_cache_pages", .uint(splitCache)),
            ("host_committed_bytes", .uint(ByteCount.frames(committedPages).value)),
            ("huge_pages_enabled", .bool(hugePagesEnabled)),
            ("broken", .array(brokenOutcomes.map { .string($0) })),
            ("outcome", .string(outcomeString)),
        ]
        if options.conversionPolicy == .inPlace { fields.insert(("in_place", inPlaceJSON), at: 9) }
        // Only when a promote or a teardown freed S-EPT pages: other reports unchanged.
        if septFree.any { fields.insert(("sept_free", septFreeJSON), at: fields.count - 2) }
        // Only when the module refused or interrupted an ACCEPT, so that the
        // other reports are unchanged.
        if module.hostPriorityRefusals > 0 || module.acceptInterruptions > 0 {
            var m: [(String, JSON)] = [("accept_host_priority_busy", .uint(module.hostPriorityRefusals)),
                                       ("accept_2m_interrupted", .uint(module.acceptInterruptions))]
            // HP_LOCK_TIMEOUT TD exits, only when there was one.
            if module.hostPriorityTimeouts > 0 { m.append(("host_priority_busy_timeout_exits", .uint(module.hostPriorityTimeouts))) }
            fields.insert(("tdx_module", .object(m)), at: 4)
        }
        // Only under a module with 1G private mappings, so that the other
        // reports are unchanged.
        if module.features.privateMappings1G {
            fields.insert(("private_1g", .object([("pages_1g", .uint(pages1G)), ("splits_1g", .uint(private1G.splits)),
                                                  ("zaps_1g", .uint(private1G.zaps))])), at: 2)
        }
        return .object(fields)
    }

    /// Host memory spent on PAMT (issue 18 §1, DPAMT v4/v6): static levels,
    /// the 4K level or its bitmap, dynamic pages, for the TD and the host.
    var pamtJSON: JSON {
        let p = pamtFootprint
        return .object([
            ("dynamic_pamt", .bool(p.dynamicPAMT)),
            ("series", .string(p.series.rawValue)),
            ("disabled_because", p.disabledBecause.map { .string($0) } ?? .null),
            ("td", .object([("memory_bytes", .uint(ByteCount.frames(p.tdPages).value)),
                            ("static_1g_2m_bytes", .uint(p.tdStatic.upper)),
                            (p.dynamicPAMT ? "static_4k_bitmap_bytes" : "static_4k_bytes", .uint(p.tdStatic.level4K)),
                            ("dynamic_bytes", .uint(p.dynamicBytes)), ("total_bytes", .uint(p.tdTotalBytes))])),
            ("fault_cache_bytes_bound", .uint(p.faultCacheBytes)),
            ("host", .object([("memory_bytes", .uint(ByteCount.frames(p.hostPages).value)),
                              ("static_1g_2m_bytes", .uint(p.hostStatic.upper)),
                              (p.dynamicPAMT ? "static_4k_bitmap_bytes" : "static_4k_bytes", .uint(p.hostStatic.level4K)),
                              ("dynamic_bytes", .uint(p.dynamicBytes)), ("total_bytes", .uint(p.hostTotalBytes))])),
        ])
    }

    /// The host allocator's placement of S-EPT and control pages, against
    /// the two bounds (issue 18 §1).
    var hostAllocatorJSON: JSON {
        let a = hostAllocatorFootprint
        var f: [(String, JSON)] = [("placement", .string(a.placement.rawValue))]
        if a.placement == .buddy { f.append(("isolated_free_pages", .uint(a.isolatedFreePages))) }
        f += [("control_pages", .uint(a.controlPages)), ("sept_pages", .uint(a.septPages)),
              ("ranges_2m", .uint(a.ranges)), ("pamt_pages", .uint(a.ranges * a.pamtPagesPerRange)),
              ("ranges_2m_if_contiguous", .uint(a.rangesIfContiguous)), ("ranges_2m_if_scattered", .uint(a.rangesIfScattered)),
              ("pamt_pages_if_contiguous", .uint(a.rangesIfContiguous * a.pamtPagesPerRange)),
              ("pamt_pages_if_scattered", .uint(a.rangesIfScattered * a.pamtPagesPerRange))]
        return .object(f)
    }

    /// The host allocator in one phrase, for the HTML summary: the same
    /// figures as `hostAllocatorText`'s first half.
    var hostAllocatorSummary: String {
        let a = hostAllocatorFootprint
        var o = "\(a.placement.rawValue): \(a.controlPages) control + \(a.septPages) S-EPT pages in \(a.ranges) 2M ranges"
        // "of those ranges": the summary's "PAMT pages" counts every PAMT page
        // of the TD (the guest's 2M ranges too), this only the control pages'.
        if a.pamtPagesPerRange > 0 { o += ", PAMT of those ranges \(ByteCount.frames(a.ranges * a.pamtPagesPerRange))" }
        return o
    }

    /// The host allocator line of the readable stats.
    var hostAllocatorText: String {
        let a = hostAllocatorFootprint
        let place = a.placement == .buddy ? "buddy, \(a.isolatedFreePages) isolated free pages" : a.placement.rawValue
        var o = "  Host allocator (\(place)): \(a.controlPages) control + \(a.septPages) S-EPT pages in \(a.ranges) 2M ranges"
        if a.pamtPagesPerRange > 0 {
            o += ", PAMT \(ByteCount.frames(a.ranges * a.pamtPagesPerRange)); contiguous \(a.rangesIfContiguous) ranges "
            o += "(PAMT \(ByteCount.frames(a.rangesIfContiguous * a.pamtPagesPerRange))), scattered \(a.rangesIfScattered) "
            o += "(PAMT \(ByteCount.frames(a.rangesIfScattered * a.pamtPagesPerRange)))"
        }
        return o + "\n"
    }

    /// The PAMT lines of the readable stats.
    var pamtText: String {
        let p = pamtFootprint
        let mode = p.dynamicPAMT ? "Dynamic PAMT \(p.series.rawValue)" : "static PAMT" + (p.disabledBecause.map { " (\($0))" } ?? "")
        let level4K = p.dynamicPAMT ? "4K bitmap" : "PAMT_4K"
        var o = "  PAMT, \(mode): TD (\(ByteCount.frames(p.tdPages))) static 1G+2M \(ByteCount(p.tdStatic.upper)) + \(level4K) \(ByteCount(p.tdStatic.level4K)), "
        o += "dynamic \(ByteCount(p.dynamicBytes)), total \(ByteCount(p.tdTotalBytes))"
        if p.dynamicPAMT { o += "; fault cache up to \(ByteCount(p.faultCacheBytes))" }
        o += "\n  PAMT, host (\(ByteCount.frames(p.hostPages)) in TDMRs): static 1G+2M \(ByteCount(p.hostStatic.upper)) + \(level4K) \(ByteCount(p.hostStatic.level4K)), "
        o += "dynamic \(ByteCount(p.dynamicBytes)), total \(ByteCount(p.hostTotalBytes))\n"
        return o
    }

    /// In-place conversion's host side: pins, SIGBUS, refused conversions,
    /// and the host memory that one backing per page saves.
    var inPlaceJSON: JSON {
        .object([
            ("pages_pinned", .uint(inPlace.pagesPinned)),
            ("pins_refused", .uint(inPlace.pinsRefused)),
            ("sigbus_to_vmm", .uint(inPlace.sigbus)),
            ("conversions_refused_host_references", .uint(inPlace.refusedForReferences)),
            ("shared_pages_backed_once", .uint(doubleBackingAvoidedPages)),
            ("host_committed_bytes_if_double_backed", .uint(ByteCount.frames(committedPages + doubleBackingAvoidedPages).value)),
        ])
    }

    public var outcomeString: String {
        switch outcome {
        case .ok: "ok"
        case .ioctlError(let m): "ioctl_error: \(m)"
        case .vmBugged(let m): "vm_bugged: \(m)"
        case .vmDead(let m): "vm_dead: \(m)"
        }
    }

    /// The readable stats block.
    public var statsText: String {
        var o = "  pages_4k \(pages4K), pages_2m \(pages2M), S-EPT pages \(septPages), PAMT pages \(pamtPagesAllocated)\n"
        o += pamtText
        o += hostAllocatorText
        if module.features.privateMappings1G {
            o += "  1G private mappings: pages_1g \(pages1G), 1G leaves split to 2M \(private1G.splits), 1G leaves zapped \(private1G.zaps)\n"
        }
        o += "  SEAMCALLs:\n"
        for (leaf, st, n) in module.calls.nonZero { o += "    " + "\(leaf) \(st)".rightPadded(56) + "\(n)\n" }
        if module.hostPriorityRefusals > 0 || module.acceptInterruptions > 0 {
            o += "  TDX module: ACCEPTs refused for host priority (guest saw TDX_OPERAND_BUSY) \(module.hostPriorityRefusals), "
            o += "2M ACCEPTs interrupted (TD exit, re-entry, resumed at ACCEPT_COUNTER) \(module.acceptInterruptions)"
            if module.hostPriorityTimeouts > 0 { o += ", TD exits TDX_HOST_PRIORITY_BUSY_TIMEOUT \(module.hostPriorityTimeouts)" }
            o += "\n"
        }
        o += "  KVM:\n"
        for c in KVMCounter.allCases where counters[c] > 0 { o += "    " + c.name.rightPadded(56) + "\(counters[c])\n" }
        if options.conversionPolicy == .inPlace {
            o += "  In-place conversion (guest_memfd keeps the attributes):\n"
            o += "    pages pinned \(inPlace.pagesPinned), pins refused (private) \(inPlace.pinsRefused), SIGBUS to the VMM \(inPlace.sigbus)\n"
            o += "    conversions to private refused (host references) \(inPlace.refusedForReferences)\n"
            o += "    shared pages backed once \(doubleBackingAvoidedPages): host committed \(ByteCount.frames(committedPages)) against \(ByteCount.frames(committedPages + doubleBackingAvoidedPages)) if shared copies were backed twice\n"
        }
        o += septFreeText
        for b in brokenOutcomes { o += "  BROKEN: \(b)\n" }
        return o
    }

    /// S-EPT pages freed by PROMOTE to 1G and at teardown, only when there
    /// were any (other reports unchanged).
    var septFreeText: String {
        let f = septFree
        guard f.any else { return "" }
        var o = ""
        if f.promoted1G + f.promoteRefused > 0 {
            o += "  PROMOTE to 1G (host command): \(f.promoted1G) merged, \(f.septPagesFreedRunning) PD pages freed; \(f.promoteRefused) refused and unblocked\n"
        }
        if f.destroyed {
            o += "  Teardown: \(f.septPagesReclaimed) S-EPT + \(f.controlPagesReclaimed) control pages reclaimed and freed, "
            o += "\(f.allocatorPAMTRemoves) PAMT.REMOVE of their 2M ranges, \(f.guestPagesFreed) guest pages freed; "
            o += "host committed \(ByteCount.frames(f.committedPagesBefore)) before, \(ByteCount.frames(committedPages)) after\n"
        }
        return o
    }

    /// `septFreeText` as JSON.
    var septFreeJSON: JSON {
        let f = septFree
        return .object([("promoted_1g", .uint(f.promoted1G)), ("promote_refused", .uint(f.promoteRefused)),
                        ("sept_pages_freed_running", .uint(f.septPagesFreedRunning)), ("destroyed", .bool(f.destroyed)),
                        ("sept_pages_reclaimed", .uint(f.septPagesReclaimed)), ("control_pages_reclaimed", .uint(f.controlPagesReclaimed)),
                        ("allocator_pamt_removes", .uint(f.allocatorPAMTRemoves)), ("guest_pages_freed", .uint(f.guestPagesFreed)),
                        ("host_committed_bytes_before", .uint(ByteCount.frames(f.committedPagesBefore).value))])
    }
}
