#!/usr/bin/env python3
"""Medians over rounds of report runs, a column per build (benches/device_ab.sh's results).

    python3 benches/ab_medians.py DIR TAG[,TAG...]

Reads DIR/TAG-rROUND-gGROUP.json and prints, for every table row, the Resident and Fused
columns' median per TAG (with the number of runs) and each TAG's ratio to the first."""
import glob
import json
import os
import re
import statistics
import sys


def main():
    folder, tags = sys.argv[1], sys.argv[2].split(",")
    values, order = {}, []
    for path in sorted(glob.glob(os.path.join(folder, "*.json"))):
        m = re.match(r"(.+)-r(\d+)-g(\d+)\.json$", os.path.basename(path))
        if not m or m.group(1) not in tags:
            continue
        with open(path) as f:
            report = json.load(f)
        for table in report["tables"]:
            columns = table.get("columns") or []
            for row in table["rows"]:
                for i, x in enumerate(row["values"]):
                    column = columns[i] if i < len(columns) else str(i)
                    if x is None or column not in ("Resident", "Fused"):
                        continue
                    key = (table["id"], row["workload"][:48], column)
                    if key not in values:
                        values[key] = {}
                        order.append(key)
                    values[key].setdefault(m.group(1), []).append(x)
    print("| table | row | column | " + " | ".join(tags) + " | "
          + " | ".join(f"{t} / {tags[0]}" for t in tags[1:]) + " |")
    for key in order:
        med = {t: statistics.median(v) for t, v in values[key].items()}
        cells = ["%.4g (%d)" % (med[t], len(values[key][t])) if t in med else "-" for t in tags]
        base = med.get(tags[0])
        ratios = ["%.3f" % (med[t] / base) if t in med and base else "-" for t in tags[1:]]
        print("| %s | %s | %s | %s | %s |" % (key[0], key[1], key[2], " | ".join(cells), " | ".join(ratios)))


if __name__ == "__main__":
    main()
