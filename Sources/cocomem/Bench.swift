import ArgumentParser
import Simulation

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Time the simulator itself (wall clock, peak memory) on large guests.")
    @Option(help: "Sizes to boot") var sizes = "4G,64G,1T,4T"
    @Option(help: "Instead of booting: time the host model (fault in + accept at 2M and 4K, 10% conversions) on a TD of this size") var host: String?

    func run() throws {
        if let h = host { print(try BenchRunner.runHost(size: h), terminator: ""); return }
        print(try BenchRunner.run(sizes: sizes.split(separator: ",").map(String.init)), terminator: "")
    }
}
