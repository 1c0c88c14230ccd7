#!/usr/bin/env python3
"""Rust-body twins against their CUDA C bodies (issue 21: within 3%) in report JSONs of one build:
per cell, the median C value, the median Rust value, their ratio, and every run's ratio.

    python3 benches/twins.py RUN1.json [RUN2.json ...]"""
import json, re, statistics, sys
strip = lambda s: re.sub(r",? ?Rust bod(y|ies)", "", s).strip(" ,")
cells = {}
for path in sys.argv[1:]:
    for t in json.load(open(path))["tables"]:
        cols = t.get("columns") or []
        rows = {r["workload"]: r.get("values") or [] for r in t["rows"]}
        for w, vals in rows.items():
            for i, c in enumerate(cols):
                if "Rust" in c and strip(c) in cols:
                    j = cols.index(strip(c))
                    if i < len(vals) and vals[i] and vals[j]:
                        cells.setdefault((t["id"], w, c), []).append((vals[j], vals[i]))
            if "Rust" in w and strip(w) in rows:
                for c, a, b in zip(cols, rows[strip(w)], vals):
                    if a and b:
                        cells.setdefault((t["id"], w, c), []).append((a, b))
for (tid, w, c), v in cells.items():
    mc, mr = statistics.median(a for a, _ in v), statistics.median(b for _, b in v)
    runs = " ".join(f"{b / a:.3f}" for a, b in v)
    print(f"{tid[:12]:12} {w[:30]:30} {c[:30]:30} C {mc:.4g} Rust {mr:.4g} = {mr / mc:.3f} ({runs})")
