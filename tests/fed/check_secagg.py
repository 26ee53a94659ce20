#!/usr/bin/env python3
"""Checks a secure-aggregation run against the updates its sites kept, independently of the C code.

  check_secagg.py STATE_DIR --log AGG_LOG... --sites SITE_STATE_DIR... [--range R] [--scale S]
                  [--uniform] [--transcript]

Under secagg each site masks w_k·(u_k − g) with w_k = examples_k / max over the round's sites
(examples as declared at Join, read from the aggregator's log), encoded as round(scale·w·x) with
stochastic rounding. For round r (g = rounds/r-1, Δ = Σ w_k (u_k − g) / Σ w_k over the sites the
metrics line names), rounds/r must equal g + Δ within the quantisation bound
  |error_i| ≤ (n/scale + |Δ_i|·n/(scale·range)) / (W − n/(scale·range)) + float32 rounding,
n = the sites summed, W = Σ w_k (the weight travels quantised too). The check must be sharp: the
same recomputation without one site's update must fail it. No update may exceed ±range (clipping
would change the sum).

The sites' losses travel masked too (common/secagg_metrics.h): the metrics line must hold no site's
train_loss, val_loss_before or tokens, and its pooled train_loss and val_loss must equal
Σ w_k·loss_k / Σ w_k of the losses the sites kept with their updates within
  L·2n/scale / (range·W − n/scale) + 4·L·2^-23     (L = 64, the loss scale),
and without one site's loss the recomputation must fail it (where the sites' losses differ
enough to tell). With --no-losses (DP plans) both pooled losses must be null. With --transcript, every file under STATE_DIR is searched for any site's
update or delta bytes (32-byte windows), and each masked vector the aggregator kept must be
uncorrelated with its site's true delta (|r| < 0.1). Exit status 0 when all holds."""
import argparse, glob, hashlib, json, math, os, re, struct, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_rounds import adapter_payload  # noqa: E402

F32 = 2.0 ** -23


def pack(v):
    return struct.pack(f"<{len(v)}f", *v)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("state")
    ap.add_argument("--log", nargs="+", required=True)
    ap.add_argument("--sites", nargs="+", required=True)
    ap.add_argument("--range", type=float, default=1.0)
    ap.add_argument("--scale", type=float, default=1048576.0)
    ap.add_argument("--uniform", action="store_true")
    ap.add_argument("--transcript", action="store_true")
    ap.add_argument("--no-losses", action="store_true")
    a = ap.parse_args()
    examples = {}
    for path in a.log:
        for m in re.finditer(r"site (\S+) joined: (\d+) training examples", open(path).read()):
            examples[m.group(1)] = int(m.group(2))
    sites = {os.path.basename(d).removeprefix("site-"): d for d in a.sites}
    lines = [json.loads(l) for l in open(os.path.join(a.state, "metrics.jsonl"))]
    bad = 0
    worst_ratio = 0.0
    kept_all = {}  # site -> list of (update, delta) vectors
    for line in lines:
        r = line["round"]
        g = adapter_payload(os.path.join(a.state, "rounds", f"{r - 1:04d}"))
        cur = adapter_payload(os.path.join(a.state, "rounds", f"{r:04d}"))
        digest = hashlib.sha256(pack(g)).hexdigest()
        n = len(g)
        kept, losses = {}, {}
        for name, d in sites.items():
            path = os.path.join(d, "updates", f"r{r:04d}-{digest[:16]}.bin")
            if os.path.exists(path):
                raw = open(path, "rb").read()
                kept[name] = list(struct.unpack_from(f"<{n}f", raw, 0))
                # the cache's metrics follow the update: train_loss, val_loss_before, ... (doubles)
                losses[name] = struct.unpack_from("<2d", raw, 4 * n)
        summed = sorted(line["sites"])
        if not set(summed) <= set(kept):
            print(f"round {r}: summed {summed}, but kept updates only of {sorted(kept)}")
            bad += 1
            continue
        scale_w = max(examples[s] for s in line["selected"])
        w = {s: 1.0 if a.uniform else examples[s] / scale_w for s in summed}

        def recompute(names):
            W = sum(w[s] for s in names)
            return W, [sum(w[s] * (kept[s][i] - g[i]) for s in names) / W for i in range(n)]

        W, delta = recompute(summed)
        k = len(summed)
        wq = k / (a.scale * a.range)
        biggest = max(abs(kept[s][i] - g[i]) for s in summed for i in range(n))
        if biggest >= a.range:
            print(f"round {r}: a delta of {biggest:.3g} exceeds the clip range {a.range}: the test cannot hold")
            bad += 1

        def excess(d):
            worst = 0.0
            for i in range(n):
                bound = (k / a.scale + abs(d[i]) * wq) / (W - wq) + 4 * F32 * (abs(g[i]) + abs(d[i]) + 1e-30)
                worst = max(worst, abs(cur[i] - (g[i] + d[i])) / bound)
            return worst

        ratio = excess(delta)
        worst_ratio = max(worst_ratio, ratio)
        _, without = recompute(summed[1:])
        sharp = excess(without) > 1
        print(f"round {r}: {summed} weights {[round(w[s], 4) for s in summed]}: error at most {ratio:.3f} of the "
              f"quantisation bound (k={k}, scale={a.scale:g}); without {summed[0]}: "
              f"{'fails' if sharp else 'PASSES (not sharp)'}")
        if ratio > 1 or not sharp:
            bad += 1
        bad += check_losses(a, line, summed, w, losses)
        for s in summed:
            kept_all.setdefault(s, []).append((kept[s], [kept[s][i] - g[i] for i in range(n)], w[s], r))
    if a.transcript:
        bad += transcript_check(a, kept_all)
    print(f"worst error / bound = {worst_ratio:.3f}")
    return 1 if bad or not lines else 0


