public import MemoryModel

/// A guest's NUMA layout as QEMU builds it on q35 for `-numa node,memdev=`
/// (one memory backend a node) and `-smp N,sockets=S`: the node sizes, where
/// each node's memory lands in the guest physical address space, the ACPI
/// SRAT that tells the guest, and which node each vCPU is on.
///
/// QEMU maps the backends one after another into the machine's RAM, which
/// q35 splits into the part below 4 GiB (`below_4g_mem_size`, `Q35Layout`)
/// and the rest from 4 GiB up; the E820/EFI map is the same as without
/// NUMA. The node boundaries are the backends' cumulative sizes.
public struct NUMALayout: Sendable, Equatable {
    /// Bytes of each node, node 0 first.
    public let nodeSizes: [UInt64]
    /// `-smp ...,sockets=S`: QEMU ≥ 6.2 prefers cores over sockets, so a
    /// plain `-smp N` is one socket of N cores.
    public let sockets: Int

    /// QEMU's `MAX_NODES`.
    public static let maximumNodes = 128
    /// `NODE_MIN_SIZE` (arch/x86/mm/numa.c): a node with less memory is not
    /// registered (`numa_register_memblks()` skips it).
    public static let minimumNodeSize: UInt64 = 4 << 20
    /// Node sizes are whole 2 MiB pages (a memory backend's size is page
    /// granular; the model keeps node boundaries on 2 MiB, the largest
    /// page its host and guest models map).
    public static let nodeAlignment: UInt64 = 2 << 20
    /// `numa_default_auto_assign_ram()`'s granularity (hw/core/numa.c): 8 MiB.
    public static let autoAssignGranularity: UInt64 = 1 << 23

    /// One node holding all memory (no `-numa` option).
    public static func single(memory: UInt64, sockets: Int = 1) -> NUMALayout { NUMALayout(checkedSizes: [memory], sockets: sockets) }

    /// `machine_parse_smp_config()`: sockets × cores must be the vCPUs.
    public static func checkSockets(_ sockets: Int, vcpus: Int) throws {
        guard sockets >= 1, sockets <= vcpus, vcpus % sockets == 0 else {
            throw CocomemError(.invalidArgument, "--sockets \(sockets): \(vcpus) vCPUs are not a whole number of cores in each of \(sockets) sockets (QEMU: the product of the topology must match the CPUs)")
        }
    }

    init(checkedSizes: [UInt64], sockets: Int) { nodeSizes = checkedSizes; self.sockets = sockets }

    /// Checks the sizes against the guest's memory and the vCPUs against
    /// the sockets as QEMU does (`numa_complete_configuration()`: the nodes
    /// add up to `-m`; `machine_parse_smp_config()`: sockets × cores = CPUs).
    public init(nodeSizes: [UInt64], sockets: Int = 1, memory: UInt64, vcpus: Int) throws {
        guard !nodeSizes.isEmpty, nodeSizes.count <= Self.maximumNodes else {
            throw CocomemError(.invalidArgument, "--numa: between 1 and \(Self.maximumNodes) nodes (QEMU's MAX_NODES), got \(nodeSizes.count)")
        }
        for (i, s) in nodeSizes.enumerated() {
            guard s >= Self.minimumNodeSize else {
                throw CocomemError(.invalidSize, "--numa: node \(i) has \(ByteCount(s)); Linux registers no node under \(ByteCount(Self.minimumNodeSize)) (NODE_MIN_SIZE)")
            }
            guard s % Self.nodeAlignment == 0 else {
                throw CocomemError(.invalidSize, "--numa: node \(i) has \(ByteCount(s)), not a multiple of \(ByteCount(Self.nodeAlignment))")
            }
        }
        let (total, overflow) = nodeSizes.reduce((UInt64(0), false)) { acc, s in
            let (v, o) = acc.0.addingReportingOverflow(s); return (v, acc.1 || o)
        }
        guard !overflow, total == memory else {
            throw CocomemError(.invalidSize, "--numa: the nodes add up to \(overflow ? "more than 16 EiB" : ByteCount(total).description), not the guest's \(ByteCount(memory)) (QEMU: total memory for NUMA nodes should equal RAM size)")
        }
        try Self.checkSockets(sockets, vcpus: vcpus)
        self.nodeSizes = nodeSizes
        self.sockets = sockets
    }

