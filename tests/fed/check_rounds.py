#!/usr/bin/env python3
"""Recomputes every committed round of an aggregator's state_dir from the updates the sites kept,
independently of the C code (plain Python, double precision), and compares.

  check_rounds.py STATE_DIR --sites SITE_STATE_DIR... [--strategy fedavg|fedadam] [--server-lr X]
                  [--beta1 X] [--beta2 X] [--tau X] [--weighting examples|uniform] [--tol X]

For round r: g = the payload of rounds/r-1/adapter_model.safetensors (the adapter's tensors in
payload order: layer, module q..down, A then B). Each site kept what it sent as
SITE_STATE/updates/rNNNN-<first 16 hex of sha256(g)>.bin (the payload, then 6 doubles of metrics);
its name is the state directory's name without "site-". The weights are the example counts
metrics.jsonl reports. Then Δ = Σ w_k (u_k − g) / Σ w_k and
  fedavg   g_r = g + η·Δ
  fedadam  m ← β1·m + (1 − β1)·Δ;  v ← β2·v + (1 − β2)·Δ²;  g_r = g + η·m / (√v + τ)
           (Reddi et al. 2021 without bias correction; m starts at 0 and v at τ²)
must equal rounds/r/adapter_model.safetensors element by element within tol·max(1, |x|); for
fedadam the stored server state (m then v) is compared too, within 1e-6 of the largest
element of m (and of v). Also checked: the set of sites whose
update file names this round's global adapter equals the set the aggregator averaged, each file's
digest equals the one metrics.jsonl recorded, and the round moved the adapter at all.
Exit status 0 when every round matches, 1 otherwise."""
import argparse
import hashlib
import json
import math
import os
import struct
import sys

MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def read_safetensors(path):
    """{name: (shape, [floats])} of an F32 safetensors file."""
    with open(path, "rb") as f:
        blob = f.read()
    (hlen,) = struct.unpack_from("<Q", blob, 0)
    header = json.loads(blob[8 : 8 + hlen])
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        if t["dtype"] != "F32":
            raise ValueError(f"{path}: {name} is {t['dtype']}, expected F32")
        begin, end = t["data_offsets"]
        n = (end - begin) // 4
        if n != math.prod(t["shape"]):
            raise ValueError(f"{path}: {name} has {n} floats for shape {t['shape']}")
        out[name] = (t["shape"], list(struct.unpack_from(f"<{n}f", blob, 8 + hlen + begin)))
    return out


def adapter_payload(round_dir):
    """The adapter as it travels: tensors in layer, module, A-then-B order."""
    tensors = read_safetensors(os.path.join(round_dir, "adapter_model.safetensors"))
    layers = {int(name.split(".layers.")[1].split(".")[0]) for name in tensors}
    values = []
    for layer in sorted(layers):
        for module in MODULES:
            block = "self_attn" if MODULES.index(module) <= 3 else "mlp"
            for which in "AB":
                name = f"base_model.model.model.layers.{layer}.{block}.{module}.lora_{which}.weight"
                if name in tensors:
                    values += tensors.pop(name)[1]
    if tensors:
        raise ValueError(f"{round_dir}: unexpected tensors {sorted(tensors)[:3]}")
    return values


def pack(values):
    return struct.pack(f"<{len(values)}f", *values)


def read_update(path, n):
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) != 4 * n + 6 * 8:
        raise ValueError(f"{path}: {len(blob)} bytes, expected {4 * n} of payload and 48 of metrics")
    return blob[: 4 * n], list(struct.unpack_from(f"<{n}f", blob, 0))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("state_dir")
    ap.add_argument("--sites", nargs="+", required=True)
    ap.add_argument("--strategy", choices=["fedavg", "fedadam"], default="fedavg")
    ap.add_argument("--server-lr", type=float, default=1.0)
    ap.add_argument("--beta1", type=float, default=0.9)
    ap.add_argument("--beta2", type=float, default=0.99)
    ap.add_argument("--tau", type=float, default=1e-3)
    ap.add_argument("--weighting", choices=["examples", "uniform"], default="examples")
    ap.add_argument("--tol", type=float, default=1e-6)
    a = ap.parse_args()

    with open(os.path.join(a.state_dir, "metrics.jsonl")) as f:
        lines = [json.loads(line) for line in f if line.strip()]
    if not lines:
        print(f"{a.state_dir}: no committed round")
        return 1
    sites = {os.path.basename(d.rstrip("/")).removeprefix("site-"): d for d in a.sites}
    bad = 0
    g = adapter_payload(os.path.join(a.state_dir, "rounds", "0000"))
    n = len(g)
    m, v = [0.0] * n, [a.tau * a.tau] * n
    for expect_round, line in enumerate(lines, start=1):
        r = line["round"]
        if r != expect_round:
            print(f"metrics.jsonl: line {expect_round} is round {r}")
            return 1
        digest = hashlib.sha256(pack(g)).hexdigest()
        kept = {}
        for name, d in sites.items():
            path = os.path.join(d, "updates", f"r{r:04d}-{digest[:16]}.bin")
            if os.path.exists(path):
                kept[name] = read_update(path, n)
        averaged = line["sites"]
        if set(kept) != set(averaged):
            print(f"round {r}: the aggregator averaged {sorted(averaged)}, the sites kept updates from {sorted(kept)}")
            bad += 1
        total, delta, weights = 0.0, [0.0] * n, []
        for name in sorted(kept):
            raw, u = kept[name]
            if name in averaged and hashlib.sha256(raw).hexdigest() != averaged[name]["sha256"]:
                print(f"round {r}: {name}'s kept update is not the one the aggregator recorded")
                bad += 1
            w = float(averaged.get(name, {}).get("example_count", 0)) if a.weighting == "examples" else 1.0
            total += w
            weights.append(w)
            for i in range(n):
                delta[i] += w * (u[i] - g[i])
        if total <= 0:
            print(f"round {r}: no weight")
            return 1
        delta = [d / total for d in delta]
        if a.strategy == "fedavg":
            want = [g[i] + a.server_lr * delta[i] for i in range(n)]
        else:
            m = [a.beta1 * m[i] + (1 - a.beta1) * delta[i] for i in range(n)]
            v = [a.beta2 * v[i] + (1 - a.beta2) * delta[i] ** 2 for i in range(n)]
            want = [g[i] + a.server_lr * m[i] / (math.sqrt(v[i]) + a.tau) for i in range(n)]
        round_dir = os.path.join(a.state_dir, "rounds", f"{r:04d}")
        got = adapter_payload(round_dir)
        worst = max(abs(x - y) / max(1.0, abs(y)) for x, y in zip(got, want))
        moved = max(abs(x - y) for x, y in zip(got, g))
        ok = len(got) == n and worst <= a.tol and moved > 1e-5
        if a.strategy == "fedadam":
            state = read_safetensors(os.path.join(round_dir, "server_state.safetensors"))["state"][1]
            # m and v are far below 1: each is compared relative to its largest element.
            worst_state = max(
                max(abs(x - y) for x, y in zip(stored, want_state)) / max(abs(y) for y in want_state)
                for stored, want_state in ((state[:n], m), (state[n:], v)))
            ok = ok and len(state) == 2 * n and worst_state <= 1e-6
            print(f"round {r}: server state m, v off by at most {worst_state:.3g} of their largest element")
        print(f"round {r}: {len(kept)} updates {sorted(kept)}, weights {weights}, "
              f"adapter moved by up to {moved:.3g}, recomputation off by at most {worst:.3g}: {'ok' if ok else 'MISMATCH'}")
        bad += not ok
        g = got
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
