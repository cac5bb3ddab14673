import ArgumentParser
import CostModel
import Foundation
import MemoryModel
import Reports
import Simulation

struct Compare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Read a real guest's dmesg (and /proc/meminfo), run the model on what it shows, print model against real.")
    @Argument(help: "The guest's dmesg (dmesg, journalctl -k or a serial capture; partial logs are fine)") var log: String
    @Option(help: "The guest's /proc/meminfo, compared line by line") var meminfo: String?
    @OptionGroup var calibration: CalibrationOption

    func run() throws {
        let text = try readTextFile(log, what: "log", maxBytes: DmesgLog.maximumBytes)
        let parsed = DmesgLog.read(text)
        guard !parsed.lines.isEmpty else {
            throw CocomemError(.invalidArgument, "\(log): no kernel line compare can use (BIOS-e820, efi: mem, Zone ranges, Memory:, smp:, Linux version) in \(parsed.linesRead) lines")
        }
        let meminfoText = try meminfo.map { try readTextFile($0, what: "meminfo file", maxBytes: 1 << 20) }
        let derived = parsed.derive()
        let result = try BootSimulation(scenario: derived.scenario, calibration: calibration.load()).run()
        print(CompareReport.text(path: log, log: parsed, derived: derived, model: result, meminfo: meminfoText), terminator: "")
    }
}
