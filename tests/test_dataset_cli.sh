# fedlora train/eval on site data files: file:line:col errors through the CLI, --skip-bad-records
# counts, weighted files and replay reported per file, early stopping writing the best adapter
# (its val loss is what eval measures on the same held-out records), and eval --generate figures.
set -u
fedlora="$FEDLORA_BUILD_DIR/fedlora"
model="$FEDLORA_SHARED/testdata/stories260K/stories260K.bin"
if [ ! -f "$model" ]; then
  echo "skipped: $model is absent"
  exit 77
fi
dir=$(mktemp -d /tmp/fedlora-dataset-cli-XXXXXX)
trap 'rm -rf "$dir"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
common=(--model "$model" --tokenizer bytes --seq-len 32)

for i in $(seq 1 60); do
  printf '{"prompt": "Q%d: colour?", "completion": " blue %d"}\n' "$i" $((i % 3))
done > "$dir/qa.jsonl"
printf 'Once upon a time there was a cat.\n\nThe end.\n' > "$dir/general.txt"

# a malformed record: the error names file:line:col, and --skip-bad-records counts it instead
cp "$dir/qa.jsonl" "$dir/bad.jsonl"
printf '{"prompt": "x", "completion": 7}\n' >> "$dir/bad.jsonl"
out=$("$fedlora" eval "${common[@]}" --data "$dir/bad.jsonl" 2>&1) && fail "eval accepted a bad record"
grep -qF "$dir/bad.jsonl:61:31: field \"completion\" must be a string, got an integer" <<<"$out" ||
  fail "eval error: $out"
out=$("$fedlora" eval "${common[@]}" --data "$dir/bad.jsonl" --skip-bad-records --json 2>/dev/null) ||
  fail "eval --skip-bad-records failed"
grep -q '"records":60,"skipped_records":1' <<<"$out" || fail "skip counts: $out"
out=$("$fedlora" train "${common[@]}" --data "$dir/bad.jsonl" --out "$dir/never" --steps 1 2>&1) &&
  fail "train accepted a bad record"
grep -qF "bad.jsonl:61:31:" <<<"$out" || fail "train error: $out"

# training: two weighted files plus replay, early stopping on the held-out records
out=$(OMP_NUM_THREADS=1 "$fedlora" train "${common[@]}" --data "$dir/qa.jsonl:3,$dir/general.txt" \
  --replay "$dir/general.txt" --replay-fraction 0.25 --out "$dir/adapter" --steps 12 --lr 1e-2 \
  --eval-every 4 --patience 3 --json 2>/dev/null) || fail "train failed"
echo "$out"
python3 - "$out" <<'EOF' || failures=$((failures + 1))
import json, sys
o = json.loads(sys.argv[1])
files = o["train_files"]
assert [f["weight"] for f in files[:2]] == [3.0, 1.0], files
# replay's weight makes its share 0.25: w / (3 + 1 + w) = 0.25
assert abs(files[2]["weight"] / sum(f["weight"] for f in files) - 0.25) < 1e-6, files
assert o["val_records"] + files[0]["records"] == 60, o
assert 0 <= o["best_step"] <= 12 and o["best_step"] % 4 == 0, o
assert abs(o["val_loss"] - o["best_val_loss"]) < 1e-6, o
assert o["best_val_loss"] <= o["val_loss_before"] + 1e-9, o
EOF

# eval on the same held-out records measures the written (best) adapter's loss
out=$("$fedlora" eval "${common[@]}" --data "$dir/qa.jsonl" --val-fraction 0.1 --adapter "$dir/adapter" \
  --generate --max-new-tokens 4 --json 2>/dev/null) || fail "eval --generate failed"
echo "$out"
best=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["best_val_loss"])' "$(tail -1 <<<"$(
  OMP_NUM_THREADS=1 "$fedlora" train "${common[@]}" --data "$dir/qa.jsonl:3,$dir/general.txt" \
    --replay "$dir/general.txt" --replay-fraction 0.25 --out "$dir/adapter2" --steps 12 --lr 1e-2 \
    --eval-every 4 --patience 3 --json 2>/dev/null)")")
python3 - "$out" "$best" <<'EOF' || failures=$((failures + 1))
import json, sys
o, best = json.loads(sys.argv[1]), float(sys.argv[2])
assert abs(o["loss"] - best) < 1e-5, (o["loss"], best)
g = o["generate"]
assert g["pairs"] == o["records"] and g["max_new_tokens"] == 4, g
for k in ("exact_match", "f1", "rouge_l", "bleu4"):
    assert 0.0 <= g[k] <= 1.0, g
EOF
cmp -s "$dir/adapter/adapter_model.safetensors" "$dir/adapter2/adapter_model.safetensors" ||
  fail "two runs with the same seed wrote different adapters"

echo "$failures failures"
[ "$failures" -eq 0 ]
