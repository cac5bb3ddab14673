import Firmware
import MemoryModel
import Testing

/// edk2 stable tags against tianocore/edk2's history (docs/VERSIONS.md).
@Suite struct EDK2ReleaseTests {
    @Test(arguments: EDK2Release.knownTags.dropFirst())
    func tagsFrom202302RunTheUpstreamGenerations(tag: String) throws {
        let r = try EDK2Release.parse(tag)
        #expect(r.tag == tag)
        #expect(r.generation(tdx: true) == .tdvf)
        #expect(r.generation(tdx: false) == .ovmfSNP)
    }

    /// b15f98e68f (PR 11525) is in edk2-stable202511 and later only.
    @Test func oddSizeFixFrom202511() throws {
        #expect(try !EDK2Release.parse("edk2-stable202508.01").hasOddSizeBelow2816MFix)
        #expect(try EDK2Release.parse("edk2-stable202511").hasOddSizeBelow2816MFix)
        #expect(try EDK2Release.parse("edk2-stable202605").hasOddSizeBelow2816MFix)
        #expect(try !EDK2Release.parse("edk2-stable202302").hasOddSizeBelow2816MFix)
    }

    @Test(arguments: [
        ("edk2-stable202211", "is not modelled"), ("edk2-stable202208", "is older than edk2-stable202211"),
        ("edk2-stable202608", "nearest known: edk2-stable202605"), ("edk2-stable202303", "nearest known: edk2-stable202302, edk2-stable202305"),
        ("seabios", "is neither a generation"), ("", "is neither a generation"),
    ])
    func rejects(text: String, message: String) {
        do {
            _ = try EDK2Release.parse(text)
            Issue.record("'\(text)' parsed")
        } catch let e as CocomemError {
            #expect(e.code == .invalidArgument)
            #expect(e.message.contains(message), "\(e.message)")
        } catch { Issue.record("\(error)") }
    }
}
