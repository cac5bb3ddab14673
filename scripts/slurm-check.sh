#!/usr/bin/env bash
# The Slurm test of issue 13, section 3: starts a real single-node Slurm
# (scripts/slurm/cluster.sh), runs a small sweep as a 4-task array job with a
# merge job (scripts/slurm-sweep.sh --wait), runs the same sweep on this machine
# without shards, and compares the two databases row for row
# (`SELECT * FROM points ORDER BY key`). It does so for a scenario sweep and for
# a check file's swarm (one point per seed, docs/CHECKER.md), on the one cluster. Stops the cluster at the end, whatever
# happens. Every wait has a timeout: the whole check takes well under a minute
# when it passes and at most about four when Slurm does not answer.
#
#   bash scripts/slurm-check.sh            # uses .build/debug/cocomem
#   COCOMEM_BIN=path bash scripts/slurm-check.sh
#   COCOMEM_SLURM_SWEEP="a.yaml b.yaml" ... # other sweep files (default Tests/Fixtures/slurm-sweep.yaml
#                                          # and Tests/Fixtures/slurm-check-swarm.yaml)
#
# Prints `slurm: N passed, M failed` and exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."

bin=${COCOMEM_BIN:-.build/debug/cocomem}
sweeps=${COCOMEM_SLURM_SWEEP:-Tests/Fixtures/slurm-sweep.yaml Tests/Fixtures/slurm-check-swarm.yaml}
sweep=${sweeps%% *}
shards=4

tmp=$(mktemp -d /tmp/cocomem-slurm-check.XXXXXX)
cluster_started=0
cleanup() {
    [ "$cluster_started" -eq 0 ] || timeout 60 bash scripts/slurm/cluster.sh stop || true
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pass=0 fail=0
check() {   # check DESCRIPTION COMMAND...: one pass or one FAIL line
    local what=$1; shift
    if "$@"; then pass=$((pass + 1)); else echo "FAIL: $what"; fail=$((fail + 1)); fi
}
summary() {
    echo "slurm: $pass passed, $fail failed"
    [ "$fail" -eq 0 ]
    exit $?
}

# Bad input to slurm-sweep.sh: one "error: slurm-sweep: ..." line naming the
# problem, exit 1, nothing submitted (all are refused before sbatch runs).
# sweep_refuses DESCRIPTION EXPECTED-SUBSTRING ARGS...
sweep_refuses() {
    local what=$1 want=$2; shift 2
    timeout 30 bash scripts/slurm-sweep.sh "$@" >"$tmp/bad.out" 2>"$tmp/bad.err"
    local rc=$?
    if [ "$rc" -ne 1 ] || [ "$(wc -l <"$tmp/bad.err")" -ne 1 ] || ! grep -q "^error: slurm-sweep: .*$want" "$tmp/bad.err" \
        || [ -s "$tmp/bad.out" ]; then
        echo "FAIL: slurm-sweep.sh $what (exit $rc): $(head -c 300 "$tmp/bad.err")"; fail=$((fail + 1))
    else
        pass=$((pass + 1))
    fi
}
touch "$tmp/not-a-dir"
sweep_refuses "without a sweep file" "no sweep file" --shards 4 --out "$tmp/o"
sweep_refuses "with a missing sweep file" "not a regular file" "$tmp/missing.yaml" --shards 4 --out "$tmp/o"
sweep_refuses "with --shards 0" "positive whole number" "$sweep" --shards 0 --out "$tmp/o"
sweep_refuses "with --shards 4/2" "positive whole number" "$sweep" --shards 4/2 --out "$tmp/o"
sweep_refuses "without --out" "no --out" "$sweep" --shards 4
sweep_refuses "with --out naming a file" "not a directory" "$sweep" --shards 4 --out "$tmp/not-a-dir" --bin "$bin"
sweep_refuses "with an unknown option" "unknown option '--nodes'" "$sweep" --shards 4 --out "$tmp/o" --nodes 3
sweep_refuses "with a bad --wait-timeout" "--wait-timeout" "$sweep" --shards 4 --out "$tmp/o" --wait --wait-timeout soon
sweep_refuses "with a binary that is not there" "not an executable" "$sweep" --shards 4 --out "$tmp/o" --bin "$tmp/nothing"

# The sweep command is part of cocomem: its absence is a failure, not a skip.
if ! timeout 30 "$bin" sweep --help 2>/dev/null | grep -q 'USAGE: cocomem sweep'; then
    fail=$((fail + 1)); echo "FAIL: $bin has no sweep command"
    summary
fi

rows() { timeout 30 sqlite3 "$1" "SELECT * FROM points ORDER BY key"; }
count() { timeout 30 sqlite3 "$1" "SELECT count(*) FROM points"; }

cluster_started=1
if ! COCOMEM_SLURM_TIMEOUT=60 timeout 180 bash scripts/slurm/cluster.sh start; then
    fail=$((fail + 1)); echo "FAIL: the single-node Slurm cluster did not start"
    summary
fi
pass=$((pass + 1))
eval "$(bash scripts/slurm/cluster.sh env)"

for sweep in $sweeps; do
    name=$(basename "$sweep" .yaml)
    out=$tmp/$name
    mkdir -p "$out"
    # The cluster run: 4 array tasks and the merge job, waited for with a timeout.
    if timeout 200 bash scripts/slurm-sweep.sh "$sweep" --shards "$shards" --out "$out/cluster" \
            --bin "$bin" --time 5 --wait --wait-timeout 180 --poll 1 >"$out/submit.out" 2>"$out/submit.err"; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
        echo "FAIL: $name: the Slurm array sweep and its merge did not complete: $(tail -1 "$out/submit.err")"
        for log in "$out"/cluster/logs/*.out; do [ -s "$log" ] && echo "  $(basename "$log"): $(tail -1 "$log")"; done
        continue
    fi

    # The same sweep on one machine, without shards.
    if timeout 180 "$bin" sweep "$sweep" --db "$out/local.db" >"$out/local.out" 2>"$out/local.err"; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1)); echo "FAIL: $name: the local sweep failed: $(tail -1 "$out/local.err")"
        continue
    fi

    rows "$out/cluster/results.db" >"$out/cluster.rows" 2>&1
    rows "$out/local.db" >"$out/local.rows" 2>&1
    check "$name: the sweep has points" test -s "$out/local.rows"
    if cmp -s "$out/cluster.rows" "$out/local.rows"; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
        echo "FAIL: $name: merged Slurm results differ from the local run ($(wc -l <"$out/cluster.rows") rows against $(wc -l <"$out/local.rows")):"
        diff "$out/local.rows" "$out/cluster.rows" | head -10 | sed 's/^/  /'
    fi

    # Each shard ran its own part: the shards' row counts add up to the whole, and
    # none is empty when there are at least as many points as shards.
    total=0 empty=0
    for i in $(seq 1 "$shards"); do
        n=$(count "$out/cluster/shard-$i.db" 2>/dev/null || echo 0)
        total=$((total + n))
        [ "$n" -gt 0 ] || empty=$((empty + 1))
    done
    local_count=$(count "$out/local.db" 2>/dev/null || echo -1)
    check "$name: shard row counts add up to the local run's ($total against $local_count)" test "$total" -eq "$local_count"
    if [ "$local_count" -ge "$shards" ]; then
        check "$name: every shard ran some points ($empty empty)" test "$empty" -eq 0
    fi
done

summary
