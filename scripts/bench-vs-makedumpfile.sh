#!/usr/bin/env bash
# Side-by-side conversion of one ELF vmcore by makedumpfile and cocomem
# (docs/PERFORMANCE.md, "Same ELF input, both tools"). Needs a release build
# and makedumpfile. Each run starts after `sync; sleep 3` with the previous
# output removed; the rounds alternate between the tools.
#   scripts/bench-vs-makedumpfile.sh [WORKDIR] [ROUNDS]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-/tmp/cocomem-bench}
rounds=${2:-3}
bin=$root/.build/release/cocomem
mkdir -p "$work"
cd "$work"
if [ ! -f vmcore ]; then
    "$bin" dump --memory 4G --kernel 6.16 --workload pagecache=2G --elf vmcore >/dev/null
fi
cat vmcore >/dev/null    # both tools read it from the page cache
for flag in -c -l; do
    for _ in $(seq "$rounds"); do
        for t in makedumpfile makedumpfile-2 cocomem-1 cocomem-2; do
            sync; sleep 3; rm -f out
            case $t in
                makedumpfile) cmd=(makedumpfile "$flag" -d 1 vmcore out) ;;
                makedumpfile-2) cmd=(makedumpfile "$flag" -d 1 --num-threads 2 vmcore out) ;;
                cocomem-1) cmd=("$bin" dump --input vmcore -o out "$flag" -d 1 --num-threads 1) ;;
                cocomem-2) cmd=("$bin" dump --input vmcore -o out "$flag" -d 1 --num-threads 2) ;;
            esac
            /usr/bin/time -f "$flag $t %e s %M KB" "${cmd[@]}" 2>&1 >/dev/null | tail -1
            md5sum out | cut -c1-12
        done
    done
done
