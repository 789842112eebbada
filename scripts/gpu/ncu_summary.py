#!/usr/bin/env python3
"""Sums an Nsight Compute CSV (--metrics gpu__time_duration.sum --csv
--print-units base) by kernel: time, launches, mean, and share, plus the
same by class (cuBLASLt GEMM, attention, add+LayerNorm, ...)."""
import csv
import sys
from collections import defaultdict

lines = open(sys.argv[1]).read().splitlines()
start = next((i for i, l in enumerate(lines) if l.startswith('"ID"')), len(lines))  # the program's own output comes first
rows = [r for r in csv.DictReader(lines[start:]) if r.get("Metric Name") == "gpu__time_duration.sum"]
by = defaultdict(lambda: [0.0, 0, ""])
cls = defaultdict(float)


def klass(n):
    n = n.lower()
    if "splitkreduce" in n or "reduce_kernel" in n:
        return "GEMM split-K reduce"
    if "nvjet" in n or "gemm" in n or "xmma" in n or "cutlass" in n:
        return "GEMM"
    for k, c in (("attn", "attention"), ("add_ln", "add+LayerNorm"), ("embed_ln", "embeddings"), ("pool", "pool"),
                 ("gelu", "gelu"), ("memset", "memset")):
        if k in n:
            return c
    return "other"


total = 0.0
for r in rows:
    name = r["Kernel Name"]
    ns = float(r["Metric Value"].replace(",", ""))
    e = by[name]
    e[0] += ns
    e[1] += 1
    e[2] = r.get("Grid Size", "") + " x " + r.get("Block Size", "")
    cls[klass(name)] += ns
    total += ns
print(f"{len(rows)} kernels, {total/1e6:.3f} ms in all")
for c, ns in sorted(cls.items(), key=lambda x: -x[1]):
    print(f"  {c:22s} {ns/1e6:9.3f} ms {100*ns/total:5.1f}%")
print("top kernels: total ms, launches, mean us, grid x block, name")
for name, (ns, n, g) in sorted(by.items(), key=lambda x: -x[1][0])[:16]:
    print(f"  {ns/1e6:8.3f} {n:5d} {ns/n/1e3:8.1f}  {g:28s} {name[:110]}")
