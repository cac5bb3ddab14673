import Fuzzing

/// libFuzzer's entry point for `FuzzTarget.scenario` (docs/RELIABILITY.md, "Fuzzing").
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    FuzzTarget.scenario.libFuzzerInput(data, size)
}
