#!/usr/bin/env bash
# The README's first command: installs what is missing, builds, and runs the federated demo.
#
# Three hospital departments (cardiology, oncology, paediatrics) each hold synthetic records that
# never leave them. An aggregator and three site clients run as separate processes on loopback,
# over mutual TLS with a fresh development PKI, fine-tuning the embedded base model
# (models/demo-base) with LoRA for the rounds in examples/aggregator.ini. Then two baselines get
# the same number of local steps as each site took in the run (rounds x local_steps, same batch,
# learning rate and LoRA shape): each site alone on its own data (local-only), and one model on
# all the data pooled in one place (centralized, which federated learning tries to match without
# moving the data). One table compares the validation loss of the base model and the three ways,
# per site and pooled.
#
# Writes runs/demo/: summary.json, rounds.png (fedlora plot of the run), global-adapter/ (the final global adapter, a PEFT directory),
# logs/, and the run's state. Environment: FEDLORA_DEMO_PORT (default 7443); FEDLORA_DEMO_SET, extra
# aggregator settings forwarded as --set, e.g. "privacy.secagg=on model.lora_mode=ffa".
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${FEDLORA_BUILD_DIR:-$top/build}
FEDLORA_BUILD_DIR=$build bash "$top/scripts/build.sh"
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-Haswell}

fedlora=$build/fedlora
demo=$top/runs/demo
base=$top/models/demo-base
port=${FEDLORA_DEMO_PORT:-7443}
sites=(cardiology oncology paediatrics)
start=$(date +%s)

# Settings shared by the run and the baselines: the aggregator's effective configuration, so
# FEDLORA_DEMO_SET overrides reach the baselines too.
extra_sets=()
for kv in ${FEDLORA_DEMO_SET:-}; do extra_sets+=(--set "$kv"); done
effective=$("$build/fedlora-aggregator" --config "$top/examples/aggregator.ini" "${extra_sets[@]}" --print-config)
ini_value() { printf '%s\n' "$effective" | sed -n "/^\[$1\]/,/^\[/{s/^$2 *= *//p}" | head -n 1; }
rounds=$(ini_value rounds total)
steps=$(ini_value train local_steps)
batch=$(ini_value train batch)
seq_len=$(ini_value train seq_len)
lr=$(ini_value train lr)
rank=$(ini_value model lora_rank)
alpha=$(ini_value model lora_alpha)
targets=$(ini_value model lora_targets | tr -d ' ')
# With FFA-LoRA the sites train only B; the baselines do the same, so all three compare one recipe.
freeze_a=()
[ "$(ini_value model lora_mode)" = ffa ] && freeze_a=(--freeze-a)
val_fraction=0.1

rm -rf "$demo"
mkdir -p "$demo/logs" "$demo/data"
bash "$top/certs/dev-pki.sh" "$demo/pki" "${sites[@]}" >"$demo/logs/pki.log"
seed=11
for s in "${sites[@]}"; do
  "$fedlora" synth --site "$s" --records 400 --seed $seed --out "$demo/data/$s.jsonl"
  seed=$((seed + 1))
done
echo "demo: ${#sites[@]} sites with 400 synthetic records each; $rounds rounds of $steps local steps"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

"$build/fedlora-aggregator" --config "$top/examples/aggregator.ini" --set "server.listen=127.0.0.1:$port" \
  "${extra_sets[@]}" >"$demo/logs/aggregator.log" 2>&1 &
agg=$!
pids+=($agg)
for _ in $(seq 50); do
  grep -q "listening on" "$demo/logs/aggregator.log" 2>/dev/null && break
  kill -0 $agg 2>/dev/null || break
  sleep 0.1
done
if ! grep -q "listening on" "$demo/logs/aggregator.log"; then
  echo "demo: the aggregator did not start:" >&2
  tail -n 5 "$demo/logs/aggregator.log" >&2
  exit 1
fi

clients=()
for s in "${sites[@]}"; do
  # One training thread per site: three sites share this machine's cores.
  "$build/fedlora-client" --config "$top/examples/client.ini" --set "client.server=127.0.0.1:$port" \
    --set "client.cert=$demo/pki/$s.pem" --set "client.key=$demo/pki/$s.key" \
    --set "client.state_dir=$demo/sites/$s" --set "data.train=$demo/data/$s.jsonl" \
    --set "data.val_fraction=$val_fraction" --set client.threads=1 >"$demo/logs/$s.log" 2>&1 &
  clients+=($!)
  pids+=($!)
done
failed=0
for i in "${!clients[@]}"; do
  if ! wait "${clients[$i]}"; then
    echo "demo: site ${sites[$i]} failed; last lines of its log:" >&2
    tail -n 5 "$demo/logs/${sites[$i]}.log" >&2
    failed=1
  fi
