import CoCoGuest
import CostModel
import Firmware
import GuestKernel
import MemoryModel
import Reports
import Simulation
import TestSupport
import Testing

/// Issue 16 §3: a NUMA guest. Expectations come from the kernel's and
/// QEMU's rules (cited), not from the model's own helpers.
@Suite struct NUMATests {
    static let G: UInt64 = 1 << 30, M: UInt64 = 1 << 20

    func boot(_ f: (inout Scenario) -> Void) throws -> BootResult {
        try bootResult { s in s.record = false; f(&s) }
    }

    /// `build_zonelists()` by hand (mm/page_alloc.c, `find_next_best_node()`
    /// with node_load[] carried from one node's list to the next): three
    /// nodes with CPUs at distance 20 go round-robin; with CPUs on node 0
    /// only, the CPU penalty changes node 2's order.
    @Test func zonelistNodeOrderFollowsFindNextBestNode() throws {
        let three = try NUMALayout(nodeSizes: [2 * Self.G, 2 * Self.G, 2 * Self.G], sockets: 3, memory: 6 * Self.G, vcpus: 3)
        #expect(NUMATopology(layout: three, belowFourGiB: 2 * Self.G, vcpus: 3).nodeOrder == [[0, 1, 2], [1, 2, 0], [2, 0, 1]])
        let headless = try NUMALayout(nodeSizes: [2 * Self.G, 2 * Self.G, 2 * Self.G], sockets: 1, memory: 6 * Self.G, vcpus: 3)
        #expect(NUMATopology(layout: headless, belowFourGiB: 2 * Self.G, vcpus: 3).nodeOrder == [[0, 1, 2], [1, 2, 0], [2, 1, 0]])
    }

    /// Allocations prefer the local node, and acceptance happens in the
    /// zone that gives the page: a phase on node 1 leaves node 0's
    /// unaccepted memory as it was and takes its pages from node 1.
    @Test func allocationOnANodeAcceptsThere() throws {
        func run(_ w: Workload) throws -> GuestKernel {
            let r = try boot { s in
                s.memory = 8 * Self.G; s.vcpus = 2; s.numaNodeSizes = [4 * Self.G, 4 * Self.G]; s.sockets = 2; s.workload = w
            }
            #expect(r.outcome == .ok)
            return try #require(r.kernel)
        }
        let idle = try run(.none), busy = try run(.onNode(1, .touch(Self.G)))
        func row(_ k: GuestKernel, _ n: Int, _ name: String) -> UInt64 { k.nodeMeminfoRows(node: n).first { $0.0 == name }!.1 }
        #expect(row(busy, 0, "Unaccepted") == row(idle, 0, "Unaccepted"))
        // Within one MAX_ORDER block (4 MiB, 4096 kB): cond_accept_memory() refills to the promo watermark in blocks.
        #expect(row(idle, 1, "Unaccepted") - row(busy, 1, "Unaccepted") + 4096 >= Self.G / 1024)
        #expect(row(busy, 1, "AnonPages") - row(idle, 1, "AnonPages") == Self.G / 1024)
        #expect(row(busy, 0, "AnonPages") == row(idle, 0, "AnonPages"))
    }

    /// With one socket every vCPU is on node 0 (QEMU's default): the
    /// workload fills node 0 first, then falls back to node 1.
    @Test func oneSocketFallsBackToTheOtherNode() throws {
        let r = try boot { s in
            s.memory = 8 * Self.G; s.vcpus = 4; s.numaNodeSizes = [2 * Self.G, 6 * Self.G]; s.workload = .touch(4 * Self.G)
        }
        let k = try #require(r.kernel)
        let anon = (0..<2).map { n in k.nodeMeminfoRows(node: n).first { $0.0 == "AnonPages" }!.1 }
        #expect(k.numa.cpusOfNode[1].isEmpty)
        #expect(anon[1] > 0 && anon[0] > anon[1] / 4)
        // Node 0 was used down to its floors before node 1 gave a page.
        let z0 = k.zones(ofNode: 0).filter { $0.managed > 0 }
        #expect(z0.allSatisfy { $0.acceptedFree <= $0.watermarkMin + $0.lowmemReserve[ZoneKind.movableIndex] + 1024 })
    }

