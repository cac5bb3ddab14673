import Foundation
import CostModel
import CrashDump
import Firmware
import MemoryModel
import Simulation
import Sweep

/// The parsers the coverage-guided fuzzers drive (issue 15): one case per
/// input kind a user can hand cocomem. `run(_:)` feeds the bytes through the
/// same path the command line takes for that input and then checks what came
/// out: invariants of the parsed value and, where cocomem has a printer, the
/// round trip parse → print → parse. A refused input throws the parser's
/// `CocomemError` (the one `error:` line the CLI prints); a violated
/// invariant is a `fatalError` naming it, which libFuzzer reports as a crash.
///
/// The fuzz executables (`Fuzz/`, built with `-sanitize=fuzzer`, run by
/// `scripts/fuzz.sh`) are one line around this; the normal test suite feeds
/// the committed seeds and every minimised crash input
/// (`Tests/Fixtures/fuzz-regressions/TARGET/`) through the same function.
public enum FuzzTarget: String, CaseIterable, Sendable {
    /// `ByteCount.parse` / `parseGuestMemory` (`--memory`, `--boot-alloc`, every size option).
    case size
    /// `cocomem accept --memmap`: the map as `efi=debug` prints it, or JSON, then the EFI stub on it.
    case memmap
    /// `cocomem accept --calls`: `accept_memory(start, size)` lines run on an 8 GiB TD's map.
    case calls
    /// `cocomem host FILE`: the host command language, parsed and run on KVM's TDX MMU.
    case host
    /// `cocomem host FILE`: the host command language parsed alone (`HostScenario.parse`),
    /// without the run `host` does after it, so the parser gets its millions of inputs.
    case hostParse = "host-parse"
    /// `cocomem run FILE`: the YAML (or JSON) scenario file.
    case scenario
    /// `cocomem sweep FILE`: a scenario file with lists and ranges; its first and last points.
    case sweep
    /// `--calibration FILE`: the cost file, loaded and turned into the cost table.
    case calibration
    /// `cocomem dump --input FILE -d 31`: the ELF vmcore, its VMCOREINFO and the struct-page walk through its page tables.
    case elf
    /// `cocomem dump --input tiny.vmcore` with makedumpfile-style options (`-d 31 -c --num-threads 2 -E ...`), writing the dump.
    case dumpOptions = "dump-options"
    /// `cocomem compare LOG`: a pasted guest dmesg, read and the scenario derived from it.
    case dmesg

    /// Runs one input. Returns normally for an accepted input, throws the
    /// parser's `CocomemError` for a refused one, and stops the process
    /// with `fatalError` when an accepted input breaks an invariant.
    /// - Complexity: that of the parser and the run it feeds; every loop is
    ///   bounded by the input's size or a limit the parser states.
    public func run(_ data: [UInt8]) throws {
        switch self {
        case .size: try Self.size(Self.text(data))
        case .memmap: try Self.memmap(Self.text(data))
        case .calls: try Self.calls(Self.text(data))
        case .host: try Self.host(Self.text(data))
        case .hostParse: try Self.hostParse(Self.text(data))
        case .scenario: try Self.scenario(Self.text(data))
        case .sweep: try Self.sweep(Self.text(data))
        case .calibration: try Self.calibration(data)
        case .elf: try Self.elf(data)
        case .dumpOptions: try Self.dumpOptions(Self.text(data))
        case .dmesg: try Self.dmesg(Self.text(data))
        }
    }

    /// Text inputs are decoded as the CLI's reader (`readTextFile`) decodes
    /// files: UTF-8 or refused.
    static func text(_ data: [UInt8]) throws -> String {
        guard let t = String(bytes: data, encoding: .utf8) else { throw CocomemError(.io, "cannot read fuzz input: not UTF-8 text") }
        return t
    }

    /// Stops the fuzzer: an accepted input produced a value that breaks `what`.
    static func violated(_ what: String) -> Never { fatalError("fuzz invariant violated: \(what)") }
}

extension FuzzTarget {
    /// libFuzzer's `LLVMFuzzerTestOneInput` body for this target: runs the
    /// input; a refusal (`CocomemError`) is a normal outcome and returns 0.
    /// Any other thrown error breaks the promise of one clear error (every
    /// refusal is a `CocomemError`), so it stops the fuzzer like a trap.
    public func libFuzzerInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
        let bytes = data.map { [UInt8](UnsafeBufferPointer(start: $0, count: size)) } ?? []
        do { try run(bytes) } catch is CocomemError { return 0 } catch {
            Self.violated("\(rawValue): an input was refused with \(type(of: error)), not a CocomemError: \(error)")
        }
        return 0
    }
}
