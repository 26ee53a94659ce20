# fedlora plot: a metrics.jsonl of 3 sites over 4 rounds (one site missing round 3, DP on) drawn as PNG
# and SVG, and the same run without DP, under secure aggregation (no site's own loss) and under both
# (no loss). The SVG's thick polylines are the data series: their count, their colours, the legend texts,
# and their points against the data (one affine map per panel, fitted on two points, must hold for all).
set -u
fedlora="$FEDLORA_BUILD_DIR/fedlora"
dir=$(mktemp -d /tmp/fedlora-plot-XXXXXX)
trap 'rm -rf "$dir"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

mkdir -p "$dir/state" "$dir/empty"
cat > "$dir/state/metrics.jsonl" <<'EOF'
{"round":1,"submitted":["north","south","west"],"sites":{"north":{"val_loss_before":6.2,"train_loss":4.1},"south":{"val_loss_before":6.5,"train_loss":4.4},"west":{"val_loss_before":6.0,"train_loss":3.7}},"val_loss":6.25,"dp":{"epsilon":0.8}}
{"round":2,"submitted":["north","south","west"],"sites":{"south":{"val_loss_before":3.7},"west":{"val_loss_before":3.1},"north":{"val_loss_before":3.2}},"val_loss":3.35,"dp":{"epsilon":1.3}}
{"round":3,"submitted":["north","west"],"sites":{"north":{"val_loss_before":2.5},"west":{"val_loss_before":2.4}},"val_loss":2.45,"dp":{"epsilon":1.7}}
{"round":4,"submitted":["north","south","west"],"sites":{"north":{"val_loss_before":2.1},"south":{"val_loss_before":2.4},"west":{"val_loss_before":1.9}},"val_loss":2.13,"dp":{"epsilon":2.05}}
EOF

"$fedlora" plot "$dir/state" -o "$dir/rounds.png" || fail "plot to png"
"$fedlora" plot "$dir/state" -o "$dir/rounds.svg" || fail "plot to svg"
[ -s "$dir/rounds.png" ] || fail "no png"
[ "$(head -c 8 "$dir/rounds.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] || fail "png signature"

cat > "$dir/check.py" <<'EOF'
import html, json, re, sys
svg = open(sys.argv[1]).read()
rows = [json.loads(l) for l in open(sys.argv[2])]
# thick (width > 1) polylines of 3+ points: the series; axes, ticks and legend samples are thin or 2 points
series = []
for w, colour, pts in re.findall(r'<polyline\s+stroke-width="([^"]+)"\s+stroke="([^"]+)"[^/]*?points="([^"]*)"', svg):
    xy = [tuple(map(float, p.split(','))) for p in pts.split()]
    if float(w) > 1 and len(xy) >= 3:
        series.append((colour, xy))
ok = True
def check(cond, what):
    global ok
    if not cond:
        print("FAIL:", what)
        ok = False
dp = "dp" in rows[0]
# north, south, west, pooled; participants; epsilon with DP only
check(len(series) == 5 + dp, f"{len(series)} series, expected {5 + dp}")
texts = [html.unescape(t) for t in re.findall(r'<tspan[^>]*>([^<]*)', svg)]
check(("differential privacy: \u03f5 spent" in texts) == dp, f"epsilon panel title present: {not dp}")
for name in ["north", "south", "west", "pooled"]:
    check(texts.count(name) == 1, f"legend text {name!r} appears {texts.count(name)} times")
check(len({c for c, _ in series[:4]}) == 4, "the loss series share colours")
if len(series) == 5 + dp:
    names = ["north", "south", "west"]
    data = [[(r["round"], r["sites"][n]["val_loss_before"]) for r in rows if n in r["sites"]] for n in names]
    data.append([(r["round"], r["val_loss"]) for r in rows])
    panels = [(series[:4], data), ([series[4]], [[(r["round"], len(r["submitted"])) for r in rows]])]
    if dp:
        panels.append(([series[5]], [[(r["round"], r["dp"]["epsilon"]) for r in rows]]))
    # the axes' own numeric tick labels are the reference: each is anchored at its tick, so value -> position
    # is the affine map fitted through them; x labels form one row per panel, y labels sit between rows
    labels = []
    for tx, ty, t in re.findall(r'matrix\([^ ]+ [^ ]+ [^ ]+ [^ ]+ ([^ ]+) ([^ ]+)\)"[^>]*>\s*<tspan[^>]*>([^<]*)', svg):
        try:
            labels.append((float(tx), float(ty), float(html.unescape(t))))
        except ValueError:
            pass
    rows_y = sorted({round(ty, 1) for tx, ty, v in labels if sum(abs(ty - t2) < 0.1 for _, t2, _ in labels) > 2})
    def fit(pairs):  # least squares; returns the map and its worst residual
        n = len(pairs); mv = sum(v for v, _ in pairs) / n; mp = sum(q for _, q in pairs) / n
        a = sum((v - mv) * (q - mp) for v, q in pairs) / sum((v - mv) ** 2 for v, _ in pairs)
        return (lambda v: mp + a * (v - mv)), max(abs(mp + a * (v - mv) - q) for v, q in pairs)
    check(len(rows_y) == 2 + dp, f"{len(rows_y)} rows of x tick labels")
    for k, (lines, values) in enumerate(panels[:len(rows_y)]):
        row = rows_y[len(rows_y) - 1 - k]  # the first panel is the top one; SVG y grows upwards under the flip
        top = rows_y[len(rows_y) - k] if k else float("inf")
        xmap, xres = fit([(v, tx) for tx, ty, v in labels if abs(ty - row) < 0.1])
        ymap, yres = fit([(v, ty) for tx, ty, v in labels if row + 1 < ty < top and tx < 90])
        check(xres < 0.05 and yres < 0.05, f"panel {k}: tick labels off a line ({xres}, {yres})")
        check(all(len(line[1]) == len(vals) for line, vals in zip(lines, values)), f"panel {k}: points per series")
        for line, vals in zip(lines, values):
            for d, p in zip(vals, line[1]):
                check(abs(xmap(d[0]) - p[0]) < 0.05 and abs(ymap(d[1]) - p[1]) < 0.05,
                      f"panel {k}: {d} drawn at {p}, expected ({xmap(d[0]):.2f}, {ymap(d[1]):.2f})")
