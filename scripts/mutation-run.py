#!/usr/bin/env python3
"""A hostile user's mutation run against the release command line (issue 15).

    scripts/mutation-run.py [--runs N] [--seed S] [--kinds elf,memmap,...] [--bin PATH] [--timeout SECONDS]

For every input kind a user hands cocomem, each committed fuzz seed (Fuzz/corpus/KIND/) is mutated at random,
seeded: bytes overwritten, bits flipped, bytes inserted or deleted, a part repeated, the file cut short, its
line endings turned into CRLF, a number replaced by an extreme one (0, -1, 2^63, 2^64-1, 2^64, a 30-digit
number). Each mutant is handed to the release binary exactly as a user would, with the command of its kind
(below), in a fresh output directory, and the run is judged:

  crash     killed by a signal (a Swift trap is SIGILL or SIGTRAP, an abort SIGABRT)
  hang      still running after --timeout seconds (default 10, libFuzzer's limit in scripts/fuzz.sh), then killed
  memory    peak resident memory above 1 GiB (ru_maxrss of the run)
  unclear   a non-zero exit whose standard error does not hold exactly one line starting with "error:"
  leftover  a temporary file (".NAME.cocomem-PID.tmp" and the like) left in the output directory
  exit      an exit status other than 0, 1, 2 or 64

Anything else passes (an accepted input or one clear refusal). Prints one line per finding (the mutant is kept
under --keep DIR, default out/mutation/KIND/) and a summary line

    mutation: K kinds, E executions, F findings

and exits 1 if there was a finding. The release binary must exist (swift build -c release --product cocomem).
"""
import argparse
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The command of each kind: {f} is the mutant, {o} a fresh output directory.
KINDS = {
    "elf": ["dump", "--input", "{f}", "-d", "31", "-l", "-o", "{o}/dump"],
    "dump-E": ["dump", "--input", "{f}", "-d", "1", "-E", "-o", "{o}/dump"],
    "memmap": ["accept", "--memmap", "{f}"],
    "calls": ["accept", "--memmap", os.path.join(ROOT, "Fuzz/corpus/memmap/tdx-8g.txt"), "--calls", "{f}"],
    "calibration": ["boot", "--memory", "4G", "--calibration", "{f}"],
    "host": ["host", "{f}"],
    "scenario": ["run", "{f}", "--out", "{o}/run", "--no-progress"],
    "sweep": ["sweep", "{f}", "--db", "{o}/results.sqlite", "--no-progress", "--jobs", "1"],
    "dmesg": ["compare", "{f}"],
}
# Where each kind's seeds are (the fuzz corpora hold one directory per parser).
SEEDS = {"dump-E": "elf"}
BINARY = {"elf", "dump-E"}

EXTREMES = [b"0", b"-1", b"9223372036854775808", b"18446744073709551615", b"18446744073709551616",
            b"0xffffffffffffffff", b"0x10000000000000000", b"999999999999999999999999999999", b"1P", b"16E"]
NUMBER = re.compile(rb"0x[0-9a-fA-F]+|\d+")


