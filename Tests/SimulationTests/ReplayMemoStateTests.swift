import CoCoGuest
import CostModel
import Firmware
@testable import GuestKernel
import KVM
import MemoryModel
import Reports
import Simulation
import TDXModule
import Testing

/// Bulk replay equals stepping whatever is memoised, and whichever vCPUs
/// are in guest mode. Three layers keep memos of a stepped 2M chunk: the
/// host (`TDXVM.replayMemo`, `pieceMemo`), the guest's acceptor
/// (`TDXAcceptor`) and the kernel's steady `accept_memory()` calls
/// (`UnacceptedMemory.acceptBlocks`). Before session 16, `halt(vcpu:)` and
/// `wake(vcpu:)` dropped the host's memos only; the guest's then replayed
/// chunks whose host replay found no memo and changed nothing, so a boot
/// that halted its APs lost host state (`sept_add` 69 -> 10 in the 64 GiB
/// eager tdx-huge boot). Now a replay without the host's memo is refused
/// and the chunk stepped, and a memo keeps how many times its step kicked,
/// the vCPUs each kick reaches counted at replay (context work), so halts
/// and wakes need no memo dropped.
@Suite struct ReplayMemoStateTests {
    /// A TD of `memory` bytes on host model `model`: the guest's Linux
    /// acceptor, and `accept_memory()` over an unaccepted table covering
    /// `[tableBase, tableBase + blocks × 4 MiB + 2 MiB)`.
    final class Guest {
        let vm: TDXVM
        let acceptor: TDXAcceptor
        let memory: UnacceptedMemory
        var clock: PhaseClock
        let step: Bool

        init(model: TDXHostModel, vcpus: Int, memory bytes: UInt64, tableBase: UInt64, blocks: UInt64, step: Bool) throws {
            let costs = CostTable(try Calibration.builtIn())
            let (opts, features) = model.configuration
            let vm = try TDXVM(options: opts, features: features, vcpus: vcpus,
                               slots: [Memslot(id: 1, baseGFN: GFN(0), pages: bytes >> 12, backing: model == .tdxHuge ? .hugetlb2M : .buddy)])
            vm.finalize()
            let acceptor = TDXAcceptor(host: vm, driver: .linux, costs: costs)
            let units = 2 * blocks + 1
            var table = UnacceptedTable(physBase: GuestPhysicalAddress(tableBase), size: (units + 7) / 8, address: GuestPhysicalAddress(1 << 40))
            table.bitmap.set(Range(start: UnacceptedUnit(0), count: units))
            let memory = UnacceptedMemory(table: table, acceptor: acceptor, costs: costs)
            memory.stepByStep = step
            acceptor.stepByStep = step
            self.vm = vm
            self.acceptor = acceptor
            self.memory = memory
            clock = PhaseClock(vcpus: vcpus)
            self.step = step
        }

        func accept(_ start: UInt64, _ size: UInt64, vcpu: Int) -> AcceptOutcome {
            vm.wake(vcpu: vcpu)  // the guest runs on it
            return acceptor.accept(AddressRange(start: start, size: size), vcpu: vcpu, clock: &clock)
        }

        func acceptBlocks(_ first: UInt64, count: UInt64, vcpu: Int) -> AcceptOutcome {
            vm.wake(vcpu: vcpu)
            return memory.acceptBlocks(firstBlockAddress: memory.table.physBase.value + first * (4 << 20), count: count, vcpu: vcpu, clock: &clock)
        }

        func convert(_ start: UInt64, _ size: UInt64, toPrivate: Bool) -> HostOutcome {
            vm.convertInPieces(Range(start: GuestPhysicalAddress(start).frame, count: size >> 12), toPrivate: toPrivate, stepByStep: step)
        }
    }

