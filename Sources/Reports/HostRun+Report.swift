import CostModel
import KVM
import MemoryModel
public import Simulation

extension HostRun {
    /// The run's outcome as boot and scenario runs report theirs: the VM's
    /// (`ioctl_error`, `vm_bugged`, `vm_dead`) when the host broke it, else
    /// `guest_terminated: line N: why` when the guest failed, else `ok`.
    public var outcomeString: String {
        if vm.outcome != .ok { return vm.outcomeString }
        return guestFailure.map { "guest_terminated: \($0)" } ?? "ok"
    }

    /// The object `cocomem host --json` prints; with `violations` (a
    /// checked run), also `invariant_violations`.
    public func json(violations: [String]? = nil) -> JSON {
        var fields: [(String, JSON)] = [
            ("stats", vm.statsJSON), ("host_memory", hostMemoryJSON), ("guest_ops", .object(clock.counts.nonZero.map { ($0.0.name, .uint($0.1)) })),
            ("virtual_time_s", .double(clock.seconds(costs))), ("log", .array(vm.log.map { .string($0) })),
            ("outcome", .string(outcomeString)),
        ]
        if let violations { fields.append(("invariant_violations", .array(violations.map { .string($0) }))) }
        if let t = hostTraceJSON { fields.append(("host_trace", t)) }
        if !hostReads.isEmpty {
            fields.append(("host_reads", .array(hostReads.map { h in
                .object([("line", .uint(UInt64(h.line))), ("gpa", .string("\(h.frames.lowerBound.address)")), ("pages", .uint(UInt64(h.frames.count))),
                         ("guest_data_pages", .uint(h.read.guestData)), ("not_guest_data_pages", .uint(h.read.notGuestData)),
                         ("host_written_pages", .uint(h.read.hostWritten)), ("sigbus_pages", .uint(h.read.sigbus))])
            })))
        }
        return .object(fields)
    }

    public var json: JSON { json() }

    /// The report `cocomem host` prints; with `violations` (a checked run),
    /// also what the invariant checks found; with a host trace, its
    /// `Host trace:` and `Host inference:` lines last.
    public func text(violations: [String]? = nil) -> String {
        var o = ""
        if !vm.log.isEmpty { o += "Operation log:\n" + vm.log.map { "  " + $0 }.joined(separator: "\n") + "\n\n" }
        o += "Host stats:\n" + vm.statsText
        o += hostMemoryText
        for h in hostReads {
            o += "Host read (line \(h.line)) \(h.frames.lowerBound.address)+\(h.frames.count) pages: \(h.read.guestData) the guest's data (shared), "
                + "\(h.read.notGuestData) private read as the VMM's own memory (\(h.read.hostWritten) written by the host, the rest zeros), "
                + "\(h.read.sigbus) SIGBUS (private, in place)\n"
        }
        o += "\nGuest virtual time: \(format3(clock.seconds(costs))) s\nOutcome: \(outcomeString)\n"
        if let violations {
            o += violations.isEmpty ? "Invariants: every one held after every command\n"
                : "Invariant violations:\n" + violations.map { "  " + $0 }.joined(separator: "\n") + "\n"
        }
        return o + hostTraceText
    }

    public var text: String { text() }

    /// The TD's host memory at the end (issue 18 §5): private and shared
    /// committed, the VMM's own shared pages, double backing, pinned
    /// against reclaimable; the series over the run is in `record`.
    var hostMemoryJSON: JSON {
        let m = vm.hostMemory
        func b(_ p: UInt64) -> JSON { .uint(ByteCount.frames(p).value) }
        return .object([("private_bytes", b(m.privatePages)), ("gmem_shared_bytes", b(m.gmemSharedPages)),
                        ("vmm_shared_bytes", b(m.vmmSharedPages)), ("double_backed_bytes", b(m.doubleBackedPages)),
                        ("pinned_bytes", b(m.pinnedPages)), ("reclaimable_bytes", b(m.reclaimablePages)),
                        ("total_bytes", b(m.totalPages))])
    }

    var hostMemoryText: String {
        let m = vm.hostMemory
        func b(_ p: UInt64) -> String { "\(ByteCount.frames(p))" }
        return "Host memory: total \(b(m.totalPages)): private \(b(m.privatePages)), shared in guest_memfd \(b(m.gmemSharedPages)), "
            + "VMM shared \(b(m.vmmSharedPages)), double-backed \(b(m.doubleBackedPages)); pinned \(b(m.pinnedPages)), reclaimable \(b(m.reclaimablePages))\n"
    }
}
