import CoCoGuest
import CostModel
import Firmware
import GuestKernel
import KVM
import MemoryModel
public import Simulation
import TDXModule

extension ZoneinfoEntry {
    /// A zone in JSON: pages, by the kernel's names with `_pages`.
    var json: JSON {
        .object([("free_pages", .uint(freePages)), ("min_pages", .uint(min)), ("low_pages", .uint(low)),
                 ("high_pages", .uint(high)), ("promo_pages", .uint(promo)), ("spanned_pages", .uint(spanned)),
                 ("present_pages", .uint(present)), ("managed_pages", .uint(managed)),
                 ("protection_pages", .array(protection.map { .uint($0) })), ("unaccepted_pages", .uint(unacceptedPages))])
    }
}

extension BootResult {
    /// Platform operation counts nested by name (`tdx.accept.4k.success` →
    /// `{"tdx": {"accept": {"4k": {"success": n}}}}`), for the scenario's platform.
    public var platformOpsJSON: JSON {
        var total = counts
        total.add(buildCounts)
        let prefix = scenario.platform.rawValue + "."
        var root: [(String, JSON)] = []
        func insert(_ path: [String], _ v: UInt64, into obj: inout [(String, JSON)]) {
            let key = path[0]
            if path.count == 1 { obj.append((key, .uint(v))); return }
            var child: [(String, JSON)] = []
            if let i = obj.firstIndex(where: { $0.0 == key }), case .object(let c) = obj[i].1 { child = c; obj.remove(at: i) }
            insert(Array(path.dropFirst()), v, into: &child)
            obj.append((key, .object(child)))
        }
        for op in Op.allCases where op.name.hasPrefix(prefix) && !(op.isReportedOnlyWhenCounted && total[op] == 0) {
            insert(op.name.dropFirst(prefix.count).split(separator: ".").map(String.init), total[op], into: &root)
        }
        return .object(root)
    }

