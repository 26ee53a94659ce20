#!/bin/bash
# Issue 6, differential privacy in the federation (dp = central): three sites, rounds.total = 3 but
# an epsilon budget between ε(2) and ε(3), so the run must end cleanly after round 2 with every
# site holding round 2's adapter. Checked independently in Python from the updates the sites kept:
# every update's delta has L2 norm ≤ dp_clip (and clipping was active), the noise the aggregator
# added (3·(g_r − g_{r−1}) − Σ_k (u_k − g_{r−1}), uniform weights under DP) has mean ≈ 0 and std
# ≈ dp_noise_multiplier·dp_clip; each round's ε in metrics.jsonl equals `fedlora dp-epsilon`.
source "$FEDLORA_SOURCE_DIR/tests/fed/lib.sh"
cd "$fed_run"

z=2 clip=0.05 delta=1e-5
eps() { "$fed_bin/fedlora" dp-epsilon --noise $z --rate 1 --steps "$1" --delta $delta --json |
  python3 -c 'import json,sys; print(repr(json.load(sys.stdin)["epsilon"]))'; }
e2=$(eps 2) e3=$(eps 3)
budget=$(python3 -c "print(($e2 + $e3) / 2)")

fed_start_agg agg --set privacy.dp=central --set privacy.dp_clip=$clip --set privacy.dp_noise_multiplier=$z \
  --set privacy.dp_delta=$delta --set privacy.dp_epsilon_budget="$budget"
for s in alpha beta gamma; do fed_start_site $s; done
fed_expect_run_done 90 alpha beta gamma
expect "the budget stops the run after round 2" "0000 0001 0002" "$(ls agg/rounds | xargs)"
expect_in "the aggregator says why" agg.log "allows 2 of the 3 rounds"
expect_in "the aggregator says weights are uniform under DP" agg.log "every site weighs 1"
for s in alpha beta gamma; do
  if cmp -s agg/rounds/0002/adapter_model.safetensors site-$s/final/adapter_model.safetensors; then
    fed_ok "$s's final adapter is round 2's"
  else
    fed_bad "$s's final adapter is not round 2's"
  fi
done
# metrics.jsonl keeps 9 significant digits.
for r in 1 2; do
  expect "round $r: epsilon in metrics = fedlora dp-epsilon --steps $r (relative 1e-8)" ok "$(python3 -c '
import json, sys
got = [json.loads(x) for x in open("agg/metrics.jsonl")][int(sys.argv[1]) - 1]["dp"]["epsilon"]
print("ok" if abs(got / float(sys.argv[2]) - 1) < 1e-8 else f"{got} vs {sys.argv[2]}")' $r "$(eps $r)")"
done

if python3 - agg $clip $z site-alpha site-beta site-gamma <<'EOF'; then
import hashlib, json, math, os, struct, sys
sys.path.insert(0, os.path.join(os.environ["FEDLORA_SOURCE_DIR"], "tests", "fed"))
from check_rounds import adapter_payload, pack
state, clip, z = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
sites = sys.argv[4:]
lines = [json.loads(l) for l in open(os.path.join(state, "metrics.jsonl"))]
g = adapter_payload(os.path.join(state, "rounds", "0000"))
n = len(g)
noise, norms, bad = [], [], 0
for line in lines:
    r = line["round"]
    digest = hashlib.sha256(pack(g)).hexdigest()
    kept = []
    for d in sites:
        blob = open(os.path.join(d, "updates", f"r{r:04d}-{digest[:16]}.bin"), "rb").read()
        kept.append(struct.unpack_from(f"<{n}f", blob, 0))
    for u in kept:
        s = 0.0
        for i in range(n):
            s += (u[i] - g[i]) ** 2
        norms.append(math.sqrt(s))
    if sorted(line["sites"]) != sorted(os.path.basename(d)[5:] for d in sites):
        print(f"round {r}: averaged {sorted(line['sites'])}"); bad += 1
    got = adapter_payload(os.path.join(state, "rounds", f"{r:04d}"))
    for i in range(n):
        noise.append(len(kept) * (got[i] - g[i]) - sum(u[i] - g[i] for u in kept))
    g = got
mean = sum(noise) / len(noise)
sd = math.sqrt(sum((x - mean) ** 2 for x in noise) / len(noise))
want = z * clip
print(f"update norms {min(norms):.6g}..{max(norms):.6g} (clip {clip}); noise over {len(noise)} values: "
      f"mean {mean:.3g}, std {sd:.5g} (configured {want:.5g})")
ok = max(norms) <= clip and max(norms) > 0.999 * clip
ok = ok and abs(sd / want - 1) < 0.08 and abs(mean) < 5 * want / math.sqrt(len(noise))
sys.exit(0 if ok and not bad else 1)
EOF
  fed_ok "every update within dp_clip; the noise has mean 0 and std z·C"
else
  fed_bad "clipping bound or noise statistics"
fi
fed_finish