def mutate(data: bytes, rng: random.Random, binary: bool) -> bytes:
    """One to three seeded mutations of `data`. A binary file (an ELF vmcore) keeps its layout in most mutants:
    its bytes are overwritten or flipped in place, and one mutant in nine is cut short, since an insertion or a
    deletion moves every offset and the file is refused at its headers."""
    b = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        op = rng.choice([0, 0, 0, 0, 1, 1, 1, 1, 5]) if binary else rng.randrange(8)
        if op == 0 and b:                                   # overwrite bytes
            for _ in range(rng.randint(1, 8)):
                b[rng.randrange(len(b))] = rng.randrange(256)
        elif op == 1 and b:                                 # flip a bit
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        elif op == 2:                                       # insert bytes
            i = rng.randint(0, len(b))
            b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif op == 3 and b:                                 # delete a run
            i = rng.randrange(len(b))
            del b[i:i + rng.randint(1, 64)]
        elif op == 4 and b:                                 # repeat a part
            i = rng.randrange(len(b))
            part = b[i:i + rng.randint(1, 256)]
            j = rng.randint(0, len(b))
            b[j:j] = part * rng.randint(1, 8)
        elif op == 5 and b:                                 # cut the file short
            del b[rng.randrange(len(b)):]
        elif op == 6:                                       # CRLF line endings
            b = bytearray(bytes(b).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
        elif op == 7:                                       # an extreme number
            numbers = list(NUMBER.finditer(bytes(b)))
            if numbers:
                m = rng.choice(numbers)
                b[m.start():m.end()] = rng.choice(EXTREMES)
    return bytes(b)


def judge(rc, err, rss_kib, timed_out, outdir):
    if timed_out:
        return "hang"
    if rc < 0:
        return f"crash (signal {signal.Signals(-rc).name})"
    if rss_kib > 1024 * 1024:
        return f"memory ({rss_kib // 1024} MiB)"
    if rc not in (0, 1, 2, 64):
        return f"exit {rc}"
    if rc != 0:
        lines = [l for l in err.splitlines() if l.startswith("error:")]
        if len(lines) != 1:
            return f"unclear ({len(lines)} error lines)"
    for dirpath, _, files in os.walk(outdir):
        for name in files:
            if name.endswith(".tmp") or ".tmp-" in name:
                return f"leftover ({os.path.join(dirpath, name)})"
    return None


def peak_rss_run(binary, argv, timeout):
    """Like run_one, with the child's own peak RSS from wait4()."""
    err_file = tempfile.TemporaryFile()
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            devnull = os.open(os.devnull, os.O_RDWR)
            os.dup2(devnull, 0)
            os.dup2(devnull, 1)
            os.dup2(err_file.fileno(), 2)
            os.execv(binary, [binary] + argv)
        finally:
            os._exit(127)
    deadline = time.monotonic() + timeout
    timed_out = False
    while True:
        wpid, status, usage = os.wait4(pid, os.WNOHANG)
        if wpid == pid:
            break
        if time.monotonic() > deadline:
            timed_out = True
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            _, status, usage = os.wait4(pid, 0)
            break
        time.sleep(0.005)
    rc = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    err_file.seek(0)
    err = err_file.read().decode("utf-8", "replace")
    err_file.close()
    return rc, err, usage.ru_maxrss, timed_out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=500, help="mutants per kind (default 500)")
    ap.add_argument("--seed", type=int, default=15)
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--bin", default=os.path.join(ROOT, ".build/release/cocomem"))
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--keep", default=os.path.join(ROOT, "out/mutation"))
    a = ap.parse_args()
    if not os.access(a.bin, os.X_OK):
        print(f"error: no cocomem at {a.bin} (swift build -c release --product cocomem)", file=sys.stderr)
        return 2
    kinds = a.kinds.split(",")
    for k in kinds:
        if k not in KINDS:
            print(f"error: unknown kind '{k}' (kinds: {','.join(KINDS)})", file=sys.stderr)
            return 2
    total = findings = 0
    scratch = tempfile.mkdtemp(prefix="cocomem-mutation.")
    try:
        for kind in kinds:
            rng = random.Random(f"{a.seed}/{kind}")
            seed_dir = os.path.join(ROOT, "Fuzz/corpus", SEEDS.get(kind, kind))
            seeds = [open(os.path.join(seed_dir, n), "rb").read() for n in sorted(os.listdir(seed_dir))]
            start, found, outcomes = time.monotonic(), 0, {}
            for i in range(a.runs):
                data = mutate(rng.choice(seeds), rng, kind in BINARY)
                f = os.path.join(scratch, f"input-{kind}")
                with open(f, "wb") as fh:
                    fh.write(data)
                o = os.path.join(scratch, "out")
                shutil.rmtree(o, ignore_errors=True)
                os.makedirs(o)
                argv = [x.replace("{f}", f).replace("{o}", o) for x in KINDS[kind]]
                rc, err, rss, timed_out = peak_rss_run(a.bin, argv, a.timeout)
                total += 1
                outcomes[rc] = outcomes.get(rc, 0) + 1
                verdict = judge(rc, err, rss, timed_out, o)
                if verdict:
                    found += 1
                    os.makedirs(os.path.join(a.keep, kind), exist_ok=True)
                    kept = os.path.join(a.keep, kind, f"mutant-{i}")
                    with open(kept, "wb") as fh:
                        fh.write(data)
                    last = err.strip().splitlines()[-1:] or [""]
                    print(f"mutation: {kind} #{i}: {verdict}: kept {kept}; stderr: {last[0][:200]}", flush=True)
            findings += found
            exits = ", ".join(f"exit {k}: {v}" for k, v in sorted(outcomes.items()))
            print(f"mutation: {kind}: {a.runs} mutants in {time.monotonic() - start:.0f} s ({exits}), {found} findings",
                  flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"mutation: {len(kinds)} kinds, {total} executions, {findings} findings")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
