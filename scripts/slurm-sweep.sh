#!/usr/bin/env bash
# Runs a cocomem sweep on a Slurm cluster (issue 13, section 3): one array job
# with one task per shard, each task running
#     cocomem sweep FILE --db DIR/shard-$SLURM_ARRAY_TASK_ID.db --shard $SLURM_ARRAY_TASK_ID/N
# and a merge job, started only when every task succeeded
# (--dependency=afterok:<array job>), running
#     cocomem results merge --into DIR/results.db DIR/shard-1.db ... DIR/shard-N.db
# The merged database holds the same rows as `cocomem sweep FILE --db X.db` on
# one machine: the shard split and the merge are deterministic.
#
# usage: scripts/slurm-sweep.sh FILE --shards N --out DIR [options] [-- extra sweep flags]
#   --bin PATH          cocomem binary every task runs (default: the release build,
#                       $(swift build -c release --show-bin-path)/cocomem); it, FILE and
#                       DIR must be on a file system the compute nodes see
#   --partition NAME    passed to sbatch for both jobs (-p)
#   --time LIMIT        time limit of each shard task and of the merge job (sbatch -t)
#   --sbatch ARG        any other sbatch option for both jobs, repeatable
#                       (--sbatch --account=proj --sbatch --qos=short)
#   --wait              block until the merge job ends; exit 0 only if it completed
#   --wait-timeout S    with --wait: give up after S seconds (exit 1, jobs left queued)
#   --poll S            with --wait: seconds between squeue polls (default 2)
# Everything after `--` is appended to each `cocomem sweep` command line.
#
# Prints the two job ids on stdout (`array_job=ID merge_job=ID`). Task logs go
# to DIR/logs/. The batch scripts written to DIR/ are kept, to rerun by hand.
set -euo pipefail

die() { echo "error: slurm-sweep: $*" >&2; exit 1; }
usage() { sed -n '/^# usage:/,/^# Prints/p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

file="" shards="" out="" bin="" wait=0 wait_timeout="" poll=2
sbatch_common=()
sweep_extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        --shards) [ $# -ge 2 ] || die "--shards needs a value"; shards=$2; shift 2 ;;
        --out) [ $# -ge 2 ] || die "--out needs a value"; out=$2; shift 2 ;;
        --bin) [ $# -ge 2 ] || die "--bin needs a value"; bin=$2; shift 2 ;;
        --partition) [ $# -ge 2 ] || die "--partition needs a value"; sbatch_common+=("--partition=$2"); shift 2 ;;
        --time) [ $# -ge 2 ] || die "--time needs a value"; sbatch_common+=("--time=$2"); shift 2 ;;
        --sbatch) [ $# -ge 2 ] || die "--sbatch needs a value"; sbatch_common+=("$2"); shift 2 ;;
        --wait) wait=1; shift ;;
        --wait-timeout) [ $# -ge 2 ] || die "--wait-timeout needs a value"; wait_timeout=$2; shift 2 ;;
        --poll) [ $# -ge 2 ] || die "--poll needs a value"; poll=$2; shift 2 ;;
        -h|--help) usage ;;
        --) shift; sweep_extra=("$@"); break ;;
        -*) die "unknown option '$1' (sweep flags go after '--')" ;;
        *) [ -z "$file" ] || die "more than one sweep file: '$file' and '$1'"; file=$1; shift ;;
    esac
done

[ -n "$file" ] || die "no sweep file given"
[ -f "$file" ] || die "sweep file '$file' is not a regular file"
[[ "$shards" =~ ^[1-9][0-9]*$ ]] || die "--shards must be a positive whole number, got '${shards}'"
[ "$shards" -le 10000 ] || die "--shards $shards is more than 10000 array tasks"
[ -n "$out" ] || die "no --out directory given"
[ -z "$wait_timeout" ] || [[ "$wait_timeout" =~ ^[1-9][0-9]*$ ]] || die "--wait-timeout must be a positive number of seconds, got '$wait_timeout'"
[[ "$poll" =~ ^[1-9][0-9]*$ ]] || die "--poll must be a positive number of seconds, got '$poll'"
command -v sbatch >/dev/null 2>&1 || die "sbatch not found: not on a Slurm cluster (scripts/slurm/cluster.sh starts one here)"

if [ -z "$bin" ]; then
    bin_dir=$(cd "$(dirname "$0")/.." && swift build -c release --show-bin-path 2>/dev/null) \
        || die "cannot find the release build; pass --bin PATH or run 'swift build -c release'"
    bin=$bin_dir/cocomem
