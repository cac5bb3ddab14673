import CoCoGuest
import GuestKernel
import MemoryModel
public import Simulation

extension KexecResult {
    /// The report `cocomem kexec` prints.
    public var text: String {
        let s = first.scenario
        var o = "\(s.platform.rawValue.uppercased()) guest, \(ByteCount(s.memory)), kernel \(s.kernel.version.rawValue): "
        o += "first boot \(format3(first.times.totalBoot)) s, outcome \(first.outcomeString)\n\n"
        if case .success(let image)? = load {
            o += "\(image.syscall.rawValue) (\(image.type == .crash ? "crash" : "normal") image):\n"
            o += image.log.map { "  " + $0 }.joined(separator: "\n") + "\n"
            o += "  accept_memory() of the destinations at load: \(ByteCount(image.acceptedAtLoad))"
            o += s.kernel.version.acceptsKexecDestinations ? "\n" : " (this kernel has no accept-on-load fix)\n"
            o += "  source pages from the page allocator: \(image.sourcePages) (\(ByteCount.frames(image.sourcePages)))\n"
            if image.type == .normal {
                o += "  control, swap and indirection pages: \(image.controlPages)\n"
            }
            let reader = image.syscall == .fileLoad ? "vmalloc, kernel_read_file_from_fd()" : "kexec-tools' memory, slurp_file()"
            o += "  kernel and initrd files read into \(reader), freed after the load: \(image.loadBufferPages) pages (\(ByteCount.frames(image.loadBufferPages)))\n"
            o += "  memory accepted during the load (destinations and allocations): \(ByteCount(image.acceptedDuringLoad))\n"
            o += "  load time: \(format3(loadSeconds)) s\n"
        }
        o += "Load: \(loadOutcome)\n"
        // enc_kexec_finish(): only when the first kernel had made memory shared.
        if unshare != KexecUnshare() {
            let fn = s.platform == .tdx ? "tdx_kexec_finish()" : "snp_kexec_finish()"
            o += unshare.leftSharedBytes > 0
                ? "Shared memory before relocate_kernel: \(ByteCount(unshare.leftSharedBytes)) left shared (this kernel has no \(fn))\n"
                : "Shared memory before relocate_kernel: \(fn) converted \(ByteCount(unshare.convertedBytes)) back to private in \(format3(unshareSeconds)) s\n"
        }
        o += "Reboot (kexec -e): \(rebootOutcome)\n"
        if let f = reboot?.faultAddress, let seg = reboot?.faultSegment {
            o += "  relocate_kernel touched \(f) in the \(seg.rawValue) segment before anything accepted it\n"
        }
        if let b = second {
            o += "\nHand-over: \(ByteCount(unacceptedAtHandover)) still unaccepted in the table\n"
            o += "Next kernel \(b.scenario.kernel.version.rawValue): boot \(format3(b.times.totalBoot)) s, accepted \(ByteCount(b.acceptedKernelBoot)) more"
            o += ", re-accepted \(ByteCount(reacceptedBytes)), outcome \(b.outcomeString)\n"
            if b.scenario.workload != .none {
                o += "  workload \(ScenarioFile.workloadText(b.scenario.workload)): \(format3(b.times.workload)) s, accepted \(ByteCount(b.acceptedWorkload))\n"
            }
            if let k = b.kernel { o += "  MemTotal \(k.totalManagedPages * 4) kB, unaccepted \(k.totalUnacceptedPages * 4) kB\n" }
        }
        return o
    }

    public var json: JSON {
        var fields: [(String, JSON)] = [
            ("first_boot_s", .double(first.times.totalBoot)), ("first_outcome", .string(first.outcomeString)),
            ("load", .string(loadOutcome)),
        ]
        if case .success(let image)? = load {
            fields.append(("syscall", .string(image.syscall.rawValue)))
            fields.append(("segments", .array(image.segments.map { s in
                .object([("kind", .string(s.kind.rawValue)), ("mem", .uint(s.mem)), ("memsz", .uint(s.memsz)), ("bufsz", .uint(s.bufsz))])
            })))
            fields.append(("accepted_at_load_bytes", .uint(image.acceptedAtLoad)))
            fields.append(("source_pages", .uint(image.sourcePages)))
            fields.append(("control_pages", .uint(image.controlPages)))
            fields.append(("load_buffer_pages", .uint(image.loadBufferPages)))
            fields.append(("accepted_during_load_bytes", .uint(image.acceptedDuringLoad)))
            fields.append(("load_s", .double(loadSeconds)))
        }
        if unshare != KexecUnshare() {
            fields.append(("unshare", .object([("converted_bytes", .uint(unshare.convertedBytes)), ("left_shared_bytes", .uint(unshare.leftSharedBytes)),
                                          ("seconds", .double(unshareSeconds))])))
        }
        fields.append(("reboot", .string(rebootOutcome)))
        if let f = reboot?.faultAddress { fields.append(("fault_address", .uint(f.value))) }
        if let b = second {
            fields.append(("unaccepted_at_handover_bytes", .uint(unacceptedAtHandover)))
            fields.append(("next_boot_s", .double(b.times.totalBoot)))
            fields.append(("next_accepted_bytes", .uint(b.acceptedKernelBoot)))
            fields.append(("next_reaccepted_bytes", .uint(reacceptedBytes)))
            // Only when the next kernel runs a workload, so results without one read as before.
            if b.scenario.workload != .none {
                fields.append(("next_workload_s", .double(b.times.workload)))
                fields.append(("next_workload_accepted_bytes", .uint(b.acceptedWorkload)))
            }
            fields.append(("next_outcome", .string(b.outcomeString)))
        }
        return .object(fields)
    }
}
