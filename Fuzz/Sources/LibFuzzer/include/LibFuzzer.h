#ifndef COCOMEM_LIBFUZZER_H
#define COCOMEM_LIBFUZZER_H
#include <stddef.h>
#include <stdint.h>

/// libFuzzer's driver (compiler-rt/lib/fuzzer/FuzzerDriver.cpp), linked by
/// -sanitize=fuzzer: parses libFuzzer's flags from argv and fuzzes UserCb.
/// The fuzzers call it from their own main, since SwiftPM renames an
/// executable's entry point and so cannot link libFuzzer's main.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*UserCb)(const uint8_t *Data, size_t Size));

#endif