LOSS_MAX = 64.0


def check_losses(a, line, summed, w, losses):
    r = line["round"]
    bad = 0
    for s in summed:
        clear = {k: line["sites"][s].get(k) for k in ("train_loss", "val_loss_before", "tokens")}
        if any(v is not None for v in clear.values()):
            print(f"round {r}: the aggregator kept {s}'s {clear} (must be null under secagg)")
            bad += 1
    k = len(summed)
    W = sum(w[s] for s in summed)
    bound = LOSS_MAX * 2 * k / a.scale / (a.range * W - k / a.scale) + 4 * LOSS_MAX * F32
    for key, idx in (("train_loss", 0), ("val_loss", 1)):
        got = line.get(key)
        if a.no_losses:
            if got is not None:
                print(f"round {r}: pooled {key} {got} under DP (must be null)")
                bad += 1
            continue

        def pooled(names):
            return sum(w[s] * losses[s][idx] for s in names) / sum(w[s] for s in names)

        want, without = pooled(summed), pooled(summed[1:])
        sharp = abs(without - want) > 2 * bound
        ok = got is not None and abs(got - want) <= bound
        print(f"round {r}: pooled {key} {got} vs {want:.6f} from the sites' own (bound {bound:.2g}); "
              f"without {summed[0]}: {without:.6f}{'' if sharp else ' (too close to tell)'}")
        if not ok or (sharp and abs(got - without) <= bound):
            bad += 1
    return bad


def transcript_check(a, kept_all):
    bad = 0
    files = [p for p in glob.glob(os.path.join(a.state, "**"), recursive=True) if os.path.isfile(p)]
    blobs = {p: open(p, "rb").read() for p in files}
    probes = []
    for s, entries in kept_all.items():
        for update, delta, _, r in entries:
            for vec, what in ((update, "update"), (delta, "delta")):
                raw = pack(vec)
                for off in range(0, len(raw) - 32, 4 * 97):
                    win = raw[off:off + 32]
                    if len(set(win)) > 4:  # not a run of zeros
                        probes.append((s, r, what, win))
    found = 0
    for p, blob in blobs.items():
        for s, r, what, win in probes:
            if win in blob:
                print(f"{p}: holds bytes of {s}'s round-{r} {what}")
                found += 1
                break
    print(f"transcript: {len(files)} files, {len(probes)} probes of the sites' true updates and deltas: "
          f"{found} files hold any")
    bad += found > 0
    masked = [p for p in files if p.endswith(".masked")]
    if not masked:
        print("transcript: no masked vector kept (secagg_transcript off?)")
        bad += 1
    worst = 0.0
    for p in masked:
        site = os.path.basename(p).split(".")[0]
        r = int(os.path.basename(os.path.dirname(p))[1:5])
        entry = [e for e in kept_all.get(site, []) if e[3] == r]
        if not entry:
            continue
        _, delta, w, _ = entry[0]
        words = struct.unpack(f"<{len(blobs[p]) // 4}i", blobs[p])[1:1 + len(delta)]
        x = [float(v) for v in words]
        y = [w * v * a.scale for v in delta]
        corr = pearson(x, y)
        worst = max(worst, abs(corr))
        # Sharpness: the plain encoding of the same delta correlates almost perfectly.
        plain = pearson([round(v) for v in y], y)
        if abs(corr) >= 0.1 or plain < 0.99:
            print(f"{p}: correlation with {site}'s delta {corr:.3f} (plain encoding {plain:.3f})")
            bad += 1
    print(f"transcript: {len(masked)} masked vectors, largest |correlation| with the true delta {worst:.4f}")
    return bad


def pearson(x, y):
    n = len(x)
    mx, my = sum(x) / n, sum(y) / n
    sxy = sum((p - mx) * (q - my) for p, q in zip(x, y))
    sxx = sum((p - mx) ** 2 for p in x)
    syy = sum((q - my) ** 2 for q in y)
    return sxy / math.sqrt(sxx * syy) if sxx > 0 and syy > 0 else 0.0


if __name__ == "__main__":
    sys.exit(main())
