import CostModel
import KVM
import MemoryModel
public import Simulation

extension SNPHostRun {
    /// The host state and counters, one `name: value` per line.
    var statsLines: [(String, UInt64)] { vm.statsLines }

    /// The object `cocomem host --json` prints for an SNP scenario.
    public func json(checked: Bool) -> JSON {
        var fields: [(String, JSON)] = [
            ("platform", .string("snp")), ("stats", .object(statsLines.map { ($0.0, .uint($0.1)) })),
            ("guest_ops", .object(clock.counts.nonZero.map { ($0.0.name, .uint($0.1)) })),
            ("virtual_time_s", .double(clock.seconds(costs))), ("log", .array(vm.log.map { .string($0) })),
            ("log_lines_dropped", .uint(vm.droppedLogLines)), ("warnings", .array(vm.warnings.map { .string($0) })), ("outcome", .string(outcomeString)),
        ]
        if vm.launchFinished { fields.append(("launch_finished", .object([("vmsa_pages", .uint(vm.vmsaPages)), ("pre_fault_allowed", .bool(true))]))) }
        if checked { fields.append(("invariant_violations", .array(violations.map { .string($0) }))) }
        if let t = hostTraceJSON { fields.append(("host_trace", t)) }
        return .object(fields)
    }

    /// The report `cocomem host` prints for an SNP scenario (with a host
    /// trace, its `Host trace:` and `Host inference:` lines last).
    public func text(checked: Bool) -> String {
        var o = ""
        if !vm.log.isEmpty {
            o += "Operation log:\n" + vm.log.map { "  " + $0 }.joined(separator: "\n") + "\n"
            if vm.droppedLogLines > 0 { o += "  ... and \(vm.droppedLogLines) more lines, not kept\n" }
            o += "\n"
        }
        o += "SNP host stats:\n" + statsLines.map { "  \($0.0): \($0.1)" }.joined(separator: "\n") + "\n"
        if vm.launchFinished {
            // What KVM_SEV_SNP_LAUNCH_FINISH changed (`finalize`, `snp_launch_finish()`).
            o += "Launch finished (KVM_SEV_SNP_LAUNCH_FINISH): \(vm.vmsaPages) VMSA pages guest-owned (immutable 4K RMP entries at INITIAL_VMSA_GPA), "
                + "KVM_PRE_FAULT_MEMORY allowed, SNP_LAUNCH_UPDATE refused from now on\n"
        }
        if !vm.warnings.isEmpty { o += "KVM warnings:\n" + vm.warnings.map { "  " + $0 }.joined(separator: "\n") + "\n" }
        o += "\nGuest virtual time: \(format3(clock.seconds(costs))) s\nOutcome: \(outcomeString)\n"
        if checked {
            o += violations.isEmpty ? "Invariants: every one held after every command\n"
                : "Invariant violations:\n" + violations.map { "  " + $0 }.joined(separator: "\n") + "\n"
        }
        return o + hostTraceText
    }
}

extension SNPVM {
    /// The host state and counters, one `name: value` per line: NPT leaves,
    /// validated pages, RMP runs, guest_memfd pages, the VMSA pages when
    /// launch has finished, then every counter that is not zero.
    /// - Complexity: O(runs).
    package var statsLines: [(String, UInt64)] {
        [("npt.private_2m", privatePages2M), ("npt.private_4k", privatePages4K),
         ("rmp.validated_pages", validatedPages), ("rmp.runs", UInt64(rmpRuns)),
         ("gmem.allocated_pages", committedPages)]
            + (vmsaPages > 0 ? [("vmsa.pages", vmsaPages)] : [])
            + (vmmSharedPages > 0 ? [("vmm.shared_pages", vmmSharedPages), ("host.double_backed_pages", doubleBackedPages)] : [])
            + (inPlace ? [("gmem.in_place.shared_pages", inPlaceSharedPages)] : [])
            + stats.nonZero.map { ($0.0.name, $0.1) }
    }

    /// The block `cocomem boot --host snp` prints: RMP entries by size,
    /// host memory, then `statsLines`.
    package var bootStatsText: String {
        let (p2, p4) = assignedPagesBySize
        var o = "  RMP: \(p2 / PageLevel.size2M.pages) 2M entries, \(p4) 4K entries assigned to the guest (\(vmsaPages) of them VMSAs)\n"
        o += "  Host memory: guest_memfd \(ByteCount.frames(committedPages)), VMSA pages \(ByteCount.frames(vmsaPages)), total \(ByteCount.frames(hostCommittedPages))\n"
        o += statsLines.map { "  \($0.0): \($0.1)" }.joined(separator: "\n") + "\n"
        for w in warnings.prefix(20) { o += "  WARN: \(w)\n" }
        return o
    }

    /// `bootStatsText` as JSON.
    package var bootStatsJSON: JSON {
        let (p2, p4) = assignedPagesBySize
        return .object([("rmp_entries_2m", .uint(p2 / PageLevel.size2M.pages)), ("rmp_entries_4k", .uint(p4)),
                        ("vmsa_pages", .uint(vmsaPages)), ("host_committed_bytes", .uint(ByteCount.frames(hostCommittedPages).value))]
                       + statsLines.map { ($0.0, .uint($0.1)) } + [("warnings", .array(warnings.map { .string($0) }))])
    }
}
