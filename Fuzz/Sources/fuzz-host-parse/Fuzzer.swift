import Foundation
import Fuzzing
import LibFuzzer

/// libFuzzer's entry point for `FuzzTarget.hostParse` (docs/RELIABILITY.md, "Fuzzing").
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    FuzzTarget.hostParse.libFuzzerInput(data, size)
}

/// Hands the command line (libFuzzer's flags, corpus directories) to libFuzzer's driver.
@main struct Fuzzer {
    static func main() {
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv, fuzz))
    }
}
