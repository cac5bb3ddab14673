import KVM
import MemoryModel
public import Simulation

extension HostRun {
    /// Runs every command as `run()` does, checking every invariant of
    /// `HostInvariants` after each one (`cocomem host --check-invariants`).
    /// KVM's own checks also run after every host operation inside a
    /// command when the scenario's options ask for them.
    ///
    /// - Returns: each violation, prefixed with the scenario line after
    ///   which it was first seen; empty when every invariant held.
    /// - Complexity: O(commands × runs of every KVM and S-EPT map).
    public func runChecked() throws -> [String] {
        let top = vm.slots.map(\.frames.upperBound).max() ?? GuestFrameNumber(0)
        var invariants = HostInvariants(watching: .lowest..<(top + (PageLevel.size2M.pages - 1)).region2M)
        var seen = Set<String>()
        var violations: [String] = []
        for (i, c) in scenario.commands.enumerated() {
            if vm.isDead { break }
            let line = i < scenario.lines.count ? scenario.lines[i] : 0
            try execute(c, line: line, vcpu: scenario.vcpu(ofCommand: i))
            for v in invariants.registered(after: vm) where seen.insert(v.detail).inserted {
                violations.append("after line \(line): \(v.detail)")
            }
        }
        settleTrace()
        return violations
    }
}
