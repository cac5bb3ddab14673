#!/usr/bin/env bash
# CPU time (user + sys) of real makedumpfile runs, the calibration input of the
# makedumpfile cost model (issue 17 §3; docs/CALIBRATION.md, "How long makedumpfile
# takes"). The machine is shared and loaded, so wall time is not used: the model
# predicts the CPU seconds the capture kernel spends, and its wall time from them.
#
# Inputs are ELF vmcores made by cocomem (`cocomem dump --elf`, kernel 6.16), one per
# kind: cache (3/4 page cache), anon (3/4 anonymous), free (boot only), mix (1/4 each).
# Every format the installed makedumpfile was built with runs at -d 1 and -d 31,
# ROUNDS times; each line gives the median user and sys seconds and the page counts
# makedumpfile reports (Total pages, Excluded pages, Remaining pages, Write bytes).
#
#   scripts/makedumpfile-cpu.sh [-s 1G] [-r 3] [-w WORKDIR] [-b COCOMEM] [-t "1 2"]
# Defaults: 1G inputs, 3 rounds, WORKDIR .build/makedumpfile-cpu, COCOMEM .build/debug/cocomem,
# thread counts "1" (makedumpfile --num-threads N is added for N > 1).
# Output: one tab-separated line per configuration on stdout:
#   kind format level threads user_s sys_s total_pages excluded_pages remaining_pages write_bytes
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
size=1G; rounds=3; work=$root/.build/makedumpfile-cpu; bin=$root/.build/debug/cocomem; threads="1"
while getopts "s:r:w:b:t:h" o; do
    case $o in
        s) size=$OPTARG ;; r) rounds=$OPTARG ;; w) work=$OPTARG ;; b) bin=$OPTARG ;; t) threads=$OPTARG ;;
        *) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 2 ;;
    esac
done
mdf=$(command -v makedumpfile || echo /usr/sbin/makedumpfile)
[ -x "$mdf" ] || { echo "error: no makedumpfile (apt-get install -y makedumpfile)" >&2; exit 1; }
[ -x "$bin" ] || { echo "error: no cocomem at $bin" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "error: /usr/bin/time is needed (apt-get install time)" >&2; exit 1; }
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "error: -r $rounds is not a positive count" >&2; exit 1; }
case $size in *G) m=$(( ${size%G} * 1024 )) ;; *M) m=${size%M} ;; *) echo "error: size $size is not like 1G or 512M" >&2; exit 1 ;; esac
mkdir -p "$work"; cd "$work"
formats="-c -E"
"$mdf" -v 2>&1 | grep -q '^lzo[[:space:]]*enabled' && formats="$formats -l"
"$mdf" -v 2>&1 | grep -q '^snappy[[:space:]]*enabled' && formats="$formats -p"
"$mdf" -v 2>&1 | grep -q '^zstd[[:space:]]*enabled' && formats="$formats -z"
echo "# $("$mdf" -v 2>&1 | head -1); formats $formats; $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
. "$root/scripts/lib/vmcore-inputs.sh"   # make_input KIND SIZE
hexcount() { grep -m1 "$1" mdf.log | sed 's/.*: *//; s/ .*//' | { read -r v; printf '%d' "$v"; }; }
for kind in cache anon free mix; do
    f=$(make_input "$kind" "$size")
    cat "$f" > /dev/null
    for fmt in $formats; do
        for level in 1 31; do
            for t in $threads; do
                targs=(); [ "$t" -gt 1 ] && targs=(--num-threads "$t")
                : > t.txt
                for _ in $(seq "$rounds"); do
                    rm -f out
                    /usr/bin/time -f "%U %S" -o time.txt "$mdf" --message-level 22 "$fmt" -d "$level" "${targs[@]}" "$f" out > mdf.log 2>&1 \
                        || { echo "error: makedumpfile $fmt -d $level $f failed" >&2; cat mdf.log >&2; exit 1; }
                    cat time.txt >> t.txt
                done
                u=$(awk '{ print $1 }' t.txt | median); s=$(awk '{ print $2 }' t.txt | median)
                printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$kind" "$fmt" "$level" "$t" "$u" "$s" \
                    "$(hexcount 'Total pages')" "$(hexcount 'Excluded pages')" "$(hexcount 'Remaining pages')" \
                    "$(grep -m1 'Write bytes' mdf.log | sed 's/.*: *//')"
            done
        done
    done
done
rm -f out
