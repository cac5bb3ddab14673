import Fuzzing

/// libFuzzer's entry point for `FuzzTarget.calls` (docs/RELIABILITY.md, "Fuzzing").
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    FuzzTarget.calls.libFuzzerInput(data, size)
}
