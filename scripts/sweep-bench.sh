#!/usr/bin/env bash
# Benchmarks of the sweep machinery (docs/PERFORMANCE.md, "Sweeps"), on the release build:
#  1. machinery cost per point: a sweep of small boots with --jobs 1 --timings (wall time minus the
#     time inside the model, per point: expansion, parsing, scheduling, rows, SQLite);
#  2. the 10,164-point boot sweep (scripts/sweep-bench.yaml) into SQLite on all cores: wall time,
#     database size;
#  3. the same sweep as 4 local shards run one after the other, plus the merge, against (2), and the
#     merged rows compared with the single run's.
# Usage: scripts/sweep-bench.sh [SWEEP_FILE]   (build first: swift build -c release --product cocomem)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.build/release/cocomem
file=${1:-scripts/sweep-bench.yaml}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
now() { date +%s.%N; }

printf 'guest:\n  memory: 1G..1000G +1G\n  vcpus: 1\n' >"$tmp/small.yaml"
echo "== machinery per point (1000 boots, --jobs 1)"
"$bin" sweep "$tmp/small.yaml" --db "$tmp/small.db" --jobs 1 --timings >/dev/null
echo "== rerun of the same 1000 points (all keys present: nothing runs)"
"$bin" sweep "$tmp/small.yaml" --db "$tmp/small.db" --jobs 1 --timings >/dev/null

echo "== $file, all cores"
t0=$(now)
"$bin" sweep "$file" --db "$tmp/single.db" --timings | tail -1
t1=$(now)
single=$(echo "$t1 - $t0" | bc)
echo "wall ${single} s, database $(stat -c %s "$tmp/single.db") bytes"

echo "== 4 shards one after the other + merge"
t0=$(now)
for i in 1 2 3 4; do "$bin" sweep "$file" --db "$tmp/s$i.db" --shard "$i/4" | tail -1; done
"$bin" results merge --into "$tmp/merged.db" "$tmp"/s[1-4].db
t1=$(now)
sharded=$(echo "$t1 - $t0" | bc)
echo "wall ${sharded} s ($(echo "scale=1; 100 * ($sharded - $single) / $single" | bc)% over the single run)"
if cmp -s <(sqlite3 "$tmp/single.db" "SELECT * FROM points ORDER BY key") <(sqlite3 "$tmp/merged.db" "SELECT * FROM points ORDER BY key"); then
    echo "merged rows identical to the single run's"
else
    echo "MISMATCH: merged rows differ from the single run's"; exit 1
fi
