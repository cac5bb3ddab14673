import CrashDump
import GuestKernel
import MemoryModel
import Simulation
import TestSupport
import Testing

/// makedumpfile releases map to the filter profiles by what changed in
/// makedumpfile's history (docs/VERSIONS.md).
@Suite struct MakedumpfileVersionTests {
    @Test(arguments: [("1.7.2", MakedumpfileVersion.v1_7_2), ("1.7.7", .v1_7_7), ("1.7.8", .v1_7_8), ("1.7.9", .v1_7_8), ("dev", .v1_7_8)])
    func releasesRunTheirProfile(text: String, profile: MakedumpfileVersion) throws {
        let v = try MakedumpfileVersion.parse(text)
        #expect(v.rawValue == text)
        #expect(v.profile == profile)
        // Only the development branch has f50c015.
        #expect(v.readsCompoundInfo == (text == "dev"))
    }

    @Test(arguments: ["1.7.3", "1.7.4", "1.7.5", "1.7.6"])
    func releasesWithoutAProfileAreRejectedWithTheReason(text: String) {
        #expect(throws: CocomemError(.invalidArgument, "makedumpfile \(text) is not modelled: it has the 6.3/6.6 compound-page fixes 1.7.2 lacks but not 1.7.7's 6.12 typed-page detection (72c3414), so it filters 6.12+ struct pages unlike any modelled release; nearest modelled: 1.7.2, 1.7.7")) {
            try MakedumpfileVersion.parse(text)
        }
    }

    @Test(arguments: ["1.6", "1.7.10", "v1.7.8", "1.7", ""])
    func unknownReleasesListTheKnownOnes(text: String) {
        #expect(throws: CocomemError(.invalidArgument, "makedumpfile '\(text)' is not a release cocomem knows; known: 1.7.2, 1.7.7, 1.7.8, 1.7.9, dev")) {
            try MakedumpfileVersion.parse(text)
        }
    }

    /// 1.7.9 is 1.7.8 plus a version bump: the same pages are excluded, and
    /// both exclude unaccepted blocks that 1.7.7 keeps.
    @Test func release1_7_9FiltersAs1_7_8() throws {
        let img = try smallGuestImage(memory: 2 << 30, kernel: .v6_16)
        func estimate(_ v: MakedumpfileVersion) throws -> DumpReport {
            try KdumpCompressedWriter(image: img, options: DumpOptions(dumpLevel: 31, makedumpfile: v)).estimate()
        }
        #expect(try estimate(.v1_7_9) == estimate(.v1_7_8))
        #expect(try estimate(.v1_7_9).fileSize < estimate(.v1_7_7).fileSize)
    }
}
