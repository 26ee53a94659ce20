#!/bin/bash
# Issue 9 in a real run (three sites, three rounds, and delta, whose certificate is valid but who is
# not in allowed_clients): both sides keep an audit log that `fedlora audit verify` accepts; the
# digests of the updates each site says it sent are exactly those the aggregator says it received
# (and those of the pending updates the round checker recomputes from); delta's refusal is on record
# with its reason; the Prometheus endpoint, scraped over loopback and parsed by an independent
# Python reader and by the Prometheus project's own parser (python3-prometheus-client), counts the
# rounds, sites, bytes and refusals and its histogram is consistent; the
# aggregator logs JSON lines with --log-format json.
source "$FEDLORA_SOURCE_DIR/tests/fed/lib.sh"
cd "$fed_run"
fb=$fed_bin/fedlora
mport=$(free_port)

fed_start_agg agg --set audit.file=agg-audit.jsonl --set metrics.listen=127.0.0.1:$mport --set metrics.linger_s=3 \
  --log-format json
for s in alpha beta gamma; do fed_start_site $s --set audit.file=site-$s-audit.jsonl; done
fed_start_site delta --set audit.file=site-delta-audit.jsonl --set data.train=data/alpha.jsonl
fed_wait_exit delta 60
expect "delta is refused (exit 3)" 3 "$fed_rc"

# The run is over in seconds; the aggregator then serves 3 s more (metrics.linger_s) before it exits:
# a poller keeps the last scrape (every 50 ms until the endpoint goes away), which then follows the
# last commit.
python3 - "$mport" scrape.txt <<'PY' &
import os, sys, time, urllib.request
seen, deadline = False, time.time() + 180
while time.time() < deadline:
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=5).read()
        open(sys.argv[2] + ".tmp", "wb").write(body)
        os.replace(sys.argv[2] + ".tmp", sys.argv[2])
        seen = True
    except OSError:
        if seen: break
    time.sleep(0.05)
PY
poller=$!
fed_expect_run_done 60 alpha beta gamma
wait $poller
got=$(python3 - scrape.txt <<'PY'
import re, sys
body = open(sys.argv[1]).read()
types, samples, errors = {}, {}, []
name_re = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
label_re = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
sample_re = re.compile(rf"^({name_re})(\{{(?:{label_re})(?:,{label_re})*\}})? (\S+)$")
for line in body.splitlines():
    if line.startswith("# HELP "): continue
    m = re.match(rf"^# TYPE ({name_re}) (counter|gauge|histogram)$", line)
    if m: types[m.group(1)] = m.group(2); continue
    m = sample_re.match(line)
    if not m: errors.append(line); continue
    base = m.group(1) if m.group(1) in types else re.sub(r"_(bucket|sum|count)$", "", m.group(1))
    if base not in types: errors.append("no TYPE before " + line)
    samples.setdefault(m.group(1), []).append((m.group(2) or "", float(m.group(3))))
for name, t in types.items():
    if t != "histogram": continue
    b = samples.get(name + "_bucket", [])
    les = [float(re.search(r'le="([^"]+)"', l).group(1).replace("+Inf", "inf")) for l, _ in b]
    counts = [v for _, v in b]
    if les != sorted(les) or les[-1] != float("inf"): errors.append(name + ": le not ascending to +Inf")
    if counts != sorted(counts): errors.append(name + ": buckets not cumulative")
    if samples[name + "_count"][0][1] != counts[-1]: errors.append(name + ": _count != +Inf bucket")
def one(n): return samples[n][0][1]
rej = {l: v for l, v in samples.get("fedlora_refused_calls_total", [])}
join_refused = rej.get('{method="Join"}', 0)
print(f"errors={len(errors)} committed={one('fedlora_rounds_committed_total'):g} joined={one('fedlora_sites_joined'):g} "
      f"updates={one('fedlora_updates_accepted_total'):g} hist={one('fedlora_round_duration_seconds_count'):g} "
      f"in={one('fedlora_received_bytes_total') > 0} out={one('fedlora_sent_bytes_total') > 0} "
      f"join_refused={join_refused:g} loss={one('fedlora_val_loss') > 0}")
for e in errors: print("  format error:", e, file=sys.stderr)
PY
)
expect "metrics parse and count the run" \
  "errors=0 committed=3 joined=3 updates=9 hist=3 in=True out=True join_refused=1 loss=True" "$got"
