#!/bin/bash
# `fedlora tokenize` end to end: reference ids from the shared llama3/qwen3/llama2 vectors, decode back,
# the byte-level tokenizer, and the errors a user meets (a checkpoint given as --model, a bad id).
set -u
bin="$FEDLORA_BUILD_DIR/fedlora"
data="$FEDLORA_SHARED/testdata/tokenizers"
if [ ! -d "$data" ]; then echo "SKIPPED: $data is absent"; exit 77; fi
failures=0
expect() {  # expect NAME WANT GOT
  if [ "$2" == "$3" ]; then echo "ok   $1"; else echo "FAIL $1: want [$2] got [$3]"; failures=$((failures + 1)); fi
}
expect "llama3 encode" "9906 11 856 5679 374 19369" "$("$bin" tokenize --model "$data/llama3" "Hello, my dog is cute")"
expect "llama2 encode with BOS as JSON" "[1,22557,1526]" \
  "$("$bin" tokenize --tokenizer "$data/llama2/tokenizer.json" --bos --json "Hello world")"
expect "qwen3 decode" "café naïve résumé" "$("$bin" tokenize --model "$data/qwen3" --decode 924 58858 94880 586 9333 1242 963)"
expect "llama2 decode, skipping BOS" "Hello world" \
  "$("$bin" tokenize --model "$data/llama2" --decode --skip-special "[1, 22557, 1526]")"
expect "llama2 decode as JSON" '"<s> Hello world"' "$("$bin" tokenize --model "$data/llama2" --decode --json 1,22557,1526)"
expect "bytes from stdin" "104 195 169 10" "$(printf 'h\xc3\xa9\n' | "$bin" tokenize --tokenizer bytes --file -)"
msg="$("$bin" tokenize --model "$FEDLORA_BUILD_DIR/fedlora" x 2>&1)"; rc=$?
expect "a checkpoint as --model fails" "1" "$rc"
expect "and says to pass --tokenizer" "yes" "$([[ "$msg" == *"pass its tokenizer.bin with --tokenizer"* ]] && echo yes)"
msg="$("$bin" tokenize --model "$data/qwen3" --decode 999999 2>&1)"; rc=$?
expect "an id outside the vocabulary fails" "1 yes" "$rc $([[ "$msg" == *"outside the vocabulary"* ]] && echo yes)"
echo "$failures failed"
[ "$failures" -eq 0 ]
