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
        return .object([
            ("pages_4k", .uint(pages4K)),
            ("pages_2m", .uint(pages2M)),
            ("seamcalls", .object(calls)),
            ("kvm", .object(kvm)),
            ("sept_pages", .uint(septPages)),
            ("pamt_pages", .uint(pamtPagesAllocated)),
            ("split_cache_pages", .uint(splitCache)),
            ("host_committed_bytes", .uint(ByteCount.frames(committedPages).value)),
            ("huge_pages_enabled", .bool(hugePagesEnabled)),
            ("broken", .array(brokenOutcomes.map { .string($0) })),
            ("outcome", .string(outcomeString)),
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
        o += "  SEAMCALLs:\n"
        for (leaf, st, n) in module.calls.nonZero { o += "    " + "\(leaf) \(st)".rightPadded(56) + "\(n)\n" }
        o += "  KVM:\n"
        for c in KVMCounter.allCases where counters[c] > 0 { o += "    " + c.name.rightPadded(56) + "\(counters[c])\n" }
        for b in brokenOutcomes { o += "  BROKEN: \(b)\n" }
        return o
    }
}
