import CrashDump
import Foundation
import GuestKernel
@testable import Reports
import Simulation
import Testing
import TestSupport

@Suite struct DumpFiguresTests {
    /// The filter at each level on a real small guest: a level whose bits
    /// include another's keeps no more pages; -d 0 keeps every page; 1.7.8
    /// removes the unaccepted blocks under bit 16 that 1.7.7 keeps.
    @Test func levelsRemoveMoreAsBitsAreAdded() throws {
        // 6.16 types the unaccepted blocks' heads and says so in VMCOREINFO (seed 000's mechanism).
        let image = try smallGuestImage(memory: 2 << 30, kernel: .v6_16)
        let levels = [0, 1, 2, 4, 8, 16, 31]
        let c = try image.levelComparison(levels: levels, versions: [.v1_7_7, .v1_7_8])
        func kept(_ l: Int, _ v: MakedumpfileVersion) -> UInt64 { c.first { $0.dumpLevel == l && $0.version == v }!.keptPages }
        #expect(kept(0, .v1_7_8) == c[0].totalPages)
        for a in levels { for b in levels where a & b == a { #expect(kept(b, .v1_7_8) <= kept(a, .v1_7_8), "-d \(b) keeps more than -d \(a)") } }
        #expect(kept(16, .v1_7_8) < kept(16, .v1_7_7))
        let html = DumpFigures.levels(c, runLevel: 31, runVersion: .v1_7_8, zeroPages: 7)
        #expect(xmlError("<div>" + html + "</div>") == nil)
        #expect(html.contains("-d 31, makedumpfile 1.7.8 (this run)"))
        #expect(html.contains("-d 0, makedumpfile 1.7.7, 1.7.8"))
        #expect(html.contains("-d 16, makedumpfile 1.7.7<"))
    }

    @Test func compositionAddsUpToTheVmcore() throws {
        let image = try smallGuestImage()
        let r = try DumpTool.run(image: image, options: DumpOptions(dumpLevel: 31, compression: .none, makedumpfile: .v1_7_8, threads: 1),
                                 elf: nil, output: nil, estimateOnly: true)
        let html = DumpFigures.composition(r.report.pagesByClass)
        #expect(xmlError("<div>" + html + "</div>") == nil)
        var sum: UInt64 = 0
        var rest = html[...]
        while let d = rest.range(of: "data-pages=\"") {
            sum += UInt64(rest[d.upperBound...].prefix { $0 != "\"" })!
            rest = rest[d.upperBound...]
        }
        #expect(sum == r.report.totalPages)
        #expect(html.contains("unaccepted"))
    }
}
