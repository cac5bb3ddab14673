public import KVM
import CostModel
import MemoryModel

extension HostFaultContentionResult {
    /// Microseconds with two decimals, from picoseconds.
    static func us(_ ps: UInt64) -> String {
        let c = (ps + 5_000) / 10_000
        return "\(c / 100).\(c % 100 < 10 ? "0" : "")\(c % 100)"
    }

    /// The text report of `cocomem host-faults`.
    /// - Complexity: O(1).
    public func text(config c: HostFaultContentionConfig) -> String {
        var s = "4K accept faults on vCPU 0 of \(c.vcpus) vCPUs; idle vCPUs tick at HZ=\(c.hz)"
        s += c.conversionsPerSecond > 0 ? "; \(c.conversionsPerSecond) private-to-shared 4K conversions a second\n" : "; no conversions\n"
        func row(_ k: String, _ v: String) { s += "  " + k + String(repeating: " ", count: max(1, 46 - k.count)) + v + "\n" }
        row("faults", "\(faults)")
        row("per fault (us)", Self.us(perFaultPicoseconds))
        row("per fault with nothing in its way (us)", Self.us(uncontendedFaultPicoseconds))
        row("mmu_lock read: taken / waited / wait (us)", "\(mmuRead.acquisitions) / \(mmuRead.contended) / \(Self.us(mmuRead.waitPicoseconds))")
        row("mmu_lock write: taken / waited / wait (us)", "\(mmuWrite.acquisitions) / \(mmuWrite.contended) / \(Self.us(mmuWrite.waitPicoseconds))")
        row("TDH.MEM.PAGE.AUG BUSY (S-EPT lock)", "\(augBusy)")
        row("TDH.VP.ENTER BUSY (epoch lock): fault / idle", "\(faulterEnterBusy) / \(idleEnterBusy)")
        row("TDH.MEM.TRACK BUSY / tdh_do_no_vcpus()", "\(trackBusy) / \(doNoVCPUsRetries)")
        row("entries held back (wait_for_sept_zap)", "\(entriesHeldBack)")
        row("kicks (to vCPU 0)", "\(kicks) (\(faulterKicked))")
        row("idle ticks", "\(idleTicks)")
        row("conversions", "\(conversions)")
        return s
    }

    /// The JSON object of `cocomem host-faults --json`.
    /// - Complexity: O(1).
    public func json(config c: HostFaultContentionConfig) -> JSON {
        func lock(_ l: ContentionStats) -> JSON {
            .object([("acquisitions", .uint(l.acquisitions)), ("contended", .uint(l.contended)), ("wait_ps", .uint(l.waitPicoseconds))])
        }
        return .object([
            ("config", .object([("vcpus", .uint(UInt64(c.vcpus))), ("hz", .uint(c.hz)), ("faults", .uint(c.faults)),
                                ("conversions_per_second", .uint(c.conversionsPerSecond)),
                                ("epoch_section_ns", .uint(c.epochSectionNanoseconds)), ("seed", .uint(c.seed))])),
            ("faults", .uint(faults)), ("fault_ps", .uint(faultPicoseconds)), ("per_fault_ps", .uint(perFaultPicoseconds)),
            ("uncontended_fault_ps", .uint(uncontendedFaultPicoseconds)),
            ("mmu_lock_read", lock(mmuRead)), ("mmu_lock_write", lock(mmuWrite)),
            ("aug_busy", .uint(augBusy)), ("fault_enter_busy", .uint(faulterEnterBusy)), ("idle_enter_busy", .uint(idleEnterBusy)),
            ("track_busy", .uint(trackBusy)), ("do_no_vcpus_retries", .uint(doNoVCPUsRetries)),
            ("entries_held_back", .uint(entriesHeldBack)), ("kicks", .uint(kicks)), ("fault_vcpu_kicked", .uint(faulterKicked)),
            ("idle_ticks", .uint(idleTicks)), ("conversions", .uint(conversions)),
        ])
    }
}
