public import Firmware
public import MemoryModel

/// The guest kernel's NUMA view: which node each address and each CPU is
/// on, the distances, and each node's fallback order.
///
/// x86 reads the ACPI SRAT (`acpi_numa_memory_affinity_init()`,
/// `acpi_numa_processor_affinity_init()`), hands the ranges to
/// `numa_add_memblk()` and `numa_register_memblks()` (mm/numa_memblks.c,
/// arch/x86/mm/numa.c), which tag memblock regions with their node; the
/// allocator's zonelists come from `build_zonelists()` (mm/page_alloc.c).
/// One node (no SRAT) is every address and CPU on node 0.
public struct NUMATopology: Sendable {
    /// The SRAT's memory affinity ranges, sorted by address.
    public let memory: [(node: Int, range: AddressRange)]
    /// `cpu_to_node()` for each vCPU.
    public let cpuNode: [Int]
    public let nodeCount: Int
    let distances: @Sendable (Int, Int) -> Int
    /// `build_zonelists()`'s node order for each node: itself first, then
    /// the others by `find_next_best_node()`.
    public let nodeOrder: [[Int]]
    /// The vCPUs of each node (`cpumask_of_node()`), in order.
    public let cpusOfNode: [[Int]]

    /// A single node: no SRAT, every address and CPU on node 0.
    public static func single(vcpus: Int) -> NUMATopology {
        NUMATopology(memory: [], cpuNode: Array(repeating: 0, count: vcpus), nodeCount: 1) { a, b in a == b ? 10 : 20 }
    }

    /// The kernel's view of a QEMU layout: the SRAT's ranges for the q35
    /// split at `belowFourGiB`, the vCPUs on QEMU's default nodes.
    public init(layout: NUMALayout, belowFourGiB: UInt64, vcpus: Int) {
        self.init(memory: layout.sratMemory(belowFourGiB: belowFourGiB),
                  cpuNode: (0..<vcpus).map { layout.node(ofCPU: $0, vcpus: vcpus) }, nodeCount: layout.nodeCount) { layout.distance($0, $1) }
    }

    init(memory: [(node: Int, range: AddressRange)], cpuNode: [Int], nodeCount: Int, distance: @escaping @Sendable (Int, Int) -> Int) {
        self.memory = memory.sorted { $0.range.start < $1.range.start }
        self.cpuNode = cpuNode
        self.nodeCount = nodeCount
        self.distances = distance
        var cpus = Array(repeating: [Int](), count: nodeCount)
        for (c, n) in cpuNode.enumerated() { cpus[n].append(c) }
        cpusOfNode = cpus
        nodeOrder = Self.buildZonelistOrders(nodeCount: nodeCount, hasCPUs: cpus.map { !$0.isEmpty }, distance: distance)
    }

    public var isSingleNode: Bool { nodeCount == 1 }

    /// `node_distance()`.
    public func distance(_ a: Int, _ b: Int) -> Int { distances(a, b) }

    /// The node an address belongs to: the SRAT range holding it; an
    /// address in no range (a hole, firmware memory between two ranges)
    /// goes with the range below it, as `numa_cleanup_meminfo()` extends a
    /// node's blocks over the holes up to the next node's.
    /// - Complexity: O(log ranges).
    public func node(of address: UInt64) -> Int {
        guard nodeCount > 1, let first = memory.first else { return 0 }
        if address < first.range.start { return first.node }
        var lo = 0, hi = memory.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if memory[mid].range.start <= address { lo = mid } else { hi = mid - 1 }
        }
        return memory[lo].node
    }

    /// Where node `n`'s share of the address space begins, for splitting
    /// ranges at node boundaries: the starts of ranges whose node differs
    /// from the previous range's.
    /// - Complexity: O(ranges).
    public var boundaries: [UInt64] {
        var out: [UInt64] = []
        for i in memory.indices.dropFirst() where memory[i].node != memory[i - 1].node { out.append(memory[i].range.start) }
        return out
    }

    /// Splits `r` where it crosses from one node to another: (node, part).
    /// - Complexity: O(ranges).
    public func split(_ r: AddressRange) -> [(node: Int, range: AddressRange)] {
        guard nodeCount > 1 else { return r.isEmpty ? [] : [(0, r)] }
        var out: [(node: Int, range: AddressRange)] = []
        var s = r.start
        for b in boundaries where b > s && b < r.end {
            out.append((node(of: s), AddressRange(start: s, end: b)))
            s = b
        }
        if s < r.end { out.append((node(of: s), AddressRange(start: s, end: r.end))) }
        return out
    }

    /// `build_zonelists()` for every node in turn (`__build_all_zonelists()`
    /// clears `node_load[]` once, then builds each node's list): nodes in
    /// `find_next_best_node()`'s order, with `node_load[]` spreading nodes
    /// at equal distance round-robin.
    static func buildZonelistOrders(nodeCount: Int, hasCPUs: [Bool], distance: (Int, Int) -> Int) -> [[Int]] {
        // MAX_NUMNODES of a distribution kernel (CONFIG_NODES_SHIFT=10);
        // PENALTY_FOR_NODE_WITH_CPUS = 1.
        let maxNumNodes = 1 << 10, penaltyForNodeWithCPUs = 1
        var nodeLoad = Array(repeating: 0, count: nodeCount)
        var orders: [[Int]] = []
        for local in 0..<nodeCount {
            var used = Array(repeating: false, count: nodeCount)
            var order: [Int] = []
            var prev = local
            while let node = findNextBestNode(local, used: &used, nodeLoad: nodeLoad, hasCPUs: hasCPUs,
                                              distance: distance, maxNumNodes: maxNumNodes, penalty: penaltyForNodeWithCPUs) {
                // "adding penalty to the first node in same distance group to make it round-robin"
                if distance(local, node) != distance(local, prev) { nodeLoad[node] += 1 }
                order.append(node)
                prev = node
            }
            orders.append(order)
        }
        return orders
    }

    /// `find_next_best_node()`: the local node first (every node here has
    /// memory), then the node with the least `(distance + (n < node) +
    /// penalty if it has CPUs) * MAX_NUMNODES + node_load[n]`.
    static func findNextBestNode(_ node: Int, used: inout [Bool], nodeLoad: [Int], hasCPUs: [Bool],
                                 distance: (Int, Int) -> Int, maxNumNodes: Int, penalty: Int) -> Int? {
        if !used[node] { used[node] = true; return node }
        var best: Int? = nil, minVal = Int.max
        for n in 0..<used.count where !used[n] {
            var val = distance(node, n)
            if n < node { val += 1 }  // "Penalize nodes under us"
            if hasCPUs[n] { val += penalty }  // "Give preference to headless and unused nodes"
            val = val * maxNumNodes + nodeLoad[n]
            if val < minVal { minVal = val; best = n }
        }
        if let b = best { used[b] = true }
        return best
    }
}
