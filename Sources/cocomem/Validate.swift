import ArgumentParser
import Reports
import Simulation
import Validation

struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Compare the model with published measurements; exit 1 if one is out of tolerance.")
    @OptionGroup var calibration: CalibrationOption

    func run() throws {
        let rows = try PublishedFigures.evaluate(calibration: calibration.load())
        print(PublishedFigures.table(rows), terminator: "")
        if rows.contains(where: { !$0.withinTolerance }) { throw ExitCode(1) }
    }
}
