#!/usr/bin/env python3
"""Runs a command and prints its wall time, its CPU (user + sys, from the
kernel's accounting at exit) and the CPU of its main thread (a sluice run's
stream loop; the rest is its pool workers'), in seconds:
    WALL CPU MAIN
The main thread's figure is the last of samples taken every 10 ms from
/proc/PID/task/PID/stat, so it misses at most the run's last 10 ms.
Usage: bench/threadcpu.py COMMAND [ARG]... (its stdout goes to /dev/null)."""
import os
import subprocess
import sys
import time

HZ = os.sysconf("SC_CLK_TCK")


def main_thread_cpu(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    fields = s[s.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / HZ


t0 = time.monotonic()
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
main = 0.0
while True:
    pid, status, ru = os.wait4(p.pid, os.WNOHANG)
    if pid:
        break
    m = main_thread_cpu(p.pid)
    if m is not None:
        main = m
    time.sleep(0.01)
wall = time.monotonic() - t0
code = os.waitstatus_to_exitcode(status)
if code != 0:
    sys.exit(f"threadcpu: {sys.argv[1]} exited {code}")
print(f"{wall:.3f} {ru.ru_utime + ru.ru_stime:.3f} {main:.3f}")
