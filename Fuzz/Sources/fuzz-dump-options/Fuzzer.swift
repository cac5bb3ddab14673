import Fuzzing

/// libFuzzer's entry point for `FuzzTarget.dumpOptions` (docs/RELIABILITY.md, "Fuzzing").
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    FuzzTarget.dumpOptions.libFuzzerInput(data, size)
}
