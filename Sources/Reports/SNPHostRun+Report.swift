import CostModel
import KVM
import MemoryModel
public import Simulation

extension SNPHostRun {
    /// The host state and counters, one `name: value` per line.
    var statsLines: [(String, UInt64)] {
        [("npt.private_2m", vm.privatePages2M), ("npt.private_4k", vm.privatePages4K),
         ("rmp.validated_pages", vm.validatedPages), ("rmp.runs", UInt64(vm.rmpRuns)),
         ("gmem.allocated_pages", vm.committedPages)]
            + vm.stats.nonZero.map { ($0.0.name, $0.1) }
    }

    /// The object `cocomem host --json` prints for an SNP scenario.
    public func json(checked: Bool) -> JSON {
        var fields: [(String, JSON)] = [
            ("platform", .string("snp")), ("stats", .object(statsLines.map { ($0.0, .uint($0.1)) })),
            ("guest_ops", .object(clock.counts.nonZero.map { ($0.0.name, .uint($0.1)) })),
            ("virtual_time_s", .double(clock.seconds(costs))), ("log", .array(vm.log.map { .string($0) })),
            ("log_lines_dropped", .uint(vm.droppedLogLines)), ("warnings", .array(vm.warnings.map { .string($0) })), ("outcome", .string(outcomeString)),
        ]
        if checked { fields.append(("invariant_violations", .array(violations.map { .string($0) }))) }
        return .object(fields)
    }

    /// The report `cocomem host` prints for an SNP scenario.
    public func text(checked: Bool) -> String {
        var o = ""
        if !vm.log.isEmpty {
            o += "Operation log:\n" + vm.log.map { "  " + $0 }.joined(separator: "\n") + "\n"
            if vm.droppedLogLines > 0 { o += "  ... and \(vm.droppedLogLines) more lines, not kept\n" }
            o += "\n"
        }
        o += "SNP host stats:\n" + statsLines.map { "  \($0.0): \($0.1)" }.joined(separator: "\n") + "\n"
        if !vm.warnings.isEmpty { o += "KVM warnings:\n" + vm.warnings.map { "  " + $0 }.joined(separator: "\n") + "\n" }
        o += "\nGuest virtual time: \(format3(clock.seconds(costs))) s\nOutcome: \(outcomeString)\n"
        if checked {
            o += violations.isEmpty ? "Invariants: every one held after every command\n"
                : "Invariant violations:\n" + violations.map { "  " + $0 }.joined(separator: "\n") + "\n"
        }
        return o
    }
}
