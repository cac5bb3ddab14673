import Firmware
import MemoryModel
import Testing

/// QEMU's NUMA layout on q35: the SRAT's memory affinity ranges
/// (`build_srat()`), the default vCPU-to-node mapping
/// (`x86_get_default_cpu_node_id()`) and `--numa`'s parsing.
@Suite struct NUMALayoutTests {
    let G: UInt64 = 1 << 30, M: UInt64 = 1 << 20

    func ranges(_ l: NUMALayout, below: UInt64) -> [(Int, UInt64, UInt64)] {
        l.sratMemory(belowFourGiB: below).map { ($0.node, $0.range.start, $0.range.end) }
    }

    /// Two equal nodes of a 4 GiB q35 guest (2 GiB below the PCI hole): node 0
    /// holds the low RAM with the 640K-1M hole cut out, node 1 starts at 4 GiB.
    @Test func twoEqualNodesOf4G() throws {
        let sizes = try NUMALayout.parseSizes("2", memory: 4 * G)
        #expect(sizes == [2 * G, 2 * G])
        let l = try NUMALayout(nodeSizes: sizes, memory: 4 * G, vcpus: 4)
        let r = ranges(l, below: 2 * G)
        #expect(r.count == 3)
        #expect(r[0] == (0, 0, 0xA_0000) && r[1] == (0, 0x10_0000, 2 * G) && r[2] == (1, 4 * G, 6 * G))
    }

    /// A node that crosses the PCI hole continues at 4 GiB; the next node
    /// starts where it ends.
    @Test func nodeCrossingThePCIHole() throws {
        let l = try NUMALayout(nodeSizes: try NUMALayout.parseSizes("3G,1G", memory: 4 * G), memory: 4 * G, vcpus: 2)
        let r = ranges(l, below: 2 * G)
        #expect(r.count == 4)
        #expect(r[1] == (0, 0x10_0000, 2 * G) && r[2] == (0, 4 * G, 5 * G) && r[3] == (1, 5 * G, 6 * G))
    }

    /// Every byte of RAM is in exactly one node's ranges, and the nodes'
    /// ranges add up to their sizes (less the 640K-1M hole of node 0), on
    /// random layouts.
    @Test(arguments: [1, 2, 3] as [UInt64])
    func rangesCoverTheNodes(seed: UInt64) throws {
        var rng = SplitMix64(seed: seed)
        for _ in 0..<50 {
            let n = 2 + Int(rng.next() % 6)
            let sizes = (0..<n).map { _ in (2 + rng.next() % 4000) * 2 * M }
            let memory = sizes.reduce(0, +)
            let below: UInt64 = memory >= 0xB000_0000 ? 0x8000_0000 : 0xB000_0000
            let l = try NUMALayout(nodeSizes: sizes, memory: memory, vcpus: n)
            let r = l.sratMemory(belowFourGiB: below)
            for i in 0..<n {
                let bytes = r.filter { $0.node == i }.reduce(0) { $0 + $1.range.size }
                #expect(bytes == sizes[i] - (i == 0 ? 0x6_0000 : 0), "node \(i) of \(sizes)")
            }
            for i in r.indices.dropFirst() { #expect(r[i - 1].range.end <= r[i].range.start) }
            #expect(r.allSatisfy { $0.range.end <= below || $0.range.start >= 1 << 32 })
        }
    }

    /// `pkg_id % nodes`: one socket (plain -smp N) puts every vCPU on node 0;
    /// with sockets, each socket's cores go to socket % nodes.
    @Test func defaultCPUMapping() throws {
        let one = try NUMALayout(nodeSizes: [2 * G, 2 * G], memory: 4 * G, vcpus: 8)
        #expect((0..<8).map { one.node(ofCPU: $0, vcpus: 8) } == Array(repeating: 0, count: 8))
        let four = try NUMALayout(nodeSizes: [2 * G, 2 * G], sockets: 4, memory: 4 * G, vcpus: 8)
        #expect((0..<8).map { four.node(ofCPU: $0, vcpus: 8) } == [0, 0, 1, 1, 0, 0, 1, 1])
    }

    /// `numa_default_auto_assign_ram()`: 8 MiB granularity, the rest on the last node.
    @Test func equalNodesRoundDownTo8M() throws {
        #expect(try NUMALayout.parseSizes("3", memory: 4 * G) == [1360 * M, 1360 * M, 1376 * M])
    }

    /// Layouts QEMU or Linux refuse are errors, not a guess.
    @Test func badLayoutsAreRefused() {
        #expect(throws: CocomemError.self) { try NUMALayout(nodeSizes: [3 * G, 2 * G], memory: 4 * G, vcpus: 4) }
        #expect(throws: CocomemError.self) { try NUMALayout(nodeSizes: [4 * G - 2 * M, 2 * M], memory: 4 * G, vcpus: 4) }
        #expect(throws: CocomemError.self) { try NUMALayout(nodeSizes: [2 * G + M, 2 * G - M], memory: 4 * G, vcpus: 4) }
        #expect(throws: CocomemError.self) { try NUMALayout(nodeSizes: [2 * G, 2 * G], sockets: 3, memory: 4 * G, vcpus: 4) }
        #expect(throws: CocomemError.self) { try NUMALayout.parseSizes("0", memory: 4 * G) }
        #expect(throws: CocomemError.self) { try NUMALayout.parseSizes("129", memory: 4 * G) }
        #expect(throws: CocomemError.self) { try NUMALayout.parseSizes("2G,,2G", memory: 4 * G) }
        #expect(throws: CocomemError.self) { try NUMALayout(nodeSizes: [UInt64.max, 2], memory: 4 * G, vcpus: 1) }
    }
}
