import CostModel
import KVM
import MemoryModel
public import Simulation

extension HostRun {
    public var json: JSON {
        .object([("stats", vm.statsJSON), ("guest_ops", .object(clock.counts.nonZero.map { ($0.0.name, .uint($0.1)) })),
                 ("virtual_time_s", .double(clock.seconds(costs))), ("log", .array(vm.log.map { .string($0) })),
                 ("outcome", .string(vm.outcomeString))])
    }

    public var text: String {
        var o = ""
        if !vm.log.isEmpty { o += "Operation log:\n" + vm.log.map { "  " + $0 }.joined(separator: "\n") + "\n\n" }
        o += "Host stats:\n" + vm.statsText
        o += "\nGuest virtual time: \(format3(clock.seconds(costs))) s\nOutcome: \(vm.outcomeString)\n"
        return o
    }
}
