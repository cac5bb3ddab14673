import CostModel
import KVM
import MemoryModel
public import Simulation

extension HostRun {
    /// The object `cocomem host --json` prints; with `violations` (a
    /// checked run), also `invariant_violations`.
    public func json(violations: [String]? = nil) -> JSON {
        var fields: [(String, JSON)] = [
            ("stats", vm.statsJSON), ("guest_ops", .object(clock.counts.nonZero.map { ($0.0.name, .uint($0.1)) })),
            ("virtual_time_s", .double(clock.seconds(costs))), ("log", .array(vm.log.map { .string($0) })),
            ("outcome", .string(vm.outcomeString)),
        ]
        if let violations { fields.append(("invariant_violations", .array(violations.map { .string($0) }))) }
        return .object(fields)
    }

    public var json: JSON { json() }

    /// The report `cocomem host` prints; with `violations` (a checked run),
    /// also what the invariant checks found.
    public func text(violations: [String]? = nil) -> String {
        var o = ""
        if !vm.log.isEmpty { o += "Operation log:\n" + vm.log.map { "  " + $0 }.joined(separator: "\n") + "\n\n" }
        o += "Host stats:\n" + vm.statsText
        o += "\nGuest virtual time: \(format3(clock.seconds(costs))) s\nOutcome: \(vm.outcomeString)\n"
        if let violations {
            o += violations.isEmpty ? "Invariants: every one held after every command\n"
                : "Invariant violations:\n" + violations.map { "  " + $0 }.joined(separator: "\n") + "\n"
        }
        return o
    }

    public var text: String { text() }
}
