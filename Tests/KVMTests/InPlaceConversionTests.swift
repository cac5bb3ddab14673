import CostModel
@testable import KVM
import MemoryModel
import Simulation
import Testing

/// guest_memfd in-place conversion (`policy=in-place`, issue 18 §2):
/// Ackerley Tng's series with Yan Zhao's TDX huge pages on top.
@Suite struct InPlaceConversionTests {
    func run(_ body: String, td: String = "td host=tdx-huge policy=in-place") throws -> HostRun {
        let r = try HostRun(try HostScenario.parse("\(td)\nslot id=1 base=0 pages=2048 backing=hugetlb-2m\nfinalize\n" + body),
                            calibration: try Calibration.builtIn(), log: true)
        try r.run()
        return r
    }

    /// Private to shared splits only the private mapping; the 2 MiB folio
    /// stays whole in the file (no folio split at all).
    @Test func toSharedSplitsTheMappingNotTheFolio() throws {
        let r = try run("accept 0x0+512 2m\nconvert 0x7+1 shared\ncheck")
        let vm = r.vm
        #expect(vm.outcome == .ok && vm.brokenOutcomes.isEmpty, "\(vm.brokenOutcomes)")
        #expect(!vm.attributes.isPrivate(GFN(7)))
        #expect(vm.counters[.splitsConversion] == 1 && vm.pages2M == 0 && vm.pages4K == 511)
        #expect(vm.counters[.foliosSplit] == 0 && vm.gmem.folioOrder.value(at: GFN(7)) == 9)
        // Back to private: nothing to merge, the folio never split.
        let back = vm.convert(GFN(7).only, toPrivate: true)
        #expect(back == .ok && vm.counters[.foliosMerged] == 0)
    }

    /// A host pin on a shared page makes the conversion to private fail
    /// with -EAGAIN, leaving the page shared; after unpin it succeeds.
    @Test func aPinnedSharedPageCannotBecomePrivate() throws {
        let r = try run("accept 0x0+512 2m\nconvert 0x7+2 shared\npin 0x8+1")
        let vm = r.vm
        #expect(vm.inPlace.pagesPinned == 1)
        let refused = vm.convert(Range(start: GFN(7), count: 2), toPrivate: true)
        #expect(refused == .ioctlError("EAGAIN: a shared page still has host references (pinned)"))
        #expect(!vm.attributes.isPrivate(GFN(7)) && !vm.attributes.isPrivate(GFN(8)) && vm.inPlace.refusedForReferences == 1)
        vm.hostUnpin(GFN(8).only)
        #expect(vm.convert(Range(start: GFN(7), count: 2), toPrivate: true) == .ok)
        #expect(vm.attributes.isPrivate(GFN(8)) && vm.checkInvariants().isEmpty)
    }

    /// A punched hole drops the file's pages and with them the host's
    /// references to them: the new folios convert freely.
    @Test func aPunchedHoleTakesThePinsWithIt() throws {
        let r = try run("accept 0x0+512 2m\nconvert 0x7+1 shared\npin 0x7+1\npunch 0x0+512")
        #expect(!r.vm.gmem.hasHostRefs(GFN(7).only))
        #expect(r.vm.convert(GFN(7).only, toPrivate: true) == .ok)
    }

    /// Private pages cannot be pinned: GUP through guest_memfd's mapping fails.
    @Test func aPrivatePageCannotBePinned() throws {
        let r = try run("accept 0x0+512 2m\npin 0x7+1")
        #expect(r.vm.inPlace.pinsRefused == 1 && r.vm.inPlace.pagesPinned == 0 && !r.vm.gmem.hasHostRefs(GFN(7).only))
        #expect(r.vm.outcome == .ok)
    }

