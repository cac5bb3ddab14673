import Fuzzing

/// libFuzzer's entry point for `FuzzTarget.calibration` (docs/RELIABILITY.md, "Fuzzing").
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    FuzzTarget.calibration.libFuzzerInput(data, size)
}
