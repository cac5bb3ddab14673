#!/usr/bin/env bash
# Coverage-guided fuzzing of cocomem's parsers with libFuzzer (issue 15;
# docs/RELIABILITY.md, "Fuzzing").
#
#   scripts/fuzz.sh TARGET|all SECONDS [libFuzzer flags...]
#
# TARGET is one of: size memmap calls host host-parse scenario sweep calibration elf
# dump-options dmesg (Fuzz/Sources/fuzz-TARGET; each a `FuzzTarget` of the Fuzzing
# module). Builds the fuzzers once (incrementally: a separate package in Fuzz/,
# release, -sanitize=fuzzer), then runs each target for SECONDS seconds
# (`all`: each in turn) on a scratch copy of its committed seed corpus
# (Fuzz/corpus/TARGET: the repository is never modified), with
# -rss_limit_mb=1024 -timeout=10. Prints libFuzzer's executions, coverage
# (cov: edges, ft: features) and speed per target, then one summary line
#   fuzz: N targets, E executions, C crashes
# and exits non-zero if any target crashed, hung past 10 s or passed 1 GiB;
# the input that did is kept under FUZZ_ARTIFACTS (default out/fuzz/TARGET/)
# and its path printed. Environment: FUZZ_SKIP_BUILD=1 uses the built
# fuzzers as they are; FUZZ_BIN=DIR runs the fuzz-TARGET executables in DIR
# (a copy of a build, so a long run is not disturbed by a rebuild; implies
# FUZZ_SKIP_BUILD=1); FUZZ_KEEP_CORPUS=DIR keeps the grown corpora there;
# FUZZ_LOG_DIR=DIR writes libFuzzer's whole log to DIR/TARGET.log as it runs.
set -uo pipefail
cd "$(dirname "$0")/.."

targets_all=(size memmap calls host host-parse scenario sweep calibration elf dump-options dmesg)
if [ $# -lt 2 ]; then
    echo "usage: scripts/fuzz.sh TARGET|all SECONDS [libFuzzer flags...]" >&2
    echo "targets: ${targets_all[*]}" >&2
    exit 2
fi
target=$1 seconds=$2
shift 2
case "$seconds" in ''|*[!0-9]*) echo "error: SECONDS must be a whole number, not '$seconds'" >&2; exit 2 ;; esac
if [ "$target" = all ]; then
    targets=("${targets_all[@]}")
else
    found=0
    for t in "${targets_all[@]}"; do [ "$t" = "$target" ] && found=1; done
    if [ $found -eq 0 ]; then echo "error: unknown fuzz target '$target' (targets: ${targets_all[*]} or all)" >&2; exit 2; fi
    targets=("$target")
fi

build=(swift build -c release --package-path Fuzz -Xswiftc -sanitize=fuzzer -Xswiftc -parse-as-library)
if [ -n "${FUZZ_BIN:-}" ]; then FUZZ_SKIP_BUILD=1; fi
if [ "${FUZZ_SKIP_BUILD:-0}" != 1 ]; then
    start=$(date +%s)
    if ! "${build[@]}" >/tmp/cocomem-fuzz-build.$$ 2>&1; then
        tail -40 /tmp/cocomem-fuzz-build.$$
        rm -f /tmp/cocomem-fuzz-build.$$
        echo "error: building the fuzzers failed" >&2
        exit 1
    fi
    rm -f /tmp/cocomem-fuzz-build.$$
    echo "fuzz: fuzzers built in $(( $(date +%s) - start )) s"
fi
bin=${FUZZ_BIN:-$("${build[@]}" --show-bin-path)}

artifacts=${FUZZ_ARTIFACTS:-out/fuzz}
if [ -n "${FUZZ_LOG_DIR:-}" ] && ! mkdir -p "$FUZZ_LOG_DIR"; then
    echo "error: FUZZ_LOG_DIR '$FUZZ_LOG_DIR' is not a directory that can be made" >&2; exit 2
fi
scratch=$(mktemp -d "${TMPDIR:-/tmp}/cocomem-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
total_exec=0 crashes=0 ran=0
for t in "${targets[@]}"; do
    exe="$bin/fuzz-$t"
    if [ ! -x "$exe" ]; then echo "error: $exe is not built" >&2; exit 1; fi
    corpus="$scratch/$t"
    mkdir -p "$corpus" "$artifacts/$t"
    cp Fuzz/corpus/"$t"/* "$corpus"/
    log="${FUZZ_LOG_DIR:-$scratch}/$t.log"
    # Swift's backtracer would catch the trap first; libFuzzer's handler
    # must see it to write the crashing input.
    SWIFT_BACKTRACE=enable=no "$exe" "$corpus" -max_total_time="$seconds" -rss_limit_mb=1024 -timeout=10 \
        -artifact_prefix="$artifacts/$t/" -print_final_stats=1 "$@" >"$log" 2>&1
    rc=$?
    ran=$((ran + 1))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
    last=$(grep -E '^#[0-9]+' "$log" | tail -1)
    cov=$(sed -n 's/.*cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.*ft: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(sed -n 's/.*corp: \([0-9]*\/[0-9a-zA-Z]*\).*/\1/p' <<<"$last")
    if [ -z "$execs" ]; then execs=$(sed -n 's/^#\([0-9]*\).*/\1/p' <<<"$last"); fi
    # The time it ran: libFuzzer's "Done N runs in T second(s)" when -runs ended it first.
    took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
    total_exec=$((total_exec + ${execs:-0}))
    printf 'fuzz-%s: %s executions in %s s (%s exec/s), cov: %s ft: %s corpus: %s, peak RSS %s MB\n' \
        "$t" "${execs:-0}" "${took:-$seconds}" "${speed:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "${rss:-?}"
    if [ $rc -ne 0 ]; then
        crashes=$((crashes + 1))
        echo "fuzz-$t: FAILED (libFuzzer exit $rc):"
        grep -E 'Fatal error|==ERROR|ERROR: libFuzzer|SUMMARY|deadly signal|timeout|out-of-memory|malloc' "$log" | head -8 | sed 's/^/  /'
        art=$(sed -n "s/.*Test unit written to \(.*\)$/\1/p" "$log" | tail -1)
        echo "  input: ${art:-none written; see the log}"
        cp "$log" "$artifacts/$t/last.log"
        echo "  log: $artifacts/$t/last.log"
    fi
    if [ -n "${FUZZ_KEEP_CORPUS:-}" ]; then mkdir -p "$FUZZ_KEEP_CORPUS/$t" && cp "$corpus"/* "$FUZZ_KEEP_CORPUS/$t"/; fi
done
echo "fuzz: $ran targets, $total_exec executions, $crashes crashes"
[ $crashes -eq 0 ]
