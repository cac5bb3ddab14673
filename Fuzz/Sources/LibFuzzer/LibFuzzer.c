// Declarations only (include/LibFuzzer.h); the driver is libFuzzer's.
#include "LibFuzzer.h"
