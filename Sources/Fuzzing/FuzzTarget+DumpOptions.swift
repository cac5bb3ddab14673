import CrashDump
import Foundation
import MemoryModel
import Simulation

extension FuzzTarget {
    /// `cocomem dump --input tiny.vmcore -o OUT` with the options the text
    /// gives, in makedumpfile's spelling as the dump command takes them
    /// (`-d LEVEL`, `-c`/`-l`/`-p`/`-z`, `-E`, `-f`, `--makedumpfile V`,
    /// `--num-threads N`, `--estimate`, `--sample N`), separated by
    /// whitespace. Values reach the library as the command line hands them
    /// over (numbers unchecked), so the library's own checks are what is
    /// fuzzed. The dump is written to a scratch file (removed first, so
    /// `-f` or its absence both write) and its size must be what the report says.
    static func dumpOptions(_ text: String) throws {
        let o = try DumpCommandOptions(parsing: text)
        let image = GuestMemoryImage(input: try ELFInput(path: try tinyVmcorePath()))
        let output = ScratchFile.shared.directory + "/dump.out"
        unlink(output)
        let options = DumpOptions(dumpLevel: o.level, compression: o.compression, makedumpfile: try MakedumpfileVersion.parse(o.makedumpfile), threads: o.threads)
        let sampling = o.sample.map { EstimateSampling(pagesPerStratum: $0, seed: 0) }
        let r = try DumpTool.run(image: image, options: options, elf: nil, output: o.estimate ? nil : output, estimateOnly: o.estimate,
                                 sampling: sampling, elfDump: o.elfDump, force: o.force)
        checkReport(r.report, image: image, what: "dump of tiny.vmcore")
        if !o.estimate {
            var st = stat()
            guard stat(output, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, UInt64(st.st_size) == r.report.fileSize else {
                violated("dump '\(text)': the report says \(r.report.fileSize) bytes, the file has \(st.st_size)")
            }
        }
    }

    /// The dump command's options, read from one line the way the command
    /// line hands them to `DumpTool` (ArgumentParser's conversions: an `Int`
    /// option takes any integer; at most one of `-c -l -p -z`).
    struct DumpCommandOptions {
        var level = 1, threads = 1, sample: Int? = nil
        var compression = DumpCompression.none
        var makedumpfile = "1.7.8"
        var elfDump = false, force = false, estimate = false

        init(parsing text: String) throws {
            var words = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }).map(String.init)[...]
            func value(_ flag: String) throws -> String {
                guard let v = words.popFirst() else { throw CocomemError(.invalidArgument, "Missing value for '\(flag)'") }
                return v
            }
            func int(_ flag: String) throws -> Int {
                let v = try value(flag)
                guard let n = Int(v) else { throw CocomemError(.invalidArgument, "The value '\(v)' is invalid for '\(flag)'") }
                return n
            }
            var compressors: [DumpCompression] = []
            while let w = words.popFirst() {
                switch w {
                case "-d": level = try int(w)
                case "-c": compressors.append(.zlib)
                case "-l": compressors.append(.lzo)
                case "-p": compressors.append(.snappy)
                case "-z": compressors.append(.zstd)
                case "-E": elfDump = true
                case "-f", "--force": force = true
                case "--estimate": estimate = true
                case "--makedumpfile": makedumpfile = try value(w)
                case "--num-threads": threads = try int(w)
                case "--sample": sample = try int(w)
                default: throw CocomemError(.invalidArgument, "Unknown option '\(w)'")
                }
            }
            guard compressors.count <= 1 else { throw CocomemError(.invalidArgument, "choose at most one of -c, -l, -p, -z") }
            compression = compressors.first ?? .none
            if let s = sample, s < 2 || s > 1 << 24 { throw CocomemError(.invalidArgument, "--sample \(s) is not between 2 and 16777216 pages") }
        }
    }

    nonisolated(unsafe) static var tinyVmcoreFile: String? = nil

    /// The tiny vmcore, written once to the scratch directory.
    static func tinyVmcorePath() throws -> String {
        if let p = tinyVmcoreFile { return p }
        let p = ScratchFile.shared.directory + "/tiny.vmcore"
        try Data(try tinyVmcore()).write(to: URL(fileURLWithPath: p))
        tinyVmcoreFile = p
        return p
    }
}
