import CostModel
import CrashDump
import Foundation
import MemoryModel
import Reports
import Simulation

/// makedumpfile's own command line for converting a vmcore file, as
/// `cocomem dump` takes it: `dump --input IN -o OUT` with any of `-d LEVEL`,
/// one of `-c -l -p -z -E`, `--makedumpfile VERSION`, `--num-threads N` and
/// `-f`, each once, each value a separate word. Such a line is recognised
/// before ArgumentParser and run without it: building `Dump`'s argument tree
/// by reflection (`Mirror`, and a `swift_conformsToProtocol` scan of every
/// conformance record for each type it meets) was about 7 ms of a conversion
/// that makedumpfile starts in 1 ms (docs/PERFORMANCE.md, session 14).
///
/// Anything else (another spelling such as `-d31` or `--input=IN`, a value
/// that starts with `-`, a repeated option, two compressors, any other
/// option) is not recognised, and ArgumentParser parses the line as before,
/// so help, errors and every other command are unchanged. A recognised line
/// runs exactly what `Dump.run()` runs for it (`run()` below).
struct DumpConversion {
    var input: String
    var output: String
    var level = 1
    var compression = DumpCompression.none
    var elfDump = false
    var makedumpfile = "1.7.8"   // Dump's default
    var threads: Int?
    var force = false

    /// The line's words after the program name; nil where it is not
    /// exactly the form above.
    init?(arguments: [String]) {
        guard arguments.first == "dump" else { return nil }
        var input: String?, output: String?, level: Int?, makedumpfile: String?, threads: Int?
        var flags: Set<String> = []
        var i = 1
        // The word after an option, when it is a plain value.
        func value() -> String? {
            guard i + 1 < arguments.count else { return nil }
            let v = arguments[i + 1]
            guard !v.isEmpty, !v.hasPrefix("-") else { return nil }
            i += 2
            return v
        }
        func number(_ v: String?) -> Int? {
            guard let v, v.count <= 9, v.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
            return Int(v)
        }
        while i < arguments.count {
            switch arguments[i] {
            case "--input":
                guard input == nil, let v = value() else { return nil }
                input = v
            case "-o", "--output":
                guard output == nil, let v = value() else { return nil }
                output = v
            case "-d":
                guard level == nil, let v = number(value()) else { return nil }
                level = v
            case "--makedumpfile":
                guard makedumpfile == nil, let v = value() else { return nil }
                makedumpfile = v
            case "--num-threads":
                guard threads == nil, let v = number(value()) else { return nil }
                threads = v
            case let flag where ["-c", "-l", "-p", "-z", "-E", "-f", "--force"].contains(flag):
                let name = flag == "--force" ? "-f" : flag
                guard flags.insert(name).inserted else { return nil }
                i += 1
            default:
                return nil
            }
        }
        // Dump.validate(): at most one compressor.
        let compressors: [(String, DumpCompression)] = [("-c", .zlib), ("-l", .lzo), ("-p", .snappy), ("-z", .zstd)]
        let chosen = compressors.filter { flags.contains($0.0) }
        guard let input, let output, chosen.count <= 1 else { return nil }
        self.input = input
        self.output = output
        self.level = level ?? 1
        self.compression = chosen.first?.1 ?? .none
        self.elfDump = flags.contains("-E")
        self.makedumpfile = makedumpfile ?? self.makedumpfile
        self.threads = threads
        self.force = flags.contains("-f")
    }

    /// What `Dump.run()` does for this line: no report, trace, strip or
    /// JSON, the built-in calibration, progress on a terminal only.
    func run() throws {
        let version = try MakedumpfileVersion.parse(makedumpfile)
        let options = DumpOptions(dumpLevel: level, compression: compression, makedumpfile: version,
                                  threads: threads ?? ProcessInfo.processInfo.activeProcessorCount)
        let progress = ProgressOption.reporter(nil)
        let image = GuestMemoryImage(input: try ELFInput(path: input))
        var result = try DumpTool.run(image: image, options: options, elf: nil, output: output, estimateOnly: false, sampling: nil,
                                      elfDump: elfDump, force: force, progress: progress)
        result.record = RunRecord()
        result.makedumpfileCPU = DumpTool.makedumpfileCPU(result.report, compression: compression, calibration: try Calibration.builtIn(profile: nil))
        print(result.text, terminator: "")
    }
}
