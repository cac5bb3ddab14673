import CostModel
import Testing
import Validation

@Suite struct PublishedFiguresTests {
    /// Every published figure of calibration/PUBLISHED.md that this issue
    /// covers is reproduced within 20% from the one built-in calibration.
    @Test func publishedFiguresWithinTolerance() throws {
        let rows = try PublishedFigures.evaluate(calibration: Calibration.builtIn())
        #expect(rows.count == 7)
        for row in rows { #expect(row.withinTolerance, "\(row.id): model \(row.model) vs published \(row.published)") }
    }
}
