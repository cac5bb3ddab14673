import MemoryModel
import Testing
@testable import Simulation

/// `YAMLKeyGuard`: keys that are collections are refused before Yams'
/// duplicate-key check, whose comparison is exponential in their depth;
/// `?` and brackets that are content (comments, quotes, block scalars) pass.
struct YAMLKeyGuardTests {
    @Test(arguments: [
        "? a\n: b\n",
        "steps:\n  - ? - x\n    : y\n",
        "a: 1\n?\n",
        "x: " + String(repeating: "[", count: YAMLKeyGuard.maximumFlowDepth + 1) + String(repeating: "]", count: YAMLKeyGuard.maximumFlowDepth + 1) + "\n",
    ])
    func collectionKeysAreRefusedWithTheLine(text: String) {
        let e = #expect(throws: CocomemError.self) { try YAMLKeyGuard.check(text, name: "f") }
        #expect(e?.message.hasPrefix("f line ") == true, "\(e?.message ?? "")")
    }

    @Test(arguments: [
        "name: why? because\n",
        "# ? a comment\nmemory: 4G\n",
        "title: '? quoted'\nother: \"? [[[\"\n",
        "steps:\n  - host:\n      commands: |\n        ? not a key here\n        [[[[[[[[[[[[[[[[[[[[\n      log: true\n",
        "text: >-\n  ? folded\nnext: 1\n",
        "axes: [[1, 2], [3, 4]]\n",
        "owner: don't ? mind\n",
    ])
    func contentIsNotStructure(text: String) throws {
        try YAMLKeyGuard.check(text, name: "f")
    }

    /// The file the `scenario` fuzzer hung on (minutes in a debug or fuzz
    /// build) is one error line.
    @Test func theFuzzersHangIsRefused() {
        let text = String(repeating: "?  -  ?  -  ", count: 40) + "x\nsteps: []\n"
        // Yams alone would read this without a guard (its duplicate-key
        // error or minutes of comparisons); the guard's own reason must be it.
        let e = #expect(throws: CocomemError.self) { try ScenarioFile.parse(text, name: "f") }
        #expect(e?.message.contains("explicit mapping key") == true, "\(e?.message ?? "")")
    }
}
