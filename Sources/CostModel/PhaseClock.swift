/// Virtual time of one phase in which several vCPUs work in parallel.
///
/// Each vCPU accumulates the CPU time of the operations it performs; all of
/// them together share the memory-write bandwidth and any host-serialised
/// section. The phase lasts as long as the busiest of the three:
/// `max(max_i vcpu_i, bytes / bandwidth, serial)`. With one vCPU this is
/// just that vCPU's time; with many it saturates, which is how acceptance
/// "does not scale past a few vCPUs" (accept-90g).
public struct PhaseClock: Sendable, Equatable {
    public private(set) var vcpuPicoseconds: [UInt64]
    public private(set) var bytesWritten: UInt64 = 0
    public private(set) var serialPicoseconds: UInt64 = 0
    public private(set) var counts = OpCounts()
    /// Counts per vCPU, for reports of who did the work.
    public private(set) var perVCPUCounts: [OpCounts]
    /// Wall time of a phase paced by the clock rather than by its work (a
    /// workload that allocates every second): the phase lasts at least this.
    public var pacedSeconds: Double = 0
    /// The phase's shared resources (zone locks, the accepting list, write
    /// bandwidth) as timelines on this clock's time base.
    public var shared = SharedTimelines()

    public init(vcpus: Int) {
        vcpuPicoseconds = Array(repeating: 0, count: max(1, vcpus))
        perVCPUCounts = Array(repeating: OpCounts(), count: max(1, vcpus))
    }

    public var vcpus: Int { vcpuPicoseconds.count }

    /// Charges `n` operations to `vcpu`.
    /// - Complexity: O(1).
    public mutating func charge(_ op: Op, _ n: UInt64 = 1, vcpu: Int, costs: CostTable) {
        guard n > 0 else { return }
        vcpuPicoseconds[vcpu] &+= costs.vcpuPicoseconds[op.index] &* n
        bytesWritten &+= costs.bytes[op.index] &* n
        serialPicoseconds &+= costs.serialPicoseconds[op.index] &* n
        counts.add(op, n)
        perVCPUCounts[vcpu].add(op, n)
    }

    /// Charges a whole set of counts to `vcpu`, `times` times.
    /// - Complexity: O(number of operation kinds), without allocating.
    public mutating func charge(_ c: OpCounts, times: UInt64 = 1, vcpu: Int, costs: CostTable) {
        guard times > 0 else { return }
        var ps: UInt64 = 0, bytes: UInt64 = 0, serial: UInt64 = 0
        for i in c.counts.indices where c.counts[i] != 0 {
            let n = c.counts[i] &* times
            ps &+= costs.vcpuPicoseconds[i] &* n
            bytes &+= costs.bytes[i] &* n
            serial &+= costs.serialPicoseconds[i] &* n
        }
        vcpuPicoseconds[vcpu] &+= ps
        bytesWritten &+= bytes
        serialPicoseconds &+= serial
        counts.add(c, times: times)
        perVCPUCounts[vcpu].add(c, times: times)
    }

    /// Length of the phase in seconds.
    public func seconds(_ costs: CostTable) -> Double {
        let cpu = Double(vcpuPicoseconds.max() ?? 0) / 1e12
        let bw = Double(bytesWritten) / costs.sharedBytesPerSecond
        let serial = Double(serialPicoseconds) / 1e12
        return max(cpu, bw, serial, pacedSeconds)
    }

    /// Adds the operation counts of a sub-phase that was timed separately
    /// (its time goes into `pacedSeconds`), without charging time again.
    public mutating func record(_ sub: PhaseClock) {
        counts.add(sub.counts)
        for v in 0..<min(vcpus, sub.vcpus) { perVCPUCounts[v].add(sub.perVCPUCounts[v]) }
    }

    /// Virtual time vCPUs spent spinning on a shared resource (a lock, the
    /// accepting list), summed over vCPUs, in picoseconds: part of their
    /// clocks, since a spinning vCPU is busy, but charged to no operation.
    public private(set) var spinPicoseconds: UInt64 = 0

    /// Moves `vcpu`'s clock on to `picoseconds` if it is behind: it spun
    /// until a shared resource it waited for was free.
    /// - Complexity: O(1).
    public mutating func spin(vcpu: Int, until picoseconds: UInt64) {
        guard picoseconds > vcpuPicoseconds[vcpu] else { return }
        spinPicoseconds &+= picoseconds - vcpuPicoseconds[vcpu]
        vcpuPicoseconds[vcpu] = picoseconds
    }

    /// The vCPU with the least time so far (lowest index on ties): where a
    /// work-sharing scheduler puts the next piece of parallel work.
    public var leastLoadedVCPU: Int {
        var best = 0
        for i in vcpuPicoseconds.indices where vcpuPicoseconds[i] < vcpuPicoseconds[best] { best = i }
        return best
    }
}
