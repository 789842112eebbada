#!/usr/bin/env python3
"""One line of an `embed -v --output` job's timeline (issue 16, helper 16b).

Usage: joblog.py START_NS END_NS LOGFILE. START_NS/END_NS are the shell's
clock around the process; the log is embed -v's stderr. Prints the whole
job, the time before Go's main (exec, runtime and package init), engines
ready, bulk.Run and its engine timing, and the time after the engines
closed (process exit).
"""
import datetime
import re
import sys


def dur(s):
    """Go time.Duration text (1.2s, 549ms, 220µs, 0s) in ms."""
    total = 0.0
    for num, unit in re.findall(r"([0-9.]+)(ns|µs|us|ms|s|m|h)", s):
        total += float(num) * {"ns": 1e-6, "µs": 1e-3, "us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4, "h": 3.6e6}[unit]
    return total


def stamp(line):
    m = re.search(r"time=(\S+)", line)
    t = datetime.datetime.strptime(m.group(1).rstrip("Z")[:23], "%Y-%m-%dT%H:%M:%S.%f")
    return t.replace(tzinfo=datetime.timezone.utc).timestamp() * 1e3


def field(line, name):
    m = re.search(r"\b" + name + r"=(\S+)", line)
    return m.group(1) if m else ""


start, end, path = int(sys.argv[1]) / 1e6, int(sys.argv[2]) / 1e6, sys.argv[3]
lines = open(path, encoding="utf-8", errors="replace").read().splitlines()
ready = next((l for l in lines if 'msg="engines ready"' in l), "")
done = next((l for l in lines if 'msg="embed done"' in l), "")
closed = next((l for l in lines if 'msg="engines closed"' in l), "")
out = [f"whole {end - start:.0f} ms"]
if ready:
    proc0 = stamp(ready) - dur(field(ready, "since_start"))
    out.append(f"pre-main ~{proc0 - start:.0f}")
    out.append(f"ready {dur(field(ready, 'since_start')):.0f}")
if done:
    for k in ("run", "first_batch", "last_result", "starved"):
        out.append(f"{k} {dur(field(done, k)):.0f}")
    out.append(f"pipelined {field(done, 'pipelined_engines')}")
if closed:
    out.append(f"closed {dur(field(closed, 'since_start')):.0f} took {dur(field(closed, 'took')):.0f}")
    out.append(f"after-closed ~{end - stamp(closed):.0f} (rss {field(closed, 'rss')}, go heap {field(closed, 'go_heap_mb')} MB, peak {field(closed, 'peak_rss')})")
print(", ".join(out))
