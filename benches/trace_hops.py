#!/usr/bin/env python3
"""Where a traced run's time goes between tasks: reads grosr's Chrome trace JSON (Trace::
to_chrome_json, e.g. from `examples/trace_summary.rs`) and prints, for every task whose origin is
in the trace (its spawner, or the graph predecessor whose end released it), the wait from the
origin's end to the task's start, grouped by the two kinds and by where the task ran against its
origin (same warp, same SM, other SM); then the critical path back from the last task to end.

    python3 benches/trace_hops.py TRACE.json                 hops and the critical path
    python3 benches/trace_hops.py TRACE.json --block 110     block 110's tasks in time order

Session 35 found the mixed DAG's pattern with it (benches/NOTES.md, "Mixed DAGs: where a level's
time goes")."""
import collections
import json
import statistics
import sys


def load(path):
    events = json.load(open(path))["traceEvents"]
    names = {e["tid"]: e["args"]["name"] for e in events
             if e.get("ph") == "M" and e.get("name") == "thread_name" and e.get("pid") == 1}
    tasks = {}
    for e in events:
        if e.get("ph") == "X" and e.get("cat") == "task":
            a = e["args"]
            tasks[a["id"]] = dict(kind=e["name"], start=e["ts"], end=e["ts"] + e["dur"],
                                  track=names.get(e["tid"], "?"), parent=a["parent"], node=a.get("node"))
    return tasks


def where(task, origin):
    """`SM s block b warp w lane l` tracks: same warp, same SM or other SM."""
    warp = lambda t: t["track"].split(" lane")[0]
    sm = lambda t: t["track"].split(" block")[0]
    return "same warp" if warp(task) == warp(origin) else "same SM" if sm(task) == sm(origin) else "other SM"


def main():
    tasks = load(sys.argv[1])
    if "--block" in sys.argv:
        block = " block %s " % sys.argv[sys.argv.index("--block") + 1]
        t0 = min(t["start"] for t in tasks.values())
        for t in sorted((t for t in tasks.values() if block in t["track"]), key=lambda t: t["start"]):
            print("%9.2f %6.2f  %-10s %-32s node %s" % (t["start"] - t0, t["end"] - t["start"],
                                                        t["kind"], t["track"], t["node"]))
        return
    hops = collections.defaultdict(list)
    for t in tasks.values():
        o = tasks.get(t["parent"])
        if o:
            hops[(o["kind"], t["kind"], where(t, o))].append(t["start"] - o["end"])
    print("%-12s %-12s %-10s %6s %8s %8s" % ("origin", "task", "where", "hops", "median", "p90"))
    for (a, b, w), v in sorted(hops.items()):
        v.sort()
        print("%-12s %-12s %-10s %6d %8.2f %8.2f" % (a, b, w, len(v), statistics.median(v), v[int(len(v) * 0.9)]))
    t = max(tasks.values(), key=lambda t: t["end"])
    path = []
    while t:
        path.append(t)
        t = tasks.get(t["parent"])
    path.reverse()
    print("critical path: %d tasks" % len(path))
    for a, b in zip(path, path[1:]):
        print("  %-10s -> %-10s wait %7.2f  %s -> %s" % (a["kind"], b["kind"], b["start"] - a["end"],
                                                        a["track"], b["track"]))


if __name__ == "__main__":
    main()