    public var json: JSON {
        let map = firmware.map
        let efi: [JSON] = map.descriptors.map { d in
            .object([("type", .string(d.type.name)), ("type_id", .uint(UInt64(d.type.rawValue))),
                     ("start", .uint(d.physicalStart)), ("end", .uint(d.end)), ("bytes", .uint(d.bytes.value))])
        }
        var table: JSON = .null
        if let u = kernel?.unaccepted?.table ?? firmware.table {
            table = .object([("version", .uint(UInt64(u.version))), ("unit_size", .uint(u.unitSize)),
                             ("phys_base", .uint(u.physBase.value)), ("size", .uint(u.size)),
                             ("units_set", .uint(firmware.table?.unitsSet ?? 0)),
                             ("units_set_now", .uint(u.unitsSet)), ("address", .uint(u.address.value))])
        }
        let meminfo: JSON = .object((kernel?.meminfo ?? []).map { ($0.0, .uint($0.1)) })
        let vmstat: JSON = .object((kernel?.vmstat ?? [("nr_free_pages", 0), ("nr_unaccepted", 0)]).map { ($0.0, .uint($0.1)) })
        // One node: keyed by zone name; several: by /proc/zoneinfo's header, "Node 1, zone Normal".
        let single = kernel?.numa.isSingleNode ?? true
        let zoneinfo: JSON = .object((kernel?.zoneinfo ?? []).map { (single ? $0.name : "Node \($0.node), zone \($0.name)", $0.json) })
        let vm: JSON = kernel.map { k in
            .object([("min_free_kbytes", .uint(k.minFreeKbytesInEffect)),
                     ("watermark_scale_factor", .uint(k.config.watermarkScaleFactor ?? 10)),
                     ("transparent_hugepage", .string(k.config.transparentHugepage.rawValue)),
                     ("totalreserve_pages", .uint(k.totalReservePages)), ("swiotlb_bytes", .uint(k.swiotlbBytes))])
        } ?? .null
        let t = times
        let vt: JSON = .object([("firmware", .double(t.firmware)), ("efi_stub", .double(t.efiStub)),
                                ("kernel_boot", .double(t.kernelBoot)), ("deferred_init", .double(t.deferredInit)),
                                ("early_allocations", .double(t.earlyAllocations)), ("userspace", .double(t.userspace)),
                                ("workload", .double(t.workload)), ("total_boot_s", .double(t.totalBoot)),
                                ("fully_accepted_s", fullyAcceptedAfter.map { .double($0) } ?? .null)])
        // Many vCPUs at once (issue 17): SMP bring-up, the accepting list, allocation latency per workload phase.
        let concurrency: JSON = kernel.map { k -> JSON in
            let rows: [(String, JSON)] = [("aps_brought_up", .uint(UInt64(max(0, k.vcpus - 1)))), ("early_allocation_pages", .uint(k.earlyAllocationPages)),
                     ("idle_tick_exits", .uint(k.idleTickExits)), ("deferred_grown_sections", .uint(k.deferredGrownSections)),
                     ("accepting_list_waits", .uint(k.acceptingListWaits)),
                     ("accepting_list_wait_s", .double(Double(k.acceptingListWaitPicoseconds) / 1e12)),
                     ("allocation_latency_max_s", .double(Double(k.allocationStalls.workloadMaxPicoseconds) / 1e12)),
                     ("allocation_latency", .array(record.latencies.map { d in
                         .object([("phase", .string(d.phase)), ("allocations", .uint(d.allocations)),
                                  ("p50_s", .double(d.p50)), ("p99_s", .double(d.p99)), ("max_s", .double(d.max))])
                     }))]
            return .object(rows + Self.workloadActorsJSON(k.workloadActorStats))
        } ?? .null
        let firmwareRelease: [(String, JSON)] = scenario.edk2Release.map { [("firmware_release", .string($0.tag))] } ?? []
        return .object([
            ("scenario", scenarioJSON),
            ("kernel_release", .string(scenario.kernel.version.release.description)),
            ("kernel_behaviours", scenario.kernel.version.behavioursJSON),
        ] + firmwareRelease + [
            ("efi_memory_map", .array(efi)),
            ("unaccepted_table", table),
            ("accepted_bytes", .object([("firmware", .uint(acceptedFirmware)), ("efi_stub", .uint(acceptedStub)),
                                        ("kernel_boot", .uint(acceptedKernelBoot)), ("workload", .uint(acceptedWorkload))])),
            ("lost_bytes", .uint(firmware.lostBytes)),
            ("meminfo", meminfo),
            ("vmstat", vmstat),
            ("zoneinfo", zoneinfo),
        ] + numaJSON + [
            ("vm", vm),
            ("platform_ops", platformOpsJSON),
            ("host_committed_bytes", .uint(committedBytes)),
            ("host", host?.statsJSON ?? snpHost?.bootStatsJSON ?? .null),
        ] + sharedMemoryJSON + [
            ("virtual_time", vt),
            ("concurrency", concurrency),
            ("events", .array(events.map { .string($0) })),
            ("outcome", .string(outcomeString)),
            ("degradations", .array(degradations.map { .string($0) })),
        ])
    }

    /// `shared_memory`, only when the run converted any memory (so reports
    /// of runs without `swiotlb-shared` are as before).
    var sharedMemoryJSON: [(String, JSON)] {
        let m = sharedMemory
        guard m != SharedMemoryStats() else { return [] }
        var fields: [(String, JSON)] = [
            ("shared_bytes", .uint(sharedBytes)), ("calls", .uint(m.calls)), ("vmm_exits", .uint(m.vmmExits)),
            ("pages_to_shared", .uint(m.pagesToShared)), ("pages_to_private", .uint(m.pagesToPrivate)),
            ("host_zaps", .uint(m.hostZaps)), ("rescinds", .uint(m.rescinds)),
            ("host_vmm_shared_bytes", host.map { .uint($0.hostMemory.vmmSharedPages * 4096) } ?? .null),
        ]
        // TDVMCALL_STATUS_RETRY answers (--early-tick), only when there were any.
        if m.retries > 0 { fields.append(("retries", .uint(m.retries))) }
        return [("shared_memory", .object(fields))]
    }

    /// The text lines of `sharedMemoryJSON`.
    var sharedMemoryText: String {
        let m = sharedMemory
        guard m != SharedMemoryStats() else { return "" }
        let call = scenario.platform == .tdx ? "MapGPA TDVMCALLs" : "PSC VMGEXITs"
        let zap = scenario.platform == .tdx ? "S-EPT leaves removed" : "RMP entries returned"
        var o = "Shared memory: \(ByteCount(sharedBytes)) now shared; \(m.pagesToShared) pages made shared, \(m.pagesToPrivate) made private; "
        o += "\(m.calls) \(call), \(m.vmmExits) KVM_HC_MAP_GPA_RANGE exits, \(m.hostZaps) \(zap)"
        if m.rescinds > 0 { o += ", \(m.rescinds) PVALIDATE rescinds" }
        if m.retries > 0 { o += ", \(m.retries) TDVMCALL_STATUS_RETRY" }
        if let h = host { o += "; VMM shared backing \(ByteCount(h.hostMemory.vmmSharedPages * 4096))" }
        return o + "\n"
    }