    /// Everything that must not depend on bulk or stepping.
    static func expectSame(_ b: Guest, _ s: Guest, _ what: @autoclosure () -> String) {
        #expect(b.vm.statsJSON.serialized() == s.vm.statsJSON.serialized(), "\(what()): host stats")
        #expect(b.vm.committedPages == s.vm.committedPages && b.vm.ops == s.vm.ops, "\(what()): committed pages, host ops")
        #expect(b.vm.mmu.mirror2M == s.vm.mmu.mirror2M && b.vm.mmu.mirror4K == s.vm.mmu.mirror4K
                && b.vm.attributes.privateAttr == s.vm.attributes.privateAttr, "\(what()): mirror, attributes")
        #expect(b.vm.module.pde == s.vm.module.pde && b.vm.module.pte == s.vm.module.pte, "\(what()): S-EPT")
        #expect(b.vm.tdx.pamtRefcount == s.vm.tdx.pamtRefcount && b.vm.gmem.folioOrder == s.vm.gmem.folioOrder
                && b.vm.septPool == s.vm.septPool && b.vm.splitCache == s.vm.splitCache, "\(what()): PAMT, folios, pool")
        #expect(b.vm.module.tdEpoch == s.vm.module.tdEpoch && b.vm.counters[.vcpuKicks] == s.vm.counters[.vcpuKicks], "\(what()): epoch, kicks")
        #expect(b.clock == s.clock, "\(what()): vCPU clocks and counts")
        #expect(b.memory.table.bitmap == s.memory.table.bitmap && b.memory.archCalls == s.memory.archCalls
                && b.memory.acceptedBytes == s.memory.acceptedBytes, "\(what()): unaccepted table")
    }

    /// The same steps on a bulk and a stepping guest.
    static func both(_ model: TDXHostModel, vcpus: Int = 4, memory: UInt64 = 512 << 20, tableBase: UInt64 = 256 << 20,
                     blocks: UInt64 = 48, _ steps: (Guest) -> Void) throws -> (bulk: Guest, step: Guest) {
        let b = try Guest(model: model, vcpus: vcpus, memory: memory, tableBase: tableBase, blocks: blocks, step: false)
        let s = try Guest(model: model, vcpus: vcpus, memory: memory, tableBase: tableBase, blocks: blocks, step: true)
        steps(b); steps(s)
        return (b, s)
    }

    /// The guest's acceptor keeps its memo when the host's is dropped
    /// between two accepts in one 1G region: the second accept's chunks are
    /// stepped (the host refuses a replay without its memo), not replayed
    /// with no host state. Failed before: `sept_add`, AUGs and committed
    /// memory of the second range missing.
    @Test(arguments: TDXHostModel.allCases)
    func acceptorMemoOutlivingTheHostsEqualsStepping(_ model: TDXHostModel) throws {
        let (b, s) = try Self.both(model) { g in
            #expect(g.accept(0, 64 << 20, vcpu: 0) == .ok)
            g.vm.forgetReplaySteps()
            #expect(g.accept(64 << 20, 64 << 20, vcpu: 1) == .ok)
            #expect(g.accept(128 << 20, 64 << 20, vcpu: 1) == .ok)
        }
        Self.expectSame(b, s, "\(model)")
        #expect(b.vm.replayedChunks > 0 && s.vm.replayedChunks == 0)
        #expect(b.vm.checkInvariants().isEmpty)
    }

    /// The kernel's steady-call memo (`acceptBlocks`) outliving the host's:
    /// the calls are stepped until the host has a memo again.
    @Test(arguments: TDXHostModel.allCases)
    func steadyCallMemoOutlivingTheHostsEqualsStepping(_ model: TDXHostModel) throws {
        let (b, s) = try Self.both(model) { g in
            #expect(g.acceptBlocks(0, count: 12, vcpu: 0) == .ok)
            g.vm.forgetReplaySteps()
            #expect(g.acceptBlocks(12, count: 12, vcpu: 0) == .ok)
        }
        Self.expectSame(b, s, "\(model)")
        #expect(b.vm.replayedChunks > 0)
    }

    /// Piecewise conversion's memo (`pieceMemo`) outliving the replay memo.
    @Test(arguments: TDXHostModel.allCases)
    func conversionMemoOutlivingTheReplayMemoEqualsStepping(_ model: TDXHostModel) throws {
        let (b, s) = try Self.both(model) { g in
            #expect(g.accept(0, 64 << 20, vcpu: 0) == .ok)
            #expect(g.convert(0, 16 << 20, toPrivate: false) == .ok)
            g.vm.forgetReplaySteps()
            #expect(g.convert(16 << 20, 16 << 20, toPrivate: false) == .ok)
        }
        Self.expectSame(b, s, "\(model)")
        #expect(b.vm.replayedChunks > 0)
    }

    /// Halting and waking vCPUs between conversions: each zap kicks the
    /// vCPUs in guest mode then (8, then 3, then 5, then 3), in bulk as
    /// stepping, with the memos recorded before the halts. Failed before:
    /// `halt` dropped the host's memos, the conversion memo replayed nothing.
    @Test(arguments: TDXHostModel.allCases)
    func haltsAndWakesBetweenReplaysEqualStepping(_ model: TDXHostModel) throws {
        let chunk: UInt64 = 2 << 20
        let (b, s) = try Self.both(model, vcpus: 8) { g in
            #expect(g.accept(0, 96 << 20, vcpu: 0) == .ok)
            #expect(g.convert(0, 8 * chunk, toPrivate: false) == .ok)
            for v in 3..<8 { g.vm.halt(vcpu: v) }
            #expect(g.convert(8 * chunk, 8 * chunk, toPrivate: false) == .ok)
            g.vm.wake(vcpu: 5); g.vm.wake(vcpu: 6)
            #expect(g.convert(16 * chunk, 8 * chunk, toPrivate: false) == .ok)
            for v in [5, 6] { g.vm.halt(vcpu: v) }
            #expect(g.convert(24 * chunk, 8 * chunk, toPrivate: false) == .ok)
        }
        Self.expectSame(b, s, "\(model)")
        #expect(b.vm.replayedChunks > 0)
        // Each of the 4 × 8 chunks has its 512 private 4K leaves zapped (or
        // its 2M leaf split and zapped); the kicks per TRACK follow the
        // vCPUs in guest mode: 8, 3, 5, 3.
        let tracks = b.vm.module.calls[leaf: .memTrack, status: .success]
        #expect(tracks > 0 && tracks % 4 == 0)
        #expect(b.vm.counters[.vcpuKicks] == tracks / 4 * (8 + 3 + 5 + 3))
    }

    /// Seeded random sequences on 2 to 8 vCPUs and both host models:
    /// accepts of random sizes through the acceptor and through
    /// `accept_memory()`'s 4 MiB blocks, conversions to shared and back,
    /// halts and wakes of random vCPUs, and the host's memos dropped at
    /// random points. Bulk equals stepping after every step, and bulk
    /// replays.
    @Test func randomSequencesWithMemoClearsEqualStepping() throws {
        var replayed: UInt64 = 0, clears = 0, halts = 0
        for seed in UInt64(0)..<16 {
            var rng = SplitMix64(seed: seed)
            let vcpus = 2 + Int(rng.next() % 7)
            let model = TDXHostModel.allCases[Int(seed % 2)]
            let b = try Guest(model: model, vcpus: vcpus, memory: 512 << 20, tableBase: 256 << 20, blocks: 60, step: false)
            let s = try Guest(model: model, vcpus: vcpus, memory: 512 << 20, tableBase: 256 << 20, blocks: 60, step: true)
            var cursor: UInt64 = 0, block: UInt64 = 0
            var shared: [(UInt64, UInt64)] = []
            for i in 0..<24 {
                let what = "seed \(seed) (\(model), \(vcpus) vCPUs), step \(i)"
                let v = Int(rng.next() % UInt64(vcpus))
                switch rng.next() % 6 {
                case 0, 1:
                    // Sizes in 4K pages: whole chunks and sometimes a partial one.
                    var size = (1 + rng.next() % 12) * (2 << 20)
                    if rng.next() % 3 == 0 { size += (1 + rng.next() % 511) << 12 }
                    guard cursor + size <= 256 << 20 else { continue }
                    #expect(b.accept(cursor, size, vcpu: v) == .ok && s.accept(cursor, size, vcpu: v) == .ok, "\(what)")
                    cursor += size
                case 2:
                    let n = 1 + rng.next() % 10
                    guard block + n <= 60 else { continue }
                    #expect(b.acceptBlocks(block, count: n, vcpu: v) == .ok && s.acceptBlocks(block, count: n, vcpu: v) == .ok, "\(what)")
                    block += n
                case 3:
                    // A 2M-aligned piece of the accepted range to shared, or a shared piece back to private.
                    if let last = shared.last, rng.next() % 2 == 0 {
                        #expect(b.convert(last.0, last.1, toPrivate: true) == .ok && s.convert(last.0, last.1, toPrivate: true) == .ok, "\(what)")
                        shared.removeLast()
                    } else if cursor >= 4 << 20 {
                        let chunks = cursor >> 21
                        let first = rng.next() % chunks, n = 1 + rng.next() % min(8, chunks - first)
                        #expect(b.convert(first << 21, n << 21, toPrivate: false) == .ok && s.convert(first << 21, n << 21, toPrivate: false) == .ok, "\(what)")
                        shared.append((first << 21, n << 21))
                    }
                case 4:
                    if b.vm.isInGuestMode(vcpu: v) { b.vm.halt(vcpu: v); s.vm.halt(vcpu: v); halts += 1 }
                    else { b.vm.wake(vcpu: v); s.vm.wake(vcpu: v) }
                default:
                    b.vm.forgetReplaySteps(); s.vm.forgetReplaySteps(); clears += 1
                }
                Self.expectSame(b, s, what)
            }
            #expect(b.vm.outcome == .ok && b.vm.checkInvariants().isEmpty, "seed \(seed)")
            #expect(s.vm.replayedChunks == 0)
            replayed += b.vm.replayedChunks
        }
        #expect(replayed > 0 && clears > 0 && halts > 0)
    }
}