done
wait $agg || failed=1
pids=()
[ $failed = 0 ] || exit 1
fed_seconds=$(($(date +%s) - start))
last=$(printf '%04d' "$rounds")
cp -r "$demo/aggregator/rounds/$last" "$demo/global-adapter"
echo "demo: federated run done in ${fed_seconds} s; final global adapter in runs/demo/global-adapter"

# Baselines with the same budget of optimizer steps.
common=(--model "$base" --val-fraction "$val_fraction" --seq-len "$seq_len" --batch "$batch" --lr "$lr"
        --rank "$rank" --alpha "$alpha" --targets "$targets" "${freeze_a[@]}" --grad-clip 1 --threads 2)
for s in "${sites[@]}"; do
  "$fedlora" train "${common[@]}" --data "$demo/data/$s.jsonl" --steps $((rounds * steps)) \
    --out "$demo/local/$s" >"$demo/logs/local-$s.log" 2>&1
done
all=$(printf "$demo/data/%s.jsonl," "${sites[@]}")
"$fedlora" train "${common[@]}" --data "${all%,}" --steps $((rounds * steps)) \
  --out "$demo/centralized" >"$demo/logs/centralized.log" 2>&1
echo "demo: baselines trained: $((rounds * steps)) steps each (local-only per site, centralized on the pooled data)"

# Validation loss of a model (adapter dir or "none") on a site's held-out records: "loss tokens".
eval_loss() {
  local adapter=()
  [ "$1" = none ] || adapter=(--adapter "$1")
  "$fedlora" eval --model "$base" "${adapter[@]}" --data "$demo/data/$2.jsonl" --val-fraction "$val_fraction" \
    --seq-len "$seq_len" --threads 2 --json 2>>"$demo/logs/eval.log" |
    sed -E 's/.*"loss":([^,}]*).*"tokens":([^,}]*).*/\1 \2/'
}

declare -A loss tokens
for s in "${sites[@]}"; do
  for m in base federated centralized "${sites[@]/#/local-}"; do
    case $m in
      base) a=none ;;
      federated) a=$demo/global-adapter ;;
      centralized) a=$demo/centralized ;;
      local-*) a=$demo/local/${m#local-} ;;
    esac
    read -r l t < <(eval_loss "$a" "$s")
    loss[$m,$s]=$l
    tokens[$s]=$t
  done
done

# Pooled: token-weighted over every site's validation records. For local-only, each site's own
# model is what it would use, so the pooled figure averages the three local models over the pool.
pooled() { # model...
  local num=0 den=0 m s
  for m in "$@"; do
    for s in "${sites[@]}"; do
      num=$(awk -v a="$num" -v l="${loss[$m,$s]}" -v t="${tokens[$s]}" 'BEGIN{printf "%.9g", a + l * t}')
      den=$(awk -v a="$den" -v t="${tokens[$s]}" 'BEGIN{printf "%.9g", a + t}')
    done
  done
  awk -v n="$num" -v d="$den" 'BEGIN{printf "%.6f", n / d}'
}
p_base=$(pooled base)
p_local=$(pooled "${sites[@]/#/local-}")
p_fed=$(pooled federated)
p_cent=$(pooled centralized)
seconds=$(($(date +%s) - start))

printf '\nValidation loss (nats per completion token; lower is better)\n'
printf '%-14s %10s %12s %12s %12s\n' site base local-only federated centralized
for s in "${sites[@]}"; do
  printf '%-14s %10.4f %12.4f %12.4f %12.4f\n' "$s" "${loss[base,$s]}" "${loss[local-$s,$s]}" \
    "${loss[federated,$s]}" "${loss[centralized,$s]}"
done
printf '%-14s %10.4f %12.4f %12.4f %12.4f\n' pooled "$p_base" "$p_local" "$p_fed" "$p_cent"
printf '(%s rounds, %s s in all)\n' "$rounds" "$seconds"

{
  printf '{"sites": {'
  sep=
  for s in "${sites[@]}"; do
    printf '%s"%s": {"base": %s, "local": %s, "federated": %s, "centralized": %s}' "$sep" "$s" \
      "${loss[base,$s]}" "${loss[local-$s,$s]}" "${loss[federated,$s]}" "${loss[centralized,$s]}"
    sep=', '
  done
  printf '}, "pooled": {"base": %s, "local": %s, "federated": %s, "centralized": %s}, ' \
    "$p_base" "$p_local" "$p_fed" "$p_cent"
  printf '"rounds": %s, "seconds": %s}\n' "$rounds" "$seconds"
} >"$demo/summary.json.tmp"
mv "$demo/summary.json.tmp" "$demo/summary.json"
"$fedlora" plot "$demo/aggregator" -o "$demo/rounds.png"
echo "demo: wrote runs/demo/summary.json and runs/demo/rounds.png (validation loss per round)"
