import ArgumentParser
import Firmware
import Foundation
import MemoryModel
import Reports
import Simulation

struct Accept: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the EFI stub and accept_memory() alone on a memory map and a list of calls; prints JSON.")
    @Option(help: "Memory map in the kernel's efi=debug format or JSON") var memmap: String
    @Option(help: "File with one 'start size' accept_memory() call per line") var calls: String?
    @Option(name: .customLong("get-memory-map"), help: "How the firmware returns its map to the stub: unmerged (the map as given, one process_unaccepted_memory() per Unaccepted descriptor) or edk2 (equal neighbours merged, as CoreGetMemoryMap() does)")
    var getMemoryMap: GetMemoryMapStyle = .unmerged
    @Flag(help: "Accepted like every command's --json; the output is always JSON") var json = false
    @OptionGroup var calibration: CalibrationOption

    func run() throws {
        let m = try readTextFile(memmap, what: "memory map", maxBytes: AcceptTool.maximumFileBytes)
        var cs: [(UInt64, UInt64)] = []
        if let calls {
            cs = try AcceptTool.parseCalls(readTextFile(calls, what: "calls file", maxBytes: AcceptTool.maximumFileBytes))
        }
        let out = try AcceptTool.run(map: AcceptTool.parseMap(m), calls: cs, calibration: calibration.load(), getMemoryMap: getMemoryMap)
        print(out.json.serialized(pretty: true))
    }
}