    /// `--numa N` (N equal nodes) or `--numa SIZE,SIZE,...` (node sizes).
    /// Equal nodes follow `numa_default_auto_assign_ram()`: each node
    /// `memory / N` rounded down to 8 MiB, the last node the rest.
    public static func parseSizes(_ text: String, memory: UInt64) throws -> [UInt64] {
        if let n = Int(text) {
            guard n >= 1, n <= maximumNodes else {
                throw CocomemError(.invalidArgument, "--numa \(text): between 1 and \(maximumNodes) nodes (QEMU's MAX_NODES)")
            }
            let each = (memory / UInt64(n)) & ~(autoAssignGranularity - 1)
            return Array(repeating: each, count: n - 1) + [memory - each * UInt64(n - 1)]
        }
        let parts = text.split(separator: ",", omittingEmptySubsequences: false)
        guard parts.count <= maximumNodes else {
            throw CocomemError(.invalidArgument, "--numa: between 1 and \(maximumNodes) nodes (QEMU's MAX_NODES), got \(parts.count)")
        }
        return try parts.map { p in
            do { return try ByteCount.parse(String(p)).value } catch let e as CocomemError {
                throw CocomemError(e.code, "--numa '\(text)': expected a node count or node sizes like 3G,1G: \(e.message)")
            }
        }
    }

    public var nodeCount: Int { nodeSizes.count }

    /// `build_srat()`'s memory affinity structures (hw/i386/acpi-build.c):
    /// node memory laid out from address 0 in node order, the 640 KiB-1 MiB
    /// hole cut out of the node that spans it, and the node that crosses
    /// `below_4g_mem_size` continued at 4 GiB.
    /// - Complexity: O(nodes).
    public func sratMemory(belowFourGiB below: UInt64) -> [(node: Int, range: AddressRange)] {
        let hole640KStart: UInt64 = 0xA_0000, hole640KEnd: UInt64 = 0x10_0000
        var out: [(node: Int, range: AddressRange)] = []
        var nextBase: UInt64 = 0
        for (i, size) in nodeSizes.enumerated() {
            var memBase = nextBase, memLen = size
            nextBase = memBase + memLen
            if memBase <= hole640KStart, nextBase > hole640KStart {
                memLen -= nextBase - hole640KStart
                if memLen > 0 { out.append((i, AddressRange(start: memBase, size: memLen))) }
                // "the rare case: 640K < RAM < 1M"
                if nextBase <= hole640KEnd { nextBase = hole640KEnd; continue }
                memBase = hole640KEnd
                memLen = nextBase - hole640KEnd
            }
            if memBase <= below, nextBase > below {
                memLen -= nextBase - below
                if memLen > 0 { out.append((i, AddressRange(start: memBase, size: memLen))) }
                memBase = 1 << 32
                memLen = nextBase - below
                nextBase = memBase + memLen
            }
            if memLen > 0 { out.append((i, AddressRange(start: memBase, size: memLen))) }
        }
        return out
    }

    /// `x86_get_default_cpu_node_id()` (hw/i386/x86-common.c): with no
    /// `-numa cpu` or `cpus=`, the vCPU's socket modulo the nodes. One
    /// socket (plain `-smp N`) puts every vCPU on node 0.
    /// - Complexity: O(1).
    public func node(ofCPU cpu: Int, vcpus: Int) -> Int {
        let perSocket = max(1, vcpus / sockets)
        return (cpu / perSocket) % nodeCount
    }

    /// `node_distance()` without an ACPI SLIT: QEMU builds none unless
    /// `-numa dist` is given, and `__node_distance()` then answers
    /// LOCAL_DISTANCE (10) for a node to itself and REMOTE_DISTANCE (20)
    /// otherwise.
    public func distance(_ a: Int, _ b: Int) -> Int { a == b ? 10 : 20 }
}