    /// `numa` (several nodes only, so one-node reports are as before): each
    /// node's CPUs, `/sys/devices/system/node/nodeN/meminfo` lines (kB),
    /// distances, and where its pgdatinit thread ended.
    var numaJSON: [(String, JSON)] {
        guard let k = kernel, !k.numa.isSingleNode else { return [] }
        let nodes: [JSON] = (0..<k.numa.nodeCount).map { n in
            .object([("node", .uint(UInt64(n))), ("cpus", .array(k.numa.cpusOfNode[n].map { .uint(UInt64($0)) })),
                     ("srat", .array(k.numa.memory.filter { $0.node == n }.map { .object([("start", .uint($0.range.start)), ("end", .uint($0.range.end))]) })),
                     ("meminfo", .object(k.nodeMeminfoRows(node: n).map { ($0.0, .uint($0.1)) })),
                     ("distance", .array((0..<k.numa.nodeCount).map { .uint(UInt64(k.numa.distance(n, $0))) })),
                     ("zonelist_nodes", .array(k.numa.nodeOrder[n].map { .uint(UInt64($0)) })),
                     ("deferred_init_s", .double(Double(k.deferredInitNodePicoseconds[n]) / 1e12))])
        }
        return [("numa", .object([("sockets", .uint(UInt64(scenario.sockets))), ("nodes", .array(nodes))]))]
    }

    var scenarioJSON: JSON {
        let s = scenario
        return .object([("platform", .string(s.platform.rawValue)), ("memory", .uint(s.memory)), ("vcpus", .uint(UInt64(s.vcpus))),
                        ("accept", .string(s.lazy ? "lazy" : "eager")), ("host", .string(s.platform == .tdx ? s.tdxHost.rawValue : s.snpHost ? "snp-host-model" : "snp")), ("host_mapping", .string(s.hostMapping.rawValue)),
                        ("firmware", .string(s.firmware.rawValue)), ("kernel", .string(s.kernel.version.rawValue)),
                        ("seed", .uint(s.seed))]
                       + (s.numaNodeSizes.map { [("numa_node_bytes", .array($0.map { .uint($0) })), ("sockets", .uint(UInt64(s.sockets)))] } ?? []))
    }

    /// `cpulist` form: `0-3,8`.
    static func cpuList(_ cpus: [Int]) -> String {
        var parts: [String] = []
        var i = 0
        while i < cpus.count {
            var j = i
            while j + 1 < cpus.count, cpus[j + 1] == cpus[j] + 1 { j += 1 }
            parts.append(i == j ? "\(cpus[i])" : "\(cpus[i])-\(cpus[j])")
            i = j + 1
        }
        return parts.joined(separator: ",")
    }