# The same scrape through the Prometheus project's own parser (python3-prometheus-client).
fed_python_with python3-prometheus-client prometheus_client
got=$("$fed_py" - scrape.txt <<'PY'
import sys
from prometheus_client.parser import text_string_to_metric_families
fam = {f.name: f for f in text_string_to_metric_families(open(sys.argv[1]).read())}
def value(name, suffix="", **labels):
    for s in fam[name].samples:
        if s.name == name + suffix and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
print(f"{fam['fedlora_rounds_committed'].type} {value('fedlora_rounds_committed', '_total'):g} "
      f"{fam['fedlora_sites_joined'].type} {value('fedlora_sites_joined'):g} "
      f"{fam['fedlora_round_duration_seconds'].type} {value('fedlora_round_duration_seconds', '_count'):g} "
      f"{value('fedlora_round_duration_seconds', '_bucket', le='+Inf'):g} "
      f"{value('fedlora_refused_calls', '_total', method='Join'):g}")
PY
)
expect "Prometheus' own parser reads the same figures" "counter 3 gauge 3 histogram 3 3 1" "$got"

for f in agg-audit.jsonl site-alpha-audit.jsonl site-beta-audit.jsonl site-gamma-audit.jsonl site-delta-audit.jsonl; do
  if out=$("$fb" audit verify "$f"); then fed_ok "$f verifies: $out"; else fed_bad "$f: $out"; fi
done

events() { python3 -c 'import json,sys; print(" ".join(json.loads(l)["event"] for l in open(sys.argv[1])))' "$1"; }
count() { events "$1" | tr ' ' '\n' | grep -cx "$2"; }
expect "aggregator: three joins" 3 "$(count agg-audit.jsonl join)"
expect "aggregator: three rounds opened and committed" "3 3" \
  "$(count agg-audit.jsonl round_opened) $(count agg-audit.jsonl round_committed)"
expect "aggregator: nine updates received" 9 "$(count agg-audit.jsonl update_received)"
expect_in "aggregator: delta's refusal with its reason" agg-audit.jsonl \
  "\"site\":\"delta\",\"method\":\"Join\",\"status\":\"permission_denied\",\"reason\":\"site 'delta' (the certificate's CN) is not in"
expect "delta's own log: join refused" "refused" "$(events site-delta-audit.jsonl)"

# What each site says left it is what the aggregator says arrived, digest for digest.
digests() { python3 -c '
import json, sys
want, site = sys.argv[2], sys.argv[3]
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r["event"] == want and r.get("site", site) == site and r.get("status", "accepted") == "accepted":
        print(r["round"], r["sha256"], r["bytes"], r["example_count"])' "$@" | sort; }
for s in alpha beta gamma; do
  sent=$(digests site-$s-audit.jsonl update_sent $s)
  received=$(digests agg-audit.jsonl update_received $s)
  expect "$s: three updates sent" 3 "$(echo "$sent" | grep -c .)"
  expect "$s: sent = received (round, sha256, bytes, examples)" "$sent" "$received"
  kept=$(python3 -c '
import hashlib, pathlib, sys
for p in sorted(pathlib.Path(sys.argv[1]).glob("updates/r*.bin")):
    print(int(p.name[1:5]), hashlib.sha256(p.read_bytes()[:int(sys.argv[2])]).hexdigest())' site-$s \
    "$(echo "$sent" | head -1 | cut -d' ' -f3)" | sort)
  expect "$s: the digests are of the updates the site kept" "$kept" "$(echo "$sent" | cut -d' ' -f1,2)"
  expect "$s: every global adapter received is on record" 4 "$(count site-$s-audit.jsonl adapter_received)"
done
expect "the committed adapters' digests are on record" 3 \
  "$(grep -c '"event":"round_committed".*"adapter_sha256":"[0-9a-f]\{64\}"' agg-audit.jsonl)"
if grep -qE '"(data|text|prompt|completion)"' site-*-audit.jsonl agg-audit.jsonl; then
  fed_bad "an audit log holds data"
else
  fed_ok "no data fields in the audit logs"
fi

bad_json=$(python3 -c '
import json, sys
bad = 0
for l in open(sys.argv[1]):
    try:
        o = json.loads(l); bad += sorted(o) != ["level", "msg", "program", "ts"] or o["program"] != "fedlora-aggregator"
    except ValueError: bad += 1
print(bad)' agg.log)
expect "every aggregator log line is a JSON object with ts, level, program, msg" 0 "$bad_json"
expect_in "the JSON log has the commits" agg.log '"msg":"round 3 committed'
fed_finish
