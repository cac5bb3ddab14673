#!/usr/bin/env bash
# Runs cocomem's whole test suite: the Swift Testing suite (its summary line
# is the last thing `swift test` prints) and the command-line bad-input checks.
# First installs what the build and the tests need from Debian: zlib's headers
# (the kdump-compressed writer links it), the lzo, snappy and zstd runtime
# libraries (loaded with dlopen when a dump asks for them; no headers needed)
# and the real dump tools the tests run against cocomem's files:
# makedumpfile, python3-libkdumpfile and crash; for the Slurm check a real
# single-node cluster's munge and slurm-wlm, with sqlite3 to compare databases;
# chromium, which opens the HTML reports headless (scripts/report-checks.sh);
# and spin, the second opinion on the checker (scripts/spin-check.sh). Then a
# short mutation run of the command line (scripts/mutation-run.py, python3).
# Last, a short coverage-guided fuzzing run of every parser (scripts/fuzz.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(zlib1g-dev liblzo2-2 libsnappy1v5 libzstd1 makedumpfile python3-libkdumpfile crash munge slurm-wlm sqlite3 chromium spin)
missing=()
for p in "${packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

swift build --build-tests
bash scripts/goldens.sh
swift test --skip-build 2>&1 | tee /tmp/cocomem-test.log
bash scripts/cli-checks.sh
# A hostile user's mutation run on the command line (docs/RELIABILITY.md, "Mutation run"):
# 40 seeded mutants of every input kind through the debug binary; a trap, a hang, 1 GiB,
# an unclear error or a leftover temporary file fails it. Prints "mutation: ... findings".
python3 scripts/mutation-run.py --runs 40 --bin .build/debug/cocomem --timeout 60
bash scripts/slurm-check.sh
bash scripts/report-checks.sh
bash scripts/spin-check.sh
# Coverage-guided fuzzing, briefly (docs/RELIABILITY.md, "Fuzzing"): builds the
# libFuzzer executables of Fuzz/ (release, about 4-5 minutes from scratch on two
# cores, seconds when built) and runs each of the 11 targets for FUZZ_SECONDS
# (default 10) on its seed corpus; a crash, a hang past 10 s or 1 GiB of RSS
# fails the suite and leaves the input under out/fuzz/. Prints
# "fuzz: N targets, E executions, C crashes".
bash scripts/fuzz.sh all "${FUZZ_SECONDS:-10}"