sys.exit(0 if ok else 1)
EOF
python3 "$dir/check.py" "$dir/rounds.svg" "$dir/state/metrics.jsonl" || fail "svg of the dp run"

# without DP there is no epsilon panel
mkdir -p "$dir/nodp"
sed 's/,"dp":{[^}]*}//' "$dir/state/metrics.jsonl" > "$dir/nodp/metrics.jsonl"
"$fedlora" plot "$dir/nodp" -o "$dir/nodp.svg" || fail "plot without dp"
python3 "$dir/check.py" "$dir/nodp.svg" "$dir/nodp/metrics.jsonl" || fail "svg of the run without dp"

# Under secure aggregation the sites' losses are null: only the pooled loss is drawn and named; with DP
# on top not even that, and the loss panel is left out. Thick polylines are the data series.
series_and_legend() {
  python3 - "$1" <<'EOF'
import html, re, sys
svg = open(sys.argv[1]).read()
thick = [p for w, p in re.findall(r'<polyline\s+stroke-width="([^"]+)"[^/]*?points="([^"]*)"', svg)
         if float(w) > 1 and len(p.split()) >= 3]
texts = [html.unescape(t) for t in re.findall(r'<tspan[^>]*>([^<]*)', svg)]
names = [t for t in texts if t in ("north", "south", "west", "pooled")]
losses = any(t.startswith("validation loss") for t in texts)
print(len(thick), ",".join(names), "loss-panel" if losses else "no-loss-panel")
EOF
}
mkdir -p "$dir/secagg" "$dir/secagg-dp"
sed -E 's/"(val_loss_before|train_loss)":[0-9.]+/"\1":null/g' "$dir/nodp/metrics.jsonl" > "$dir/secagg/metrics.jsonl"
sed -E 's/"(val_loss_before|train_loss|val_loss)":[0-9.]+/"\1":null/g' "$dir/state/metrics.jsonl" > "$dir/secagg-dp/metrics.jsonl"
out=$("$fedlora" plot "$dir/secagg" -o "$dir/secagg.svg") || fail "plot of a secagg run"
[ "$out" = "$dir/secagg.svg: 4 rounds, 3 sites, pooled loss only" ] || fail "secagg summary: $out"
got=$(series_and_legend "$dir/secagg.svg")
[ "$got" = "2 pooled loss-panel" ] || fail "secagg: want the pooled loss and participants, got [$got]"
out=$("$fedlora" plot "$dir/secagg-dp" -o "$dir/secagg-dp.svg") || fail "plot of a secagg+dp run"
[ "$out" = "$dir/secagg-dp.svg: 4 rounds, 3 sites, no losses, epsilon" ] || fail "secagg+dp summary: $out"
got=$(series_and_legend "$dir/secagg-dp.svg")
[ "$got" = "2  no-loss-panel" ] || fail "secagg+dp: want participants and epsilon only, got [$got]"
got=$(series_and_legend "$dir/nodp.svg")
[ "$got" = "5 north,south,west,pooled loss-panel" ] || fail "the plain run's series and legend: [$got]"

# errors: exit 2 with the reason
out=$("$fedlora" plot "$dir/empty" -o "$dir/x.png" 2>&1); rc=$?
[ $rc -eq 2 ] || fail "missing metrics.jsonl: rc $rc"
grep -qF "$dir/empty/metrics.jsonl" <<<"$out" || fail "missing metrics.jsonl message: $out"
out=$("$fedlora" plot "$dir/state" -o "$dir/x.pdf" 2>&1); rc=$?
[ $rc -eq 2 ] || fail "bad extension: rc $rc"
grep -qF "must be .png or .svg" <<<"$out" || fail "bad extension message: $out"
printf '{"round":1}\n{"round":\n' > "$dir/empty/metrics.jsonl"
out=$("$fedlora" plot "$dir/empty" -o "$dir/x.png" 2>&1); rc=$?
[ $rc -eq 2 ] || fail "malformed line: rc $rc"
grep -qF "metrics.jsonl:2:" <<<"$out" || fail "malformed line message: $out"

[ $failures -eq 0 ] && echo "test_plot: ok"
exit $((failures > 0))
