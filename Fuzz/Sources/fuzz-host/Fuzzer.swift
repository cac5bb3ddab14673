import Fuzzing

/// libFuzzer's entry point for `FuzzTarget.host` (docs/RELIABILITY.md, "Fuzzing").
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    FuzzTarget.host.libFuzzerInput(data, size)
}
