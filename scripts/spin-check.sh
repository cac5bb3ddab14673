#!/usr/bin/env bash
# The second opinion of issue 20, section 3: the acceptance core checked by
# spin (Checker/acceptance-core.pml) and by `cocomem check` (symmetry off, so
# both count the same states) on the same configurations. For each one: spin
# -a, gcc pan.c, pan once without assertions for "states, stored", then once
# per invariant (-DINV=1..7, stop at the first error) for whether it is
# violated; cocomem check --json for its states and violated invariants. Both
# must agree on the number of reachable states and on the set of violated
# invariants; the depth of the full search is compared too (pan -DBFS: its
# depth is the breadth-first one).
#
# Livelock as a cycle: on further configurations spin's non-progress cycle
# search (-DNPC=1 adds the progress labels, gcc -DNP, pan -l) and
# `cocomem check` with `cycles: on` must agree on whether a cycle without
# progress exists (a host that refuses AUG for ever has one).
#
#   bash scripts/spin-check.sh              # uses .build/debug/cocomem
#   COCOMEM_BIN=path bash scripts/spin-check.sh
#
# Prints `spin: N passed, M failed` and exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
bin=${COCOMEM_BIN:-.build/debug/cocomem}
model=$PWD/Checker/acceptance-core.pml
command -v spin >/dev/null || { echo "spin: not installed (apt-get install spin)"; exit 1; }
tmp=$(mktemp -d /tmp/cocomem-spin-check.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0

invariants=(guest.never-touch-unaccepted guest.accept-succeeds guest.no-double-accept guest.accepting-list-exclusive
            host.no-double-level-mapping host.mirror-agrees-with-sept guest.accept-progress)

# The check file of a configuration (symmetry off), with extra top-level lines.
config() {
    local v=$1 r=$2 k=$3 m=$4 s=$5 c=$6 z=$7 l=$8 t=$9 b=${10} f=${11}
    cat <<YAML
model: acceptance-core
parameters: {vcpus: $v, ranges: $r, pages-per-range: $k, host-mapping: $([ "$m" = 1 ] && echo 2m || echo 4k), splits: $s, conversions: $c, zaps: $z, accepting-list: $([ "$l" = 1 ] && echo on || echo off), already-accepted: $([ "$t" = 1 ] && echo trust || echo linux), progress-bound: $b, refuse-aug: $([ "$f" = 1 ] && echo on || echo off)}
symmetry: off
YAML
}

# One configuration: vcpus ranges pages map2m splits convs zaps list trust bound [refuse-aug]
check() {
    local v=$1 r=$2 k=$3 m=$4 s=$5 c=$6 z=$7 l=$8 t=$9 b=${10} f=${11:-0}
    local name="v=$v r=$r k=$k map=$([ "$m" = 1 ] && echo 2m || echo 4k) splits=$s conv=$c zaps=$z list=$l trust=$t bound=$b refuse=$f"
    local defs="-DV=$v -DR=$r -DK=$k -DMAP2M=$m -DSPLITS=$s -DCONVS=$c -DZAPS=$z -DLIST=$l -DTRUST=$t -DBOUND=$b -DREFUSE=$f"
    # spin: the state count, then each invariant.
    (cd "$tmp" && rm -f pan* *.trail && spin -a $defs -DINV=0 "$model" >/dev/null && gcc -O2 -DBFS -DNOREDUCE -DSAFETY -o pan pan.c \
        && ./pan -m1000000 >count.txt 2>&1) || { echo "FAIL: $name: spin or pan failed"; fail=$((fail + 1)); return; }
    local spin_states spin_depth
    spin_states=$(awk '/states, stored/ {print $1}' "$tmp/count.txt")
    spin_depth=$(sed -n 's/.*depth reached \([0-9]*\).*/\1/p' "$tmp/count.txt")
    local spin_found=()
    for i in 1 2 3 4 5 6 7; do
        (cd "$tmp" && rm -f pan* *.trail && spin -a $defs -DINV=$i "$model" >/dev/null && gcc -O0 -DNOREDUCE -DSAFETY -o pan pan.c \
            && ./pan -m1000000 >inv.txt 2>&1)
        grep -q "errors: [1-9]" "$tmp/inv.txt" && spin_found+=("${invariants[$((i - 1))]}")
    done
    # cocomem check, symmetry off.
    config "$@" 0 >"$tmp/c.yaml"
    [ $# -ge 11 ] && config "$@" >"$tmp/c.yaml"
    "$bin" check "$tmp/c.yaml" --json >"$tmp/c.json" 2>"$tmp/c.err" || { echo "FAIL: $name: cocomem check: $(head -c 200 "$tmp/c.err")"; fail=$((fail + 1)); return; }
    local ours
    ours=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["states"], d["depth_reached"], " ".join(sorted(v["invariant"] for v in d["violations"])))' "$tmp/c.json")
    local theirs
    theirs="$spin_states $spin_depth $(printf '%s\n' "${spin_found[@]}" | sort | grep -v '^$' | tr '\n' ' ' | sed 's/ $//')"
    if [ "$ours" = "$theirs" ]; then
        pass=$((pass + 1))
        echo "ok: $name: $ours"
    else
        echo "FAIL: $name: cocomem '$ours', spin '$theirs'"; fail=$((fail + 1))
    fi
}

# Livelock: does a cycle without progress exist? spin -DNP / pan -l against cycles: on.
np_check() {
    local name="v=$1 r=$2 k=$3 map=$([ "$4" = 1 ] && echo 2m || echo 4k) splits=$5 conv=$6 zaps=$7 list=$8 trust=$9 bound=${10} refuse=${11}"
    local defs="-DV=$1 -DR=$2 -DK=$3 -DMAP2M=$4 -DSPLITS=$5 -DCONVS=$6 -DZAPS=$7 -DLIST=$8 -DTRUST=$9 -DBOUND=${10} -DREFUSE=${11}"
    (cd "$tmp" && rm -f pan* *.trail && spin -a $defs -DINV=0 -DNPC=1 "$model" >/dev/null && gcc -O0 -DNP -DNOREDUCE -o pan pan.c \
        && ./pan -l -m1000000 >np.txt 2>&1) || { echo "FAIL: cycles $name: spin or pan failed"; fail=$((fail + 1)); return; }
    local theirs=no ours
    grep -q "errors: [1-9]" "$tmp/np.txt" && theirs=yes
    { config "$@"; echo "cycles: on"; } >"$tmp/np.yaml"
    "$bin" check "$tmp/np.yaml" --json >"$tmp/np.json" 2>"$tmp/np.err" || { echo "FAIL: cycles $name: cocomem check: $(head -c 200 "$tmp/np.err")"; fail=$((fail + 1)); return; }
    ours=$(python3 -c 'import json,sys; print("no" if json.load(open(sys.argv[1]))["livelock_cycle"] is None else "yes")' "$tmp/np.json")
    if [ "$ours" = "$theirs" ]; then
        pass=$((pass + 1))
        echo "ok: cycles $name: non-progress cycle $ours"
    else
        echo "FAIL: cycles $name: cocomem '$ours', spin '$theirs'"; fail=$((fail + 1))
    fi
}

#     v r k m s c z l t bound
check 2 2 2 1 1 0 0 1 0 12     # the default: Linux with the list on a huge-page host, safe
check 2 2 2 0 0 1 0 1 0 12     # upstream KVM (4K), a conversion
check 2 1 2 1 0 0 0 0 0 12     # no accepting list: the ALREADY_ACCEPTED race
check 2 2 2 1 1 0 0 0 1 12     # no list, trusting ALREADY_ACCEPTED: safe
check 2 2 2 1 1 0 1 0 1 6      # adversarial host: touch, double accept, progress
check 2 2 2 1 1 1 1 1 0 12     # conversion and a hole punched, Linux with the list
check 3 2 2 1 1 1 0 1 0 12     # three vCPUs
check 2 3 3 1 2 1 1 1 0 12     # three ranges of three pages
check 2 2 4 0 0 1 1 0 1 8      # 4K host, four pages, no list, trusting
check 2 1 2 1 0 0 0 1 0 4 1    # a host that refuses AUG: progress
#        v r k m s c z l t bound refuse
np_check 2 1 2 1 0 0 0 1 0 4  1    # refuse-aug: the livelock cycle
np_check 2 1 2 1 0 0 0 1 0 4  0    # the same host mapping every fault: no cycle
np_check 2 2 2 0 0 1 0 1 0 12 1    # 4K host, a conversion, refuse-aug
np_check 2 2 2 1 1 0 1 0 1 6  0    # the adversarial host of a punched hole: finite, no cycle
np_check 3 1 2 1 1 0 0 0 0 12 1    # three vCPUs, no list, refuse-aug
echo "spin: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
