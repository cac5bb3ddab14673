#!/usr/bin/env bash
# Runs cocomem's test suite. Installs nothing extra for now: the boot-path
# tests need only the Swift toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build --build-tests
swift test --skip-build 2>&1 | tee /tmp/cocomem-test.log
