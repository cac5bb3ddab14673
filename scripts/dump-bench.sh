#!/usr/bin/env bash
# Side-by-side conversion of ELF vmcores by makedumpfile and `cocomem dump --input`
# (issue 19; docs/PERFORMANCE.md, "Conversion benchmark").
#
# The inputs are made by cocomem itself (`cocomem dump --elf`, kernel 6.16, so
# -d 31 can walk the struct pages through VMCOREINFO), one per kind and size:
#   cache  3/4 of the guest in page cache         (--workload pagecache=)
#   anon   3/4 of the guest touched by user space (--workload touch=; anonymous pages)
#   free   nothing but the boot: mostly free, zero pages
#   mix    1/4 page cache and 1/4 anonymous       (--workload pagecache= --boot-alloc)
# Each input is read once (cat > /dev/null) so both tools read it from the page
# cache. For every format and dump level, the tools run alternately ROUNDS times
# under /usr/bin/time (wall, user, sys, max RSS); before each run the previous
# output is removed and `sync` run, so one run's writeback does not land on the
# next. Every cocomem output is compared byte for byte (cmp) with makedumpfile's.
# A format the installed makedumpfile was built without (`makedumpfile -v`) is
# run by cocomem alone and marked "not built in".
# CPU s/GB is (user + sys) per GB (10^9 bytes) of input file; "load" is the
# 1-minute load average when the row ended (the machine may be shared: rely on
# user + sys there, not wall). Per input, a "copy bound" row times
# `cat INPUT > OUTDIR/out-cat` the same way: the cost of moving the input's
# bytes to the output file, the floor for -E -d 0/1 of a dense input.
#
#   scripts/dump-bench.sh [-s "1G 4G 16G"] [-k "cache anon free mix"] [-f "-c -l -z -p -E"]
#                         [-d "1 31"] [-r ROUNDS] [-w WORKDIR] [-o OUTDIR] [-b COCOMEM] [-m MAKEDUMPFILE] [-W on|off]
# Defaults: sizes 1G, all kinds, all formats, levels 1 and 31, 3 rounds,
# WORKDIR /tmp/cocomem-dump-bench, COCOMEM .build/release/cocomem (build it
# first: swift build -c release --product cocomem; since session 14 a release build
# carries the Swift runtime statically, docs/PERFORMANCE.md), MAKEDUMPFILE from PATH.
# cocomem follows the filter of MAKEDUMPFILE's own release (`--makedumpfile`, from its `-v`; a development
# build's "1.7.9++" is `dev`; MDF_RELEASE=... overrides), so outputs compare byte for byte with either.
# Debian's 1.7.2 lacks zstd and snappy: session 17 compared -z and -p with a build of the upstream
# development branch given with -m (docs/PERFORMANCE.md, "Session 17").
# Rows are chosen with -k, -f and -d: the -d 31 rows alone are -f "-c -l -E" -d 31,
# the one row `cache -l -d 31` is -k cache -f -l -d 31.
# The inputs are kept in WORKDIR between runs (a 16G input is a 16 GB sparse file).
# Outputs go to OUTDIR (default WORKDIR). On a disk, wall time includes the
# writeback of the output: cocomem fsyncs its file before linking it into place,
# makedumpfile 1.7.2 does not. OUTDIR on a tmpfs (-o /dev/shm) compares the
# pipelines alone.
# Before every timed run (both tools and the copy bound alike) the output's
# filesystem is warmed: as many bytes as the input plus 64 MiB are written to
# OUTDIR/warm and removed. On a guest whose balloon reports free pages to the
# host (virtio-balloon free page reporting, VIRTIO_BALLOON_F_REPORTING; this
# machine has it), a run that writes into memory the host has discarded pays a
# host fault per page: `cat` of a 0.8 GB input into /dev/shm took 1.0-2.8 s
# cold against 0.35-0.52 s warm, hitting either tool in about a third of the
# runs. -W off leaves the machine as it is.
# The table goes to stdout (Markdown); each run's line goes to stderr and to WORKDIR/runs.txt.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
sizes="1G"
kinds="cache anon free mix"
formats="-c -l -z -p -E"
levels="1 31"
rounds=3
work=/tmp/cocomem-dump-bench
outdir=
warm=on
bin=$root/.build/release/cocomem
mdf=$(command -v makedumpfile || echo /usr/sbin/makedumpfile)
while getopts "s:k:f:d:r:w:o:b:m:W:h" o; do
    case $o in
        s) sizes=$OPTARG ;; k) kinds=$OPTARG ;; f) formats=$OPTARG ;; d) levels=$OPTARG ;;
        r) rounds=$OPTARG ;; w) work=$OPTARG ;; o) outdir=$OPTARG ;; b) bin=$OPTARG ;; m) mdf=$OPTARG ;; W) warm=$OPTARG ;;
        *) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 2 ;;
    esac
