#!/usr/bin/env bash
# Runs cocomem's whole test suite: the Swift Testing suite (its summary line
# is the last thing `swift test` prints) and the command-line bad-input checks.
# Installs what the tests need first (nothing beyond the Swift toolchain yet).
set -euo pipefail
cd "$(dirname "$0")/.."
swift build --build-tests
swift test --skip-build 2>&1 | tee /tmp/cocomem-test.log
bash scripts/cli-checks.sh
