import ArgumentParser
import CostModel
import Reports
import Simulation
import Validation

struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Compare the model with published measurements; exit 1 if one is out of tolerance.")
    @OptionGroup var calibration: CalibrationOption

    func run() throws {
        // Each figure under the profile it was measured on, unless --profile
        // puts every figure under one; each profile is loaded once.
        var loaded: [String: Calibration] = [:]
        let rows = try PublishedFigures.evaluate { figureProfile in
            let name = calibration.profile ?? figureProfile
            if let c = loaded[name] { return c }
            let c = try calibration.load(profile: name)
            loaded[name] = c
            return c
        }
        print(PublishedFigures.table(rows), terminator: "")
        if rows.contains(where: { !$0.withinTolerance }) { throw ExitCode(1) }
    }
}
