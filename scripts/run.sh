#!/usr/bin/env bash
# Sets everything up on a fresh machine, writes the embedded default model (a tiny
# random-weight Qwen3 with the real Qwen3 tokenizer) and generates from a chat prompt.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
model=models/qwen3-tiny
[ -f "$model/model.safetensors" ] || ./build/src/longctx make-model --arch qwen3 --preset tiny --out "$model"
./build/src/longctx generate --model "$model" --chat "${1:-What is context parallelism?}" --max-tokens 32 --json
