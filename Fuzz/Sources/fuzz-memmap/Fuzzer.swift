import Fuzzing

/// libFuzzer's entry point for `FuzzTarget.memmap` (docs/RELIABILITY.md, "Fuzzing").
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    FuzzTarget.memmap.libFuzzerInput(data, size)
}