fi
[ -x "$bin" ] && [ -f "$bin" ] || die "cocomem binary '$bin' is not an executable file (swift build -c release, or --bin PATH)"

# Absolute paths: the tasks run in Slurm's working directory on other nodes.
file=$(realpath "$file")
bin=$(realpath "$bin")
if [ -e "$out" ] && [ ! -d "$out" ]; then die "--out '$out' exists and is not a directory"; fi
mkdir -p "$out/logs"
out=$(realpath "$out")

# The batch scripts, written with every argument shell-quoted.
quoted_extra=""
for a in "${sweep_extra[@]+"${sweep_extra[@]}"}"; do quoted_extra+=" $(printf '%q' "$a")"; done
shard_script=$out/shard.sbatch
merge_script=$out/merge.sbatch
{
    echo '#!/bin/bash'
    echo '# One shard of a cocomem sweep, written by scripts/slurm-sweep.sh.'
    echo 'set -euo pipefail'
    printf 'exec %q sweep %q --db %q/shard-"$SLURM_ARRAY_TASK_ID".db --shard "$SLURM_ARRAY_TASK_ID"/%d%s\n' \
        "$bin" "$file" "$out" "$shards" "$quoted_extra"
} >"$shard_script.tmp"
mv "$shard_script.tmp" "$shard_script"
{
    echo '#!/bin/bash'
    echo '# Merges the shard databases of a cocomem sweep, written by scripts/slurm-sweep.sh.'
    echo 'set -euo pipefail'
    printf 'exec %q results merge --into %q/results.db' "$bin" "$out"
    for i in $(seq 1 "$shards"); do printf ' %q/shard-%d.db' "$out" "$i"; done
    echo
} >"$merge_script.tmp"
mv "$merge_script.tmp" "$merge_script"

array_job=$(sbatch --parsable "${sbatch_common[@]+"${sbatch_common[@]}"}" \
    --job-name=cocomem-sweep --array="1-$shards" \
    --output="$out/logs/shard-%a.out" "$shard_script") || die "sbatch of the array job failed"
array_job=${array_job%%;*}
# --kill-on-invalid-dep: if a shard fails, Slurm cancels the merge instead of
# leaving it pending forever on a dependency that can never be satisfied.
merge_job=$(sbatch --parsable "${sbatch_common[@]+"${sbatch_common[@]}"}" \
    --job-name=cocomem-merge --dependency="afterok:$array_job" --kill-on-invalid-dep=yes \
    --output="$out/logs/merge.out" "$merge_script") || {
    scancel "$array_job" 2>/dev/null || true
    die "sbatch of the merge job failed (array job $array_job cancelled)"
}
merge_job=${merge_job%%;*}
echo "array_job=$array_job merge_job=$merge_job"
echo "slurm-sweep: $shards shard tasks in array job $array_job, merge job $merge_job into $out/results.db" >&2

[ $wait -eq 1 ] || exit 0

# The state of JOB as slurmctld reports it ("" once it has aged out).
job_state() {
    scontrol show job -o "$1" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | head -1 | cut -d= -f2 || true
}

start=$SECONDS
state=""
while :; do
    state=$(job_state "$merge_job")
    case "$state" in
        COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|PREEMPTED|BOOT_FAIL|DEADLINE|"") break ;;
    esac
    if [ -n "$wait_timeout" ] && [ $((SECONDS - start)) -ge "$wait_timeout" ]; then
        die "merge job $merge_job still $state after ${wait_timeout}s (jobs left queued; scancel $array_job $merge_job)"
    fi
    sleep "$poll"
done

if [ "$state" = COMPLETED ]; then
    echo "slurm-sweep: merge job $merge_job completed: $out/results.db" >&2
    exit 0
fi
[ -n "$state" ] || die "merge job $merge_job is no longer known to slurmctld; see $out/logs/merge.out"
# Name the shard tasks that did not complete, with their logs.
failed=$(scontrol show job -o "$array_job" 2>/dev/null \
    | awk '{ id=""; st=""; for (i=1;i<=NF;i++) { if ($i ~ /^ArrayTaskId=/) id=substr($i,13); if ($i ~ /^JobState=/) st=substr($i,10) } if (st != "COMPLETED") print id "(" st ")" }' \
    | tr '\n' ' ')
if [ -n "$failed" ]; then
    die "merge job $merge_job $state; shard tasks not completed: ${failed}(logs in $out/logs/)"
fi
die "merge job $merge_job $state (log: $out/logs/merge.out)"