done
[ -x "$bin" ] || { echo "error: no cocomem at $bin (swift build -c release --product cocomem)" >&2; exit 1; }
[ -x "$mdf" ] || { echo "error: no makedumpfile at $mdf (apt-get install makedumpfile, or -m PATH)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "error: /usr/bin/time is needed (apt-get install time)" >&2; exit 1; }
[[ $warm = on || $warm = off ]] || { echo "error: -W $warm is not on or off" >&2; exit 1; }
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "error: -r $rounds is not a positive count" >&2; exit 1; }
mkdir -p "$work"
outdir=${outdir:-$work}
[ -d "$outdir" ] || { echo "error: output directory $outdir does not exist" >&2; exit 1; }
outdir=$(cd "$outdir" && pwd)
cd "$work"
: > runs.txt

# What this makedumpfile was built with: "lzo enabled", "snappy disabled", "zstd disabled" (zlib always).
mdf_version=$("$mdf" -v 2>&1 | head -1)
# The release whose filter cocomem follows (`--makedumpfile`): the binary's own version, "1.7.9++" (a build
# of the development branch after 1.7.9) as "dev"; MDF_RELEASE overrides it.
mdf_release=${MDF_RELEASE:-$(echo "$mdf_version" | sed -E 's/.*version ([0-9]+\.[0-9]+\.[0-9]+)(\+\+)?.*/\1\2/; s/^[0-9.]+\+\+$/dev/')}
supported() {
    case $1 in
        -l) "$mdf" -v 2>&1 | grep -q '^lzo[[:space:]]*enabled' ;;
        -p) "$mdf" -v 2>&1 | grep -q '^snappy[[:space:]]*enabled' ;;
        -z) "$mdf" -v 2>&1 | grep -q '^zstd[[:space:]]*enabled' ;;
        *) true ;;
    esac
}

# mib SIZE and make_input KIND SIZE (the vmcore each run reads).
. "$root/scripts/lib/vmcore-inputs.sh"

# The warm-up before each timed run (see the header): WARM_BYTES of zeros written to OUTDIR/warm and removed.
warm_bytes=0
warm_up() {
    [ "$warm" = on ] || return 0
    head -c "$warm_bytes" /dev/zero > "$outdir/warm"
    rm -f "$outdir/warm"
}

# One timed run: tool name, then the command. Prints "wall user sys rss_kb"; the output is OUTDIR/out-TOOL.
timed() {
    local tool=$1; shift
    rm -f "$outdir/out-$tool"
    sync
    warm_up
    if ! /usr/bin/time -f "%e %U %S %M" -o time.txt "$@" >run.log 2>&1; then
        echo "error: $tool failed: $*" >&2; cat run.log >&2; exit 1
    fi
    cat time.txt
}

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "-" }'; }
per_gb() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
load1() { cut -d' ' -f1 /proc/loadavg; }

