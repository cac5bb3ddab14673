#!/usr/bin/env bash
# Peak memory of one command, split as the kernel counts it (issue 19): runs COMMAND, samples its
# /proc/PID/status every INTERVAL seconds (default 0.01) and prints the largest RssAnon (heap, stacks,
# the batch slots), RssFile (page-cache pages of files the process maps: the input mapping), RssShmem,
# and the kernel's own high-water mark VmHWM (what `time`'s "Maximum resident set size" reports).
# Sampling can miss a short peak; VmHWM cannot. Exit status: the command's.
#
#   scripts/rss-peak.sh [-i INTERVAL] -- COMMAND [ARGS...]
#   scripts/rss-peak.sh -- .build/release/cocomem dump --input vmcore -o out -l -d 31
set -u
interval=0.01
while [ $# -gt 0 ]; do
    case $1 in
        -i) interval=$2; shift 2 ;;
        --) shift; break ;;
        *) break ;;
    esac
done
[ $# -gt 0 ] || { echo "usage: $0 [-i INTERVAL] -- COMMAND [ARGS...]" >&2; exit 2; }

"$@" &
pid=$!
anon=0 file=0 shmem=0 hwm=0
while kill -0 "$pid" 2>/dev/null; do
    s=$(cat "/proc/$pid/status" 2>/dev/null) || break
    a=$(awk '$1 == "RssAnon:" { print $2 }' <<<"$s"); f=$(awk '$1 == "RssFile:" { print $2 }' <<<"$s")
    m=$(awk '$1 == "RssShmem:" { print $2 }' <<<"$s"); h=$(awk '$1 == "VmHWM:" { print $2 }' <<<"$s")
    # A zombie has no memory lines any more.
    [ -n "$a" ] || break
    [ "$a" -gt "$anon" ] && anon=$a
    [ "$f" -gt "$file" ] && file=$f
    [ "$m" -gt "$shmem" ] && shmem=$m
    [ "$h" -gt "$hwm" ] && hwm=$h
    sleep "$interval"
done
wait "$pid"
rc=$?
printf 'peak RssAnon %d KiB, RssFile %d KiB, RssShmem %d KiB; VmHWM %d KiB (%.1f MiB)\n' "$anon" "$file" "$shmem" "$hwm" "$(echo "$hwm / 1024" | bc -l)" >&2
exit $rc
