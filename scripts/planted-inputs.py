#!/usr/bin/env python3
"""Inputs for `amend pipeline faults` from GSM8K-format lines: the question, its gold answer,
and a planted fault: the solution's first calculation as a calculator call with its second
operand replaced by the smallest larger whole number that is neither in the question nor one
of the grounding critic's constants. Usage: planted-inputs.py FILE N > inputs.jsonl"""
import json
import re
import sys

CONSTANTS = {1, 2, 7, 12, 24, 52, 60, 100, 365, 1000}

path, n = sys.argv[1], int(sys.argv[2])
with open(path) as f:
    for i, line in enumerate(f):
        if i == n:
            break
        r = json.loads(line)
        gold = int(r["answer"].split("####")[-1])
        out = {"question": r["question"], "gold": gold}
        m = re.search(r"<<\s*([\d.]+)\s*([-+*/])\s*([\d.]+)\s*=", r["answer"])
        if m:
            seen = {float(x) for x in re.findall(r"\d+(?:\.\d+)?", r["question"])}
            b = int(float(m.group(3))) + 1
            while b in seen or b in CONSTANTS:
                b += 1
            expr = f"{m.group(1)} {m.group(2)} {b}"
            out["fault"] = json.dumps({"tool": "calculator", "arguments": {"expr": expr}})
        print(json.dumps(out))
