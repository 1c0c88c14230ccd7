#!/usr/bin/env python3
"""Side-by-side table of report JSONs (benches/ab_report.sh's results, or any `report --json`).

    python3 benches/ab_table.py DIR [PATTERN]

Reads DIR/*.json (names NAME-rROUND-GROUP.json), keeps those whose name contains PATTERN, and
prints one Markdown row per table row with each run's first value (the Resident column), runs in
file-name order. Compare within a row: every run of a row comes from the same call."""
import glob
import json
import os
import sys

def main():
    folder = sys.argv[1]
    pattern = sys.argv[2] if len(sys.argv) > 2 else ""
    runs = []
    for path in sorted(glob.glob(os.path.join(folder, "*.json"))):
        name = os.path.basename(path)[:-5]
        if pattern in name:
            with open(path) as f:
                runs.append((name, json.load(f)))
    rows, order = {}, []
    for name, report in runs:
        for table in report["tables"]:
            for row in table["rows"]:
                key = (table["id"], row["workload"])
                if key not in rows:
                    rows[key] = {}
                    order.append(key)
                value = row["values"][0] if row["values"] else None
                rows[key][name] = value
    print("| table | workload | " + " | ".join(n for n, _ in runs) + " |")
    print("|---|---|" + "---:|" * len(runs))
    for key in order:
        cells = ["-" if rows[key].get(n) is None else "%.4g" % rows[key][n] for n, _ in runs]
        print("| %s | %s | %s |" % (key[0], key[1][:60], " | ".join(cells)))

if __name__ == "__main__":
    main()
