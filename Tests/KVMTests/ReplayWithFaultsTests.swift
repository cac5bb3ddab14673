import CoCoGuest
import CostModel
@testable import KVM
import MemoryModel
import TDXModule
import Testing

/// Bulk replay beside the host's injected failures and refusals (found by
/// the `host` fuzzer, issue 15): a frame the host refuses to AUG must not
/// be replayed as accepted, and a failure armed only at conversion points
/// must not make every accept step page by page. Each is held equal to
/// stepping every TDCALL.
@Suite struct ReplayWithFaultsTests {
    static let chunks: UInt64 = 48

    /// A 4K-mapped TD of `chunks` 2M chunks, prepared by `setUp`, accepted
    /// by TDVF at 2M (edk2) in bulk or stepping: the outcome and the VM.
    static func accepted(step: Bool, setUp: (TDXVM) -> Void) throws -> (AcceptOutcome, TDXVM, PhaseClock) {
        let costs = CostTable(try Calibration.builtIn())
        let slot = Memslot(id: 1, baseGFN: GFN(0), pages: chunks * PageLevel.size2M.pages, backing: .buddy)
        let vm = try TDXVM(options: .upstream4K, features: TDXModuleFeatures(), vcpus: 2, slots: [slot], costs: costs)
        vm.finalize()
        vm.logEnabled = !step
        setUp(vm)
        let edk2 = TDXAcceptor(host: vm, driver: .edk2(pageSize: .size2M), costs: costs)
        edk2.stepByStep = step
        var clock = PhaseClock(vcpus: 2)
        let o = edk2.accept(AddressRange(frames: slot.frames), vcpu: 0, clock: &clock)
        return (o, vm, clock)
    }

    /// `refuse-aug` on one frame of a later chunk: its ACCEPT never gets a
    /// page, so TDVF's accept fails there, in bulk as when stepping. (Bulk
    /// replay gave every chunk the first chunk's memo and accepted the
    /// refused frame.)
    @Test(arguments: [5, 17, 47] as [UInt64])
    func refusedFrameInALaterChunkIsNotReplayed(chunk: UInt64) throws {
        let refused = GFN(chunk * PageLevel.size2M.pages + 3)
        let setUp: (TDXVM) -> Void = { $0.hostRefuseAUG(refused.only) }
        let (bulk, bulkVM, bulkClock) = try Self.accepted(step: false, setUp: setUp)
        let (step, stepVM, stepClock) = try Self.accepted(step: true, setUp: setUp)
        // TDVF's 2M accept of the chunk falls back to its 512 4K pages and fails at the refused one;
        // the model reports the 2M page TdAcceptPages was asked for.
        #expect(bulk == .terminated("TDVF: TdAcceptPages failed at \(GFN(chunk * PageLevel.size2M.pages).address)"))
        #expect(bulk == step)
        #expect(ReplayAcrossRegionsTests.summary(bulkVM) == ReplayAcrossRegionsTests.summary(stepVM))
        #expect(bulkClock.counts == stepClock.counts)
        #expect(bulkClock.counts[.tdxAccept4KSuccess] == chunk * PageLevel.size2M.pages + 3)
    }

    /// A failure armed at a conversion point (`shared-refcount`) cannot fire
    /// while private chunks are accepted: the accept replays (it stepped
    /// all 512 TDCALLs of every chunk), equals stepping, and leaves the
    /// failure armed for the conversion that reaches it.
    @Test func conversionFailureArmedDoesNotStopReplay() throws {
        let setUp: (TDXVM) -> Void = { $0.faults.inject(.sharedRefcountBusy) }
        let (bulk, bulkVM, bulkClock) = try Self.accepted(step: false, setUp: setUp)
        let (step, stepVM, stepClock) = try Self.accepted(step: true, setUp: setUp)
        #expect(bulk == .ok && step == .ok)
        #expect(ReplayAcrossRegionsTests.summary(bulkVM) == ReplayAcrossRegionsTests.summary(stepVM))
        #expect(bulkClock.counts == stepClock.counts)
        #expect(bulkVM.log.contains { $0.hasPrefix("replayed ") })
        #expect(bulkVM.faults.isArmed && bulkVM.faults.firedCount == 0)
        // The failure is at shared-to-private (`convertToPrivate`): the first conversion back fails.
        for vm in [bulkVM, stepVM] {
            #expect(vm.convertInPieces(Range(raw: 0..<512), toPrivate: false, stepByStep: false) == .ok)
            #expect(vm.convertInPieces(Range(raw: 0..<512), toPrivate: true, stepByStep: false) != .ok)
            #expect(vm.faults.firedCount == 1)
        }
    }

    /// A failure the accept path reaches (`aug-busy`) still steps: it
    /// fires on the first AUG, and the accept equals stepping.
    @Test func acceptPathFailureArmedEqualsStepping() throws {
        let setUp: (TDXVM) -> Void = { $0.faults.inject(.augBusy, times: 2) }
        let (bulk, bulkVM, bulkClock) = try Self.accepted(step: false, setUp: setUp)
        let (step, stepVM, stepClock) = try Self.accepted(step: true, setUp: setUp)
        #expect(bulk == step)
        #expect(ReplayAcrossRegionsTests.summary(bulkVM) == ReplayAcrossRegionsTests.summary(stepVM))
        #expect(bulkClock.counts == stepClock.counts)
        #expect(bulkVM.faults.firedCount == 2)
    }
}
