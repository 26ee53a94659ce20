#!/usr/bin/env python3
"""Checks runs/demo/summary.json as scripts/demo.sh writes it: every field present and finite, and the
federated adapter better than the base model and than local-only training on the pooled validation set."""
import json
import math
import sys

path = sys.argv[1] if len(sys.argv) > 1 else "runs/demo/summary.json"
with open(path) as f:
    s = json.load(f)
failures = []
ways = ("base", "local", "federated", "centralized")
for name in ("cardiology", "oncology", "paediatrics"):
    site = s.get("sites", {}).get(name)
    if site is None:
        failures.append(f"sites.{name} is missing")
        continue
    for w in ways:
        if not isinstance(site.get(w), (int, float)) or not math.isfinite(site[w]):
            failures.append(f"sites.{name}.{w} is not a finite number: {site.get(w)!r}")
pooled = s.get("pooled", {})
for w in ways:
    if not isinstance(pooled.get(w), (int, float)) or not math.isfinite(pooled[w]):
        failures.append(f"pooled.{w} is not a finite number: {pooled.get(w)!r}")
for key in ("rounds", "seconds"):
    if not isinstance(s.get(key), int) or s[key] <= 0:
        failures.append(f"{key} is not a positive integer: {s.get(key)!r}")
if not failures:
    if not pooled["federated"] < pooled["base"]:
        failures.append(f"federated {pooled['federated']} does not improve on the base model {pooled['base']}")
    if not pooled["federated"] < pooled["local"]:
        failures.append(f"federated {pooled['federated']} does not beat local-only {pooled['local']} on the pool")
for f in failures:
    print(f"demo summary: FAIL: {f}")
print(f"demo summary: {'FAIL' if failures else 'ok'}: pooled " + ", ".join(f"{w} {pooled.get(w)}" for w in ways))
sys.exit(1 if failures else 0)