    /// The VMM touching a private page gets SIGBUS; the VM goes on.
    @Test func hostMappingAPrivatePageIsSIGBUSNotACrash() throws {
        let r = try run("accept 0x0+512 2m\nconvert 0x7+1 shared\nhostmap 0x6+3\naccess 0x20")
        #expect(r.vm.inPlace.sigbus == 1 && !r.vm.isDead && r.vm.outcome == .ok)
        #expect(r.vm.log.contains { $0.contains("SIGBUS to the VMM (2 private pages)") })
        let shared = try run("accept 0x0+512 2m\nconvert 0x7+1 shared\nhostmap 0x7+1")
        #expect(shared.vm.inPlace.sigbus == 0)
    }

    /// One backing per page: converting and touching shared pages commits
    /// no more host memory, and the saving is the shared pages' count.
    @Test func sharedPagesAreBackedOnce() throws {
        let r = try run("accept 0x0+512 2m")
        let before = r.vm.gmem.allocatedPages
        #expect(r.vm.convert(Range(start: GFN(16), count: 4), toPrivate: false) == .ok)
        for g in 16..<20 { _ = r.vm.sharedFault(gfn: GFN(UInt64(g))) }
        #expect(r.vm.doubleBackingAvoidedPages == 4)
        // The shared pages are the file's own: no guest page added.
        #expect(before == 512 && r.vm.gmem.allocatedPages == before)
        let other = try run("accept 0x0+512 2m\nconvert 0x10+4 shared", td: "td host=tdx-huge policy=sept-first")
        #expect(other.vm.doubleBackingAvoidedPages == 0)
    }

    /// `vm-attributes=off`: KVM_SET_MEMORY_ATTRIBUTES on the VM is not there.
    @Test func vmWideAttributesAreOffInPlace() throws {
        let r = try run("accept 0x0+512 2m")
        #expect(!r.vm.options.vmWideAttributes)
        let o = r.vm.setMemoryAttributes(GFN(7).only, private: false)
        #expect(o != .ok && r.vm.attributes.isPrivate(GFN(7)))
    }

    /// The attributes switch and the policy must agree; the host's page
    /// commands exist only in place.
    @Test(arguments: [
        ("td host=tdx-huge policy=in-place vm-attributes=on", "needs vm-attributes=off"),
        ("td host=tdx-huge policy=zap-first vm-attributes=off", "needs policy=in-place"),
        ("td host=tdx-huge vm-attributes=maybe", "vm-attributes must be on or off"),
    ])
    func theAttributesSwitchMatchesThePolicy(_ td: String, _ message: String) {
        #expect { _ = try HostScenario.parse("\(td)\nslot id=1 base=0 pages=512") } throws: { "\($0)".contains(message) }
    }

    @Test func pinNeedsInPlace() {
        #expect { _ = try HostScenario.parse("td host=tdx-huge\nslot id=1 base=0 pages=512\npin 0x1") } throws: {
            "\($0)".contains("pin needs policy=in-place")
        }
    }

    /// The series' own fault points: the attribute allocation (step 1)
    /// fails before anything changes; a transient refcount fails the
    /// conversion to private.
    @Test func faultPointsFailWithNothingChanged() throws {
        let r = try run("accept 0x0+512 2m\ninject gmem-attributes-nomem\nconvert 0x7+1 shared")
        #expect(r.vm.attributes.isPrivate(GFN(7)) && r.vm.pages2M == 1 && r.vm.counters[.conversionsFailed] == 1)
        let t = try run("accept 0x0+512 2m\nconvert 0x7+1 shared\ninject gmem-safe-refcount\nconvert 0x7+1 private")
        #expect(!t.vm.attributes.isPrivate(GFN(7)) && t.vm.counters[.conversionsFailed] == 1)
    }

    /// The invariant: a private page with a host reference is reported.
    @Test func aHostReferenceOnAPrivatePageIsAViolation() throws {
        let r = try run("accept 0x0+512 2m")
        r.vm.gmem.addHostRefs(GFN(7).only, 1)
        #expect(r.vm.checkInvariants().contains { $0.contains("host reference on a private page") })
    }
}
