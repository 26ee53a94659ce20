#!/bin/bash
# Issue 6, exact LoRA aggregation: with lora_mode = ffa, three sites, two rounds. A is the plan's
# seeded initialisation at the aggregator (every round) and in every site's final adapter, bit for
# bit; only B travels; and each committed round's B·A equals the example-weighted mean of the sites'
# B_k·A within 1e-6 (recomputed below in Python, double precision, from the updates the sites kept).
# Averaging with uniform weights must not match, so the comparison can fail.
source "$FEDLORA_SOURCE_DIR/tests/fed/lib.sh"
cd "$fed_run"

fed_start_agg agg --set model.lora_mode=ffa --set rounds.total=2
for s in alpha beta gamma; do fed_start_site $s; done
fed_expect_run_done 90 alpha beta gamma
expect "two rounds committed" "0000 0001 0002" "$(ls agg/rounds | xargs)"

check_ffa() {
  python3 - "$@" <<'EOF'
import hashlib, json, os, struct, sys

state, weighting = sys.argv[1], sys.argv[2]
sites = {os.path.basename(d).removeprefix("site-"): d for d in sys.argv[3:]}
MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

def tensors(path):
    blob = open(path, "rb").read()
    (hlen,) = struct.unpack_from("<Q", blob, 0)
    header = json.loads(blob[8:8 + hlen])
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        b, e = t["data_offsets"]
        out[name] = (t["shape"], list(struct.unpack_from(f"<{(e - b) // 4}f", blob, 8 + hlen + b)))
    return out

def modules(ts):
    """(layer, module) -> name prefix, in payload order."""
    keys = []
    for name in ts:
        layer = int(name.split(".layers.")[1].split(".")[0])
        module = name.split(".")[-3]
        keys.append((layer, MODULES.index(module), name.rsplit(".lora_", 1)[0]))
    return sorted(set(keys))

def matmul(b, bshape, a, ashape):
    out_f, r = bshape
    r2, inf = ashape
    assert r == r2
    return [sum(b[i * r + k] * a[k * inf + j] for k in range(r)) for i in range(out_f) for j in range(inf)]

def adapter(round_no):
    return tensors(os.path.join(state, "rounds", f"{round_no:04d}", "adapter_model.safetensors"))

lines = [json.loads(l) for l in open(os.path.join(state, "metrics.jsonl"))]
a0 = adapter(0)
mods = modules(a0)
bad = 0
# A never moves: every round's A and every site's final A are round 0's, bit for bit.
for r in range(1, len(lines) + 1):
    ar = adapter(r)
    for _, _, p in mods:
        if ar[p + ".lora_A.weight"][1] != a0[p + ".lora_A.weight"][1]:
            print(f"round {r}: {p}.lora_A differs from round 0's"); bad += 1
for name, d in sites.items():
    fin = tensors(os.path.join(d, "final", "adapter_model.safetensors"))
    for _, _, p in mods:
        if fin[p + ".lora_A.weight"][1] != a0[p + ".lora_A.weight"][1]:
            print(f"site {name}: final {p}.lora_A differs from the aggregator's"); bad += 1
worst_all = 0.0
prev = a0
for line in lines:
    r = line["round"]
    g = []
    for _, _, p in mods:
        g += prev[p + ".lora_B.weight"][1]
    digest = hashlib.sha256(struct.pack(f"<{len(g)}f", *g)).hexdigest()
    n = len(g)
    kept = {}
    for name, d in sites.items():
        path = os.path.join(d, "updates", f"r{r:04d}-{digest[:16]}.bin")
        if os.path.exists(path):
            blob = open(path, "rb").read()
            if len(blob) != 4 * n + 48:
                print(f"{path}: {len(blob)} bytes, want {4 * n} of B only and 48 of metrics")
                sys.exit(1)
            kept[name] = list(struct.unpack_from(f"<{n}f", blob, 0))
    if set(kept) != set(line["sites"]):
        print(f"round {r}: averaged {sorted(line['sites'])}, kept {sorted(kept)}"); bad += 1
        continue
    w = {k: float(line["sites"][k]["example_count"]) if weighting == "examples" else 1.0 for k in kept}
    total = sum(w.values())
    cur = adapter(r)
    off = 0
    worst = 0.0
    for _, _, p in mods:
        bshape, bglobal = cur[p + ".lora_B.weight"]
        ashape, a = a0[p + ".lora_A.weight"]
        size = bshape[0] * bshape[1]
        got = matmul(bglobal, bshape, a, ashape)
        want = [0.0] * len(got)
        for k, u in kept.items():
            prod = matmul(u[off:off + size], bshape, a, ashape)
            want = [x + w[k] / total * y for x, y in zip(want, prod)]
        off += size
        worst = max(worst, max(abs(x - y) / max(1.0, abs(y)) for x, y in zip(got, want)))
    spread = max(abs(x - y) for k in kept for x, y in zip(kept[k], g))
    print(f"round {r} ({weighting}): {sorted(kept)} B·A off the weighted mean of B_k·A by at most {worst:.3g}; "
          f"sites moved B by up to {spread:.3g}")
    worst_all = max(worst_all, worst)
    prev = cur
sys.exit(1 if bad or worst_all > 1e-6 else 0)
EOF
}
if check_ffa agg examples site-alpha site-beta site-gamma; then
  fed_ok "A fixed everywhere; each round's B·A = the weighted mean of the sites' B_k·A within 1e-6"
else
  fed_bad "FFA exactness"
fi
if check_ffa agg uniform site-alpha site-beta site-gamma >/dev/null; then
  fed_bad "uniform weights should not match (example counts differ)"
else
  fed_ok "uniform weights do not match: the check is sharp"
fi
expect "metrics say ffa travels B only (bytes per update)" \
  "$(python3 -c 'import json,sys; l=json.loads(open(sys.argv[1]).readline()); print(sorted({s["bytes"] for s in l["sites"].values()}))' agg/metrics.jsonl)" \
  "$(python3 -c 'import json,struct,sys; h=open(sys.argv[1],"rb").read(); n=struct.unpack_from("<Q",h,0)[0]; t=json.loads(h[8:8+n]); print([4*sum(v["shape"][0]*v["shape"][1] for k,v in t.items() if k.endswith("lora_B.weight"))])' agg/rounds/0000/adapter_model.safetensors)"
fed_finish
