#!/usr/bin/env python3
"""Per-item pipeline statistics of an `amend eval --pipeline` run directory, from its traces:
items, tool calls per item, how runs ended, and the routed events by kind and class.
Usage: pipeline-stats.py DIR"""
import collections
import glob
import gzip
import json
import sys

d = sys.argv[1]
items, tool_calls = 0, 0
status = collections.Counter()
events = collections.Counter()
for path in sorted(glob.glob(f"{d}/traces/*")):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        for line in f:
            r = json.loads(line)
            if r.get("type") != "solve":
                continue
            det = (r.get("data") or {}).get("detail") or {}
            if "pipeline" not in det:
                continue
            items += 1
            tool_calls += det.get("tool_calls", 0)
            status[det.get("status", {}).get("status", "?")] += 1
            for e in det.get("events", []):
                events[f"{e['kind']}:{e['class']}"] += 1
print(json.dumps({
    "items": items,
    "tool_calls_per_item": round(tool_calls / max(items, 1), 3),
    "status": dict(status),
    "events": dict(sorted(events.items())),
}))
