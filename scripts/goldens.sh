#!/usr/bin/env bash
# Golden outputs: runs every command of Tests/Goldens/commands.txt with the
# built debug binary and compares (check, the default) or records (record)
# its stdout, exit code and the sha256 of each file it wrote, in
# Tests/Goldens/expected.txt. A change that alters any output fails `check`
# and must be recorded on purpose, with the reason in its commit message.
set -uo pipefail
cd "$(dirname "$0")/.."
mode=${1:-check}
bin=$PWD/.build/debug/cocomem
list=Tests/Goldens/commands.txt
expected=Tests/Goldens/expected.txt
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
[ -x "$bin" ] || { echo "goldens: build first (swift build): $bin is missing"; exit 1; }
out=$tmp/actual.txt
: >"$out"
n=0
while IFS= read -r line; do
    case "$line" in ''|'#'*) continue ;; esac
    n=$((n + 1))
    work=$tmp/run$n
    mkdir "$work"
    read -ra args <<<"$line"
    (cd "$work" && "$bin" "${args[@]}" >"$tmp/stdout" 2>"$tmp/stderr")
    rc=$?
    {
        echo "=== $line"
        echo "exit $rc"
        cat "$tmp/stdout"
        for f in $(cd "$work" && ls | sort); do
            echo "file $f $(sha256sum "$work/$f" | cut -d' ' -f1)"
        done
    } >>"$out"
    rm -rf "$work"
done <"$list"
if [ "$mode" = record ]; then
    cp "$out" "$expected"
    echo "recorded $n commands in $expected"
    exit 0
fi
if diff -u "$expected" "$out" >"$tmp/diff"; then
    echo "goldens: $n commands, all outputs identical"
else
    head -200 "$tmp/diff"
    echo "goldens: outputs differ from $expected (scripts/goldens.sh record to accept a deliberate change)"
    exit 1
fi
