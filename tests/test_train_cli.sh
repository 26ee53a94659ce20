#!/bin/bash
# `fedlora train`, `eval` and `generate` end to end on stories260K: a LoRA trained on a repeated
# sequence is written as a PEFT directory, reloads to the same validation loss, and makes greedy
# generation continue the sequence; --adapter-in resumes; bad arguments exit 2 with a message.
set -u
bin="$FEDLORA_BUILD_DIR/fedlora"
ckpt="$FEDLORA_SHARED/testdata/stories260K/stories260K.bin"
if [ ! -f "$ckpt" ]; then echo "SKIPPED: $ckpt is absent"; exit 77; fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
failures=0
expect() {  # expect NAME WANT GOT
  if [ "$2" == "$3" ]; then echo "ok   $1"; else echo "FAIL $1: want [$2] got [$3]"; failures=$((failures + 1)); fi
}
json_get() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }
below() { python3 -c "import sys; print('yes' if float(sys.argv[1]) < float(sys.argv[2]) else 'no: ' + sys.argv[1])" "$1" "$2"; }

pattern="461 401 378 455 473 456 435 299 362 409 283 264"
for i in $(seq 30); do echo "$pattern"; done > "$tmp/rep.ids"

for cmd in train eval generate; do
  expect "$cmd --help" "0" "$("$bin" $cmd --help > /dev/null; echo $?)"
done

out="$("$bin" train --model "$ckpt" --data "$tmp/rep.ids" --val "$tmp/rep.ids" --out "$tmp/ad" --targets all \
  --lr 1e-2 --steps 25 --seq-len 48 --batch 4 --shuffle off --seed 3 --threads 2 --json 2>/dev/null)"
expect "train exits 0" "0" "$?"
expect "adapter files written" "yes" "$([ -f "$tmp/ad/adapter_config.json" ] && [ -f "$tmp/ad/adapter_model.safetensors" ] && echo yes)"
expect "train steps" "25" "$(json_get "$out" steps)"
expect "val loss falls below 0.05" "yes" "$(below "$(json_get "$out" val_loss)" 0.05)"
expect "val loss before training is high" "yes" "$(below 5 "$(json_get "$out" val_loss_before)")"

ev="$("$bin" eval --model "$ckpt" --adapter "$tmp/ad" --data "$tmp/rep.ids" --seq-len 48 --batch 4 --json)"
expect "eval through the saved adapter = in-training val loss" "$(json_get "$out" val_loss)" "$(json_get "$ev" loss)"
expect "eval tokens = every target once" "359" "$(json_get "$ev" tokens)"
base="$("$bin" eval --model "$ckpt" --data "$tmp/rep.ids" --seq-len 48 --json)"
expect "base perplexity = exp(loss)" "yes" \
  "$(python3 -c "import json,math,sys; o=json.loads(sys.argv[1]); print('yes' if abs(math.exp(o['loss'])-o['perplexity'])<1e-6*o['perplexity'] else 'no')" "$base")"

gen="$("$bin" generate --model "$ckpt" --adapter "$tmp/ad" --prompt-ids "1 461" -n 14 --temperature 0)"
expect "generation continues the trained sequence" "461 401 378 455 473 456 435 299 362 409 283 264 461 401" "$gen"

out2="$("$bin" train --model "$ckpt" --data "$tmp/rep.ids" --adapter-in "$tmp/ad" --out "$tmp/ad2" --lr 1e-2 \
  --steps 2 --seq-len 48 --json 2>/dev/null)"
expect "--adapter-in resumes from the trained adapter" "yes" "$(below "$(json_get "$out2" loss_first)" 0.05)"
expect "--adapter-in keeps its targets" "yes" "$(grep -q gate_proj "$tmp/ad2/adapter_config.json" && echo yes)"

msg="$("$bin" train --model "$ckpt" --data "$tmp/rep.ids" --out "$tmp/x" --targets q,w 2>&1)"; rc=$?
expect "unknown target exits 2 naming it" "2 yes" "$rc $([[ "$msg" == *"unknown module 'w'"* ]] && echo yes)"
msg="$("$bin" eval --model "$ckpt" --data "$tmp/rep.ids" --batch zero 2>&1)"; rc=$?
expect "bad --batch exits 2" "2 yes" "$rc $([[ "$msg" == *"--batch expects an integer"* ]] && echo yes)"
echo "99999" > "$tmp/bad.ids"
msg="$("$bin" eval --model "$ckpt" --data "$tmp/bad.ids" 2>&1)"; rc=$?
expect "token outside the vocabulary exits 1 naming file and line" "1 yes" "$rc $([[ "$msg" == *"bad.ids:1:"*"99999"* ]] && echo yes)"
msg="$("$bin" generate --model "$tmp/missing.bin" --prompt-ids 1 2>&1)"; rc=$?
expect "missing model exits 1" "1 yes" "$rc $([[ "$msg" == *"missing.bin"* ]] && echo yes)"
echo "$failures failed"
[ "$failures" -eq 0 ]