    /// An N-node guest against the same guest on one node, on seeded random
    /// layouts: what the kernel computes without regard to nodes is equal
    /// (MemTotal: the same reservations out of the same present pages;
    /// MemFree: managed minus the same allocations; what firmware and stub
    /// accepted; present pages by zone type), the nodes' lines add up to the
    /// global ones, an eager guest has nothing unaccepted, and
    /// `set_recommended_min_free_kbytes()` counting more populated zones
    /// never lowers min_free_kbytes.
    @Test(arguments: [31, 32, 33, 34] as [UInt64])
    func nodesAddUpToTheOneNodeGuest(seed: UInt64) throws {
        var rng = SplitMix64(seed: seed)
        let n = 2 + Int(rng.next() % 3)
        let sizes = (0..<n).map { _ in (2 + rng.next() % 8) * 512 * Self.M }
        let memory = sizes.reduce(0, +)
        let vcpus = [1, 2, 4, 6, 8][Int(rng.next() % 5)]
        let socketChoices = [1, 2, vcpus].filter { vcpus % $0 == 0 }
        let sockets = socketChoices[Int(rng.next() % UInt64(socketChoices.count))]
        let lazy = rng.next() % 3 != 0, touch = (rng.next() % (memory / 4 / Self.M)) * Self.M
        let platform: PlatformKind = rng.next() % 2 == 0 ? .tdx : .snp
        func run(_ numa: Bool) throws -> BootResult {
            try boot { s in
                s.platform = platform; s.firmware = platform == .tdx ? .tdvf : .ovmfSNP
                s.memory = memory; s.vcpus = vcpus; s.lazy = lazy; s.workload = .touch(touch)
                if numa { s.numaNodeSizes = sizes; s.sockets = sockets }
            }
        }
        let one = try run(false), many = try run(true)
        let note = "\(platform) \(sizes.map { ByteCount($0) }) vcpus \(vcpus) sockets \(sockets) \(lazy ? "lazy" : "eager") touch \(ByteCount(touch))"
        #expect(one.outcome == .ok && many.outcome == .ok, "\(note)")
        let k1 = try #require(one.kernel), kn = try #require(many.kernel)
        #expect(kn.numa.nodeCount == n)
        #expect(kn.swiotlbBytes == k1.swiotlbBytes, "\(note)")
        #expect(kn.totalManagedPages == k1.totalManagedPages, "\(note)")
        #expect(kn.allocatedPages == k1.allocatedPages && kn.totalFreePages == k1.totalFreePages, "\(note)")
        #expect(many.acceptedFirmware == one.acceptedFirmware && many.acceptedStub == one.acceptedStub, "\(note)")
        for kind in ZoneKind.allCases {
            let perNode = (0..<n).reduce(0) { $0 + kn.presentPages(zone: kn.zoneIndex(node: $1, kind: kind)) }
            #expect(perNode == k1.presentPages(kind), "\(kind) \(note)")
        }
        func sum(_ name: String) -> UInt64 { (0..<n).reduce(0) { $0 + kn.nodeMeminfoRows(node: $1).first { $0.0 == name }!.1 } }
        let global = Dictionary(uniqueKeysWithValues: kn.meminfo)
        #expect(sum("MemTotal") == global["MemTotal"] && sum("MemFree") == global["MemFree"], "\(note)")
        #expect(sum("Unaccepted") == global["Unaccepted"] && sum("FilePages") == global["Cached"], "\(note)")
        #expect(sum("AnonPages") == global["AnonPages"], "\(note)")
        if !lazy { #expect(global["Unaccepted"] == 0) }
        #expect(kn.minFreeKbytesInEffect >= k1.minFreeKbytesInEffect, "\(note)")
    }

    /// `sparse_init_nid()`: each node's struct pages in a buffer on that node,
    /// 2 MiB for each of its 128 MiB sections, and each node's deferred init
    /// on its own thread.
    @Test func memmapAndDeferredInitPerNode() throws {
        let r = try boot { s in s.memory = 16 * Self.G; s.vcpus = 4; s.numaNodeSizes = [4 * Self.G, 12 * Self.G]; s.sockets = 2 }
        let k = try #require(r.kernel)
        let memmaps = k.reservations.filter { $0.kind == .memmap }.map(\.range)
        #expect(memmaps.count == 2)
        // Node 0: [0, 2 GiB) and [4 GiB, 6 GiB), 32 sections; node 1: [6 GiB, 18 GiB), 96 sections.
        #expect(memmaps.map(\.size) == [32 * 2 * Self.M, 96 * 2 * Self.M])
        #expect(memmaps.enumerated().allSatisfy { k.numa.node(of: $0.element.start) == $0.offset && k.numa.node(of: $0.element.end - 1) == $0.offset })
        #expect(k.deferredInitNodePicoseconds.allSatisfy { $0 > 0 })
    }

    /// kexec on a two-node guest: the next kernel parses the same SRAT, so it
    /// boots on the first kernel's nodes, with a memmap buffer on each
    /// (`sparse_init_nid()`), each node's zones managing its own memory and a
    /// deferred-init thread per node.
    @Test func kexecBootsTheNextKernelOnTheSameNodes() throws {
        var s = Scenario()
        s.memory = 4 * Self.G; s.vcpus = 2; s.sockets = 2; s.numaNodeSizes = [2 * Self.G, 2 * Self.G]
        s.kernel.version = .v6_16; s.kernel.lazyAccept = s.lazy; s.record = false
        let r = try BootSimulation(scenario: s, calibration: Calibration.builtIn()).runKexec(KexecPlan())
        #expect(r.reboot?.outcome == .ok)
        let second = try #require(r.second)
        #expect(second.outcome == .ok)
        let next = try #require(second.kernel)
        #expect(next.numa.nodeCount == 2)
        let memmaps = next.reservations.filter { $0.kind == .memmap }.map(\.range)
        // Node 0 [0, 2 GiB) and node 1 [4 GiB, 6 GiB): 16 sections each.
        #expect(memmaps.map(\.size) == [32 * Self.M, 32 * Self.M])
        #expect(memmaps.enumerated().allSatisfy { next.numa.node(of: $0.element.start) == $0.offset })
        for n in 0..<2 {
            let managed = next.zones(ofNode: n).reduce(0) { $0 + $1.managed }
            #expect(managed > 0 && managed * 4096 < 2 * Self.G, "node \(n)")
        }
        #expect(next.deferredInitNodePicoseconds.count == 2)
    }

    /// The boot log's NUMA lines in the kernel's formats, for two equal
    /// nodes of a 4 GiB guest.
    @Test func dmesgHasTheNUMALines() throws {
        let r = try boot { s in s.memory = 4 * Self.G; s.vcpus = 4; s.numaNodeSizes = [2 * Self.G, 2 * Self.G]; s.sockets = 2 }
        let lines = r.dmesg().map(\.text)
        for expected in [
            "ACPI: SRAT: PXM 1 -> APIC 0x02 -> Node 1",
            "ACPI: SRAT: Node 0 PXM 0 [mem 0x00000000-0x0009ffff]",
            "ACPI: SRAT: Node 0 PXM 0 [mem 0x00100000-0x7fffffff]",
            "ACPI: SRAT: Node 1 PXM 1 [mem 0x100000000-0x17fffffff]",
            "NUMA: Node 0 [mem 0x00001000-0x0009ffff] + [mem 0x00100000-0x7fffffff] -> [mem 0x00001000-0x7fffffff]",
            "Initmem setup node 1 [mem 0x0000000100000000-0x000000017fffffff]",
            "smp: Brought up 2 nodes, 4 CPUs",
        ] { #expect(lines.contains(expected), "missing: \(expected)") }
        #expect(lines.contains { $0.hasPrefix("node 1 deferred pages initialised in ") })
        #expect(!lines.contains { $0.hasPrefix("NUMA: Initialized distance table") })
        #expect(r.text.contains("Node 1 Unaccepted:"))
    }

    /// One node given explicitly is no NUMA: the same scenario as without it.
    @Test func oneNodeIsNoNUMA() throws {
        #expect(try Scenario.numaNodeSizes("1", memory: 4 * Self.G, vcpus: 4, sockets: 1) == nil)
        #expect(try Scenario.numaNodeSizes("4G", memory: 4 * Self.G, vcpus: 4, sockets: 1) == nil)
        #expect(throws: CocomemError.self) { try Scenario.numaNodeSizes("3G", memory: 4 * Self.G, vcpus: 4, sockets: 1) }
    }

    /// A phase on a node the guest does not have is refused.
    @Test func phaseOnAMissingNodeIsRefused() throws {
        #expect(try Workload.parse("touch=1G@1", memory: 4 * Self.G) == .onNode(1, .touch(Self.G)))
        #expect(throws: CocomemError.self) { try Workload.parse("hotplug=128M@1", memory: 4 * Self.G) }
        #expect(throws: CocomemError.self) { try Workload.parse("touch=1G@x", memory: 4 * Self.G) }
        var s = Scenario(); s.numaNodeSizes = [2 * Self.G, 2 * Self.G]; s.workload = .onNode(2, .touch(Self.G))
        #expect(throws: CocomemError.self) { try s.validate() }
    }
}
