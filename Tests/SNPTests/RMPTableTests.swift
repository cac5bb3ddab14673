import MemoryModel
import SNP
import Testing

/// The RMP instructions (`RMPTable`), as arch/x86/virt/svm/sev.c and the
/// APM describe them.
@Suite struct RMPTableTests {
    let asid: UInt32 = 1
    func h(_ v: UInt64) -> HostFrameNumber { HostFrameNumber(v) }
    func g(_ v: UInt64) -> GuestFrameNumber { GuestFrameNumber(v) }

    /// A 2M RMPUPDATE over an assigned 4K entry, and a 4K one inside an
    /// assigned 2M entry, fail with FAIL_OVERLAP and change nothing.
    @Test func overlappingUpdatesFail() {
        var t = RMPTable()
        #expect(t.makePrivate(h(0x205), gfn: g(0x5), level: .size4K, asid: asid) == .success)
        #expect(t.makePrivate(h(0x200), gfn: g(0), level: .size2M, asid: asid) == .failOverlap)
        #expect(t.makePrivate(h(0x400), gfn: g(0x200), level: .size2M, asid: asid) == .success)
        #expect(t.makePrivate(h(0x401), gfn: g(0x201), level: .size4K, asid: asid) == .failOverlap)
        #expect(t.makeShared(h(0x401), level: .size4K) == .failOverlap)
        #expect(t.lookup(h(0x401)).pageSize2M && t.lookup(h(0x401)).gfn(at: h(0x401)) == g(0x201))
        #expect(t.makePrivate(h(0x401), gfn: g(0x201), level: .size2M, asid: asid) == .failInput)
    }

    /// PSMASH keeps every field but the page size, on all 512 entries, and
    /// fails on a 4K or unassigned page.
    @Test func psmashKeepsValidatedAndGPA() {
        var t = RMPTable()
        _ = t.makePrivate(h(0x400), gfn: g(0x200), level: .size2M, asid: asid)
        #expect(t.pvalidate(h(0x400), gfn: g(0x200), level: .size2M, validate: true, asid: asid) == .result(.success))
        #expect(t.psmash(h(0x5ff)) == .success)
        let e = t.lookup(h(0x5ff))
        #expect(!e.pageSize2M && e.assigned && e.validated && e.gfn(at: h(0x5ff)) == g(0x3ff))
        #expect(t.runs(in: h(0x400)..<h(0x600)).count == 1)
        #expect(t.psmash(h(0x400)) == .failInput)
        #expect(t.psmash(h(0x800)) == .failInput)
    }

    /// PVALIDATE: a 4K on a 2M entry is a size-mismatch #NPF, a 2M on 4K
    /// entries FAIL_SIZEMISMATCH, a page of another GPA or ASID an RMP
    /// #NPF, a second validation CF=1 (no update).
    @Test func pvalidateOutcomes() {
        var t = RMPTable()
        _ = t.makePrivate(h(0x400), gfn: g(0x200), level: .size2M, asid: asid)
        _ = t.makePrivate(h(0x600), gfn: g(0x400), level: .size4K, asid: asid)
        #expect(t.pvalidate(h(0x401), gfn: g(0x201), level: .size4K, validate: true, asid: asid) == .npfSizeMismatch)
        #expect(t.pvalidate(h(0x600), gfn: g(0x400), level: .size2M, validate: true, asid: asid) == .result(.failSizeMismatch))
        #expect(t.pvalidate(h(0x600), gfn: g(0x401), level: .size4K, validate: true, asid: asid) == .npfRMPViolation)
        #expect(t.pvalidate(h(0x600), gfn: g(0x400), level: .size4K, validate: true, asid: 2) == .npfRMPViolation)
        #expect(t.pvalidate(h(0x600), gfn: g(0x400), level: .size4K, validate: true, asid: asid) == .result(.success))
        #expect(t.pvalidate(h(0x600), gfn: g(0x400), level: .size4K, validate: true, asid: asid) == .result(.noUpdate))
        #expect(t.pvalidate(h(0x800), gfn: g(0x600), level: .size4K, validate: true, asid: asid) == .npfRMPViolation)
    }

    /// RMPUPDATE clears Validated and the VMPL permissions RMPADJUST gave;
    /// RMPADJUST needs a validated page.
    @Test func rmpadjustNeedsValidationAndRMPUpdateClearsIt() {
        var t = RMPTable()
        _ = t.makePrivate(h(0x600), gfn: g(0x400), level: .size4K, asid: asid)
        #expect(t.rmpadjust(h(0x600), gfn: g(0x400), level: .size4K, vmpl: 1, perms: 0xf, asid: asid) == .result(.failPermission))
        _ = t.pvalidate(h(0x600), gfn: g(0x400), level: .size4K, validate: true, asid: asid)
        #expect(t.rmpadjust(h(0x600), gfn: g(0x400), level: .size4K, vmpl: 2, perms: 0x3, asid: asid) == .result(.success))
        #expect(t.lookup(h(0x600)).perms(vmpl: 2) == 0x3 && t.lookup(h(0x600)).perms(vmpl: 1) == 0)
        #expect(t.makeShared(h(0x600), level: .size4K) == .success)
        #expect(t.makePrivate(h(0x600), gfn: g(0x400), level: .size4K, asid: asid) == .success)
        #expect(!t.lookup(h(0x600)).validated && t.lookup(h(0x600)).vmplPerms == 0)
    }
}