echo "# $mdf_version (cocomem --makedumpfile $mdf_release); cocomem $bin; $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg) at start; $rounds rounds; warm-up $warm" >&2
printf '| input | size | format | -d | makedumpfile wall / user / sys (s), RSS (MiB) | cocomem wall / user / sys (s), RSS (MiB) | wall speed-up | CPU s/GB makedumpfile / cocomem | CPU ratio (cocomem/makedumpfile) | identical | load |\n'
printf '|---|---|---|---|---|---|---|---|---|---|---|\n'
for size in $sizes; do
    for kind in $kinds; do
        input=$(make_input "$kind" "$size")
        cat "$input" > /dev/null     # both tools read it from the page cache
        gb=$(stat -L -c %s "$input" | awk '{ printf "%.3f", $1 / 1e9 }')
        warm_bytes=$(( $(stat -L -c %s "$input") + 64 * 1024 * 1024 ))
        : > t-cat
        for _ in $(seq "$rounds"); do
            rm -f "$outdir/out-cat"; sync; warm_up
            /usr/bin/time -f "%e %U %S %M" -o time.txt sh -c 'cat "$1" > "$2"' sh "$input" "$outdir/out-cat"
            cat time.txt >> t-cat
        done
        rm -f "$outdir/out-cat"
        catw=$(awk '{ print $1 }' t-cat | median); catcpu=$(awk '{ print $2 + $3 }' t-cat | median)
        printf '| %s | %s | copy bound (`cat > file`) | | | %s / %s / %s | | %s | | | %s |\n' "$kind" "$size" \
            "$catw" "$(awk '{ print $2 }' t-cat | median)" "$(awk '{ print $3 }' t-cat | median)" "$(per_gb "$catcpu" "$gb")" "$(load1)"
        for fmt in $formats; do
            for level in $levels; do
                with_mdf=yes
                supported "$fmt" || with_mdf=no
                : > t-mdf; : > t-cc
                same=yes
                for _ in $(seq "$rounds"); do
                    if [ $with_mdf = yes ]; then
                        timed mdf "$mdf" "$fmt" -d "$level" "$input" "$outdir/out-mdf" >> t-mdf
                    fi
                    timed cc "$bin" dump --input "$input" --makedumpfile "$mdf_release" "$fmt" -d "$level" -o "$outdir/out-cc" >> t-cc
                    if [ $with_mdf = yes ] && ! cmp -s "$outdir/out-mdf" "$outdir/out-cc"; then same=no; fi
                    echo "$kind $size $fmt -d $level mdf: $(tail -1 t-mdf 2>/dev/null) cc: $(tail -1 t-cc)" | tee -a runs.txt >&2
                done
                col() { awk -v c="$2" '{ print $c }' "$1" | median; }
                ccw=$(col t-cc 1); ccu=$(col t-cc 2); ccs=$(col t-cc 3); ccr=$(( $(col t-cc 4) / 1024 ))
                cccpu=$(awk '{ print $2 + $3 }' t-cc | median)
                if [ $with_mdf = yes ]; then
                    mw=$(col t-mdf 1); mu=$(col t-mdf 2); ms=$(col t-mdf 3); mr=$(( $(col t-mdf 4) / 1024 ))
                    mcpu=$(awk '{ print $2 + $3 }' t-mdf | median)
                    printf '| %s | %s | `%s` | %s | %s / %s / %s, %s | %s / %s / %s, %s | %sx | %s / %s | %s | %s | %s |\n' \
                        "$kind" "$size" "$fmt" "$level" "$mw" "$mu" "$ms" "$mr" "$ccw" "$ccu" "$ccs" "$ccr" \
                        "$(ratio "$mw" "$ccw")" "$(per_gb "$mcpu" "$gb")" "$(per_gb "$cccpu" "$gb")" "$(ratio "$cccpu" "$mcpu")" "$same" "$(load1)"
                else
                    printf '| %s | %s | `%s` | %s | not built in (`makedumpfile -v`: %s) | %s / %s / %s, %s | | - / %s | | | %s |\n' \
                        "$kind" "$size" "$fmt" "$level" "${mdf_version%% (*}" "$ccw" "$ccu" "$ccs" "$ccr" "$(per_gb "$cccpu" "$gb")" "$(load1)"
                fi
                rm -f "$outdir/out-mdf" "$outdir/out-cc"
            done
        done
    done
done
echo "# load average $(cut -d' ' -f1-3 /proc/loadavg) at the end" >&2
