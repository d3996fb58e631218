#!/usr/bin/env python3
"""Where two perf recordings of sluice differ, by thread and by symbol:
    bench/perfdiff.py A.data[,A2.data...] B.data[,B2.data...] [ROWS]
Each side is the mean of its files (record several runs interleaved: on a
shared machine one run's CPU moves by a fifth). Prints the milliseconds of
cpu-clock samples (`perf record -e cpu-clock`) of the stream's loop (the
process's main thread) and of the other threads (pool workers), then the
ROWS symbols (default 30) whose time changed most, with the loop's part.
JIT-compiled Lua code counts as one symbol, [JIT]."""
import collections
import subprocess
import sys


def load(path):
    out = subprocess.run(["perf", "script", "-i", path, "-F", "pid,tid,period,ip,sym,dso"],
                         capture_output=True, text=True, check=True).stdout
    ms = collections.Counter()
    for line in out.splitlines():
        f = line.split()
        if len(f) < 4 or "/" not in f[0]:
            continue
        pid, tid = f[0].split("/")
        try:
            period = int(f[1])
        except ValueError:
            continue
        sym = " ".join(f[3:-1]) or "?"
        if sym == "[unknown]" and "perf-" in f[-1]:
            sym = "[JIT]"
        ms[("loop" if pid == tid else "other", sym)] += period / 1e6
    return ms


def mean(arg):
    files = arg.split(",")
    total = collections.Counter()
    for f in files:
        total.update(load(f))
    return {k: v / len(files) for k, v in total.items()}


a, b = mean(sys.argv[1]), mean(sys.argv[2])
rows = int(sys.argv[3]) if len(sys.argv) > 3 else 30


def part(d, role=None, sym=None):
    return sum(v for (r, s), v in d.items() if (role is None or r == role) and (sym is None or s == sym))


print(f"all threads: {part(a):.0f} -> {part(b):.0f} ms")
print(f"stream's loop (main thread): {part(a, 'loop'):.0f} -> {part(b, 'loop'):.0f} ms")
print(f"other threads (pool workers): {part(a, 'other'):.0f} -> {part(b, 'other'):.0f} ms")
syms = {s for _, s in a} | {s for _, s in b}
diff = sorted(syms, key=lambda s: -abs(part(b, sym=s) - part(a, sym=s)))
print(f"{'change':>8} {'A ms':>8} {'B ms':>8} {'loop A':>7} {'loop B':>7}  symbol")
for s in diff[:rows]:
    print(f"{part(b, sym=s) - part(a, sym=s):+8.1f} {part(a, sym=s):8.1f} {part(b, sym=s):8.1f} "
          f"{part(a, 'loop', s):7.1f} {part(b, 'loop', s):7.1f}  {s[:60]}")