    /// The readable report.
    public var text: String {
        var o = "cocomem boot: \(scenario.platform.rawValue) \(ByteCount(scenario.memory)) \(scenario.vcpus) vCPUs, "
        if let sizes = scenario.numaNodeSizes { o += "\(sizes.count) NUMA nodes (" + sizes.map { ByteCount($0).description }.joined(separator: ", ") + "), " }
        o += "accept_memory=\(scenario.lazy ? "lazy" : "eager"), host \(scenario.platform == .tdx ? scenario.tdxHost.rawValue : "snp-" + scenario.hostMapping.rawValue + (scenario.snpHost ? " (SNP host model)" : "")), "
        o += "firmware \(scenario.firmware.rawValue)\(scenario.edk2Release.map { " (\($0))" } ?? ""), kernel \(scenario.kernel.version.rawValue)\n\n"
        o += scenario.kernel.version.reportText + "\n"
        o += "EFI memory map (as the kernel prints it with efi=debug):\n" + firmware.mapAtLoader.kernelFormat() + "\n"
        if let t = firmware.table {
            o += "Unaccepted table: unit \(ByteCount(t.unitSize)), phys_base \(t.physBase), \(t.size) bytes, \(t.unitsSet) units set after the stub\n\n"
        }
        o += "Accepted by:\n"
        for (who, b) in [("firmware", acceptedFirmware), ("EFI stub", acceptedStub), ("kernel boot", acceptedKernelBoot), ("workload", acceptedWorkload)] {
            o += "  " + who.padded(12) + ByteCount(b).description + "\n"
        }
        if firmware.lostBytes > 0 { o += "  lost (type 15 not understood): \(ByteCount(firmware.lostBytes))\n" }
        o += "\n/proc/meminfo:\n" + (kernel?.procMeminfo ?? "")
        if let k = kernel, !k.numa.isSingleNode {
            o += "\n/sys/devices/system/node/node*/meminfo (the lines cocomem models):\n" + k.nodesMeminfo
            var nodes: [String] = []
            for n in 0..<k.numa.nodeCount {
                let cpus: String = k.numa.cpusOfNode[n].isEmpty ? "none" : Self.cpuList(k.numa.cpusOfNode[n])
                let fallback: String = k.numa.nodeOrder[n].map { String($0) }.joined(separator: ",")
                nodes.append("node \(n) cpus \(cpus), fallback \(fallback)")
            }
            o += "NUMA: " + nodes.joined(separator: "; ") + "\n"
        }
        o += "\n/proc/vmstat:\n" + (kernel?.procVmstat ?? "")
        if let k = kernel {
            o += "\nvm.min_free_kbytes \(k.minFreeKbytesInEffect), vm.watermark_scale_factor \(k.config.watermarkScaleFactor ?? 10), "
            o += "transparent_hugepage \(k.config.transparentHugepage.rawValue), totalreserve_pages \(k.totalReservePages)\n"
            o += "\n/proc/zoneinfo (the lines cocomem models; the rest of each zone left out):\n" + k.procZoneinfo
        }
        o += "\nPlatform operations:\n"
        var total = counts; total.add(buildCounts)
        for (op, n) in total.nonZero where op.name.hasPrefix(scenario.platform.rawValue) { o += "  " + op.name.padded(34) + "\(n)\n" }
        o += "Host memory committed: \(ByteCount(alignUp(committedBytes, 1 << 20)))\n"
        o += sharedMemoryText
        if let h = host { o += "\nHost (\(scenario.tdxHost.rawValue)):\n" + h.statsText }
        if let h = snpHost { o += "\nHost (snp: KVM SEV-SNP, guest_memfd \(scenario.hostMapping == .map2M ? "hugetlb 2M" : "4K") folios):\n" + h.bootStatsText }
        let t = times
        o += "\nVirtual time (s):\n"
        for (n, v) in [("firmware", t.firmware), ("efi stub", t.efiStub), ("kernel boot", t.kernelBoot), ("deferred init", t.deferredInit),
                       ("early allocations", t.earlyAllocations), ("user space", t.userspace), ("total boot", t.totalBoot), ("workload", t.workload)] {
            o += "  " + n.padded(20) + String(format3(v)) + "\n"
        }
        if let f = fullyAcceptedAfter { o += "  all memory accepted at \(format3(f)) s\n" }
        if let n = calibrationNote { o += n.text }
        if !events.isEmpty { o += "\nEvents:\n" + events.map { "  " + $0 }.joined(separator: "\n") + "\n" }
        o += "\nOutcome: \(outcomeString)\n"
        return o
    }
}

extension BootResult {
    /// `workload_actors` in the concurrency object, only when a workload
    /// phase ran as actors (`--workload-actors`), so reports without it
    /// are unchanged: the zone and `unaccepted_memory_lock` takes and waits,
    /// `cond_accept_memory()` calls, blocks, and the scheduler's events.
    static func workloadActorsJSON(_ s: WorkloadActorStats) -> [(String, JSON)] {
        guard s.phases > 0 else { return [] }
        func lock(_ c: ContentionStats) -> JSON {
            .object([("acquisitions", .uint(c.acquisitions)), ("contended", .uint(c.contended)),
                     ("wait_s", .double(Double(c.waitPicoseconds) / 1e12))])
        }
        return [("workload_actors", .object([
            ("phases", .uint(s.phases)), ("cond_accept_memory_calls", .uint(s.acceptCalls)),
            ("blocks_accepted", .uint(s.blocksAccepted)), ("blocks_replayed", .uint(s.replayedBlocks)),
            ("events", .uint(s.events)), ("zone_lock", lock(s.zoneLock)), ("unaccepted_memory_lock", lock(s.unacceptedLock)),
            ("accepting_list_waits", .uint(s.listWaits)), ("accepting_list_wait_s", .double(Double(s.listWaitPicoseconds) / 1e12))]))]
    }
}
