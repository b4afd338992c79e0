#!/usr/bin/env bash
# The engine on one GPU (`--device cuda`) on a machine with an NVIDIA GPU: the engine's GPU
# tests, `longctx generate --device cuda` against `--device cpu`, the refusals (MoE, a
# layout the GPU ranks lack: exit 2), then `longctx serve --device cuda` on a fixture model with a few
# requests through curl (non-streaming, streaming, seeded sampling twice), /metrics before
# and after, and a short `longctx bench serve` against it.
# Nothing is built here: the binaries come prebuilt with their non-CUDA shared libraries:
#   cmake -S . -B build-gpuengine -G Ninja -DLONGCTX_CUDA=ON -DLONGCTX_NATIVE=OFF
#   ninja -C build-gpuengine longctx_cuda_tests longctx
#   scripts/device/bundle_libs.sh build-gpuengine/devlibs build-gpuengine/tests/longctx_cuda_tests build-gpuengine/src/longctx
# Through the device tool: `OUT=$OUT BIN=build-gpuengine bash scripts/device/engine_gpu.sh`
# with carry = $BIN/tests/longctx_cuda_tests, $BIN/src/longctx, $BIN/devlibs.
# Run from the repo root (the fixtures are tests/data/hf). Results in $OUT: device.txt,
# engine_tests.log/.json, generate_*.json, refusals.txt, serve.out/.err, completion.json,
# stream.txt, seeded_*.json, metrics_{idle,after}.txt, bench_serve.json/.log, summary.txt.
# Exit status: non-zero if any step failed.
set -uo pipefail
OUT=${OUT:-/tmp/longctx-engine-gpu-out}
BIN=${BIN:-build-gpuengine}
TESTS=$BIN/tests/longctx_cuda_tests
LONGCTX=$PWD/$BIN/src/longctx
MODEL=${MODEL:-tests/data/hf/llama_gqa}
mkdir -p "$OUT"
status=0
summary() { echo "$*" | tee -a "$OUT/summary.txt"; }

LIBS=$PWD/$BIN/devlibs:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
# shellcheck source=scripts/device/find_cuda_libs.sh
. "$(dirname "${BASH_SOURCE[0]}")/find_cuda_libs.sh"
find_cuda_libs "$TESTS" "$LONGCTX" || status=1
export LD_LIBRARY_PATH=$LIBS
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | tee "$OUT/device.txt"

echo "== engine GPU tests"
if [ -x "$TESTS" ]; then
  timeout 240 "$TESTS" --gtest_filter='*EngineCuda*' --gtest_output=json:"$OUT/engine_tests.json" \
    >"$OUT/engine_tests.log" 2>&1
  rc=$?
  grep -E "^\[  (FAILED|PASSED) |Failure|greedy tokens|differ from|logprobs:|memory plan" "$OUT/engine_tests.log" | head -60
  [ $rc -eq 0 ] || { summary "engine tests FAILED ($rc)"; status=1; }
fi

echo "== generate: --device cuda against --device cpu (greedy, same bf16 weights)"
PROMPT=3,14,15,92,65,35,89,79,32,38,46,26,43,38,32,79,50,28,84,19,71,69,39,93,75,10,58,20,97,49,44,59,23
for dev in cuda cpu; do
  timeout 60 "$LONGCTX" generate --model "$MODEL" --prompt-ids "$PROMPT" --max-tokens 16 --ignore-eos --json \
    --dtype bfloat16 --device "$dev" --max-model-len 4096 --gpu-memory-utilization 0.3 \
    >"$OUT/generate_$dev.json" 2>"$OUT/generate_$dev.err" || { summary "generate --device $dev FAILED"; status=1; }
done
if cmp -s <(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["token_ids"])' "$OUT/generate_cuda.json") \
          <(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["token_ids"])' "$OUT/generate_cpu.json"); then
  summary "generate: cuda tokens == cpu tokens: $(cat "$OUT/generate_cuda.json")"
else
  summary "generate: cuda and cpu tokens DIFFER: $(cat "$OUT/generate_cuda.json") vs $(cat "$OUT/generate_cpu.json")"
  status=1
fi

echo "== refusals (exit 2 expected)"
: >"$OUT/refusals.txt"
refuse() {
  "$LONGCTX" "$@" >/dev/null 2>>"$OUT/refusals.txt"
  local rc=$?
  summary "refusal rc=$rc: $*"
  [ $rc -eq 2 ] || status=1
}
refuse generate --model tests/data/hf/mixtral_moe --prompt-ids 1,2,3 --device cuda
refuse generate --model tests/data/hf/deepseek_v3_mla --prompt-ids 1,2,3 --device cuda
refuse generate --model "$MODEL" --prompt-ids 1,2,3 --device cuda --helix --kvp 2 --kvp-shard-tokens 16  # --tp 2 runs (GPU ranks)
refuse generate --model "$MODEL" --prompt-ids 1,2,3 --device tpu
cat "$OUT/refusals.txt"

echo "== serve --device cuda"
"$LONGCTX" serve --model "$MODEL" --skip-tokenizer-init --served-model-name fixture --port 0 --device cuda \
  --max-model-len 4096 --gpu-memory-utilization 0.5 --max-num-seqs 64 --metrics-open \
  >"$OUT/serve.out" 2>"$OUT/serve.err" &
server=$!
port=""
for _ in $(seq 1 600); do
  port=$(sed -n 's|.*listening on http://[^:]*:\([0-9]*\).*|\1|p' "$OUT/serve.out")
  [ -n "$port" ] && curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
  kill -0 $server 2>/dev/null || break
  sleep 0.1
done
if ! curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1; then
  summary "serve did not become healthy"; cat "$OUT/serve.err"; kill $server 2>/dev/null; exit 1
fi
cat "$OUT/serve.out"
URL=http://127.0.0.1:$port
curl -s "$URL/metrics" >"$OUT/metrics_idle.txt"
post() { curl -s -H 'Content-Type: application/json' "$URL/v1/completions" -d "$1"; }
post "{\"model\":\"fixture\",\"prompt\":[$PROMPT],\"max_tokens\":16,\"temperature\":0,\"ignore_eos\":true,\"return_token_ids\":true}" \
  >"$OUT/completion.json"
summary "completion: $(cat "$OUT/completion.json")"
served=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["choices"][0]["token_ids"])' "$OUT/completion.json" 2>/dev/null)
want=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["token_ids"])' "$OUT/generate_cuda.json" 2>/dev/null)
if [ -n "$served" ] && [ "$served" = "$want" ]; then summary "served tokens == generate --device cuda"; else summary "served tokens DIFFER: $served vs $want"; status=1; fi
post "{\"model\":\"fixture\",\"prompt\":[$PROMPT],\"max_tokens\":12,\"temperature\":0,\"ignore_eos\":true,\"stream\":true,\"return_token_ids\":true,\"stream_options\":{\"include_usage\":true}}" \
  >"$OUT/stream.txt"
summary "stream: $(grep -c '^data: ' "$OUT/stream.txt") data lines, last: $(grep '^data: ' "$OUT/stream.txt" | tail -1)"
grep -q 'data: \[DONE\]' "$OUT/stream.txt" || { summary "stream did not end with [DONE]"; status=1; }
for i in 1 2; do
  post "{\"model\":\"fixture\",\"prompt\":[5,6,7,8,9],\"max_tokens\":16,\"temperature\":0.8,\"top_p\":0.95,\"seed\":1234,\"ignore_eos\":true,\"return_token_ids\":true,\"logprobs\":0}" \
    >"$OUT/seeded_$i.json"
done
s1=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["choices"][0]["token_ids"])' "$OUT/seeded_1.json" 2>/dev/null)
s2=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["choices"][0]["token_ids"])' "$OUT/seeded_2.json" 2>/dev/null)
if [ -n "$s1" ] && [ "$s1" = "$s2" ]; then summary "seeded sampling reproducible: $s1"; else summary "seeded runs DIFFER: $s1 vs $s2"; status=1; fi

echo "== bench serve against it"
timeout 200 "$LONGCTX" bench serve --base-url "$URL" --num-prompts ${NUM_PROMPTS:-400} --request-rate inf \
  --max-concurrency ${CONCURRENCY:-32} --input-len 200 --output-len 64 --vocab-size 512 --seed 1 \
  --result-json "$OUT/bench_serve.json" >"$OUT/bench_serve.log" 2>&1 || { summary "bench serve FAILED"; status=1; }
cat "$OUT/bench_serve.log"
sleep 1
curl -s "$URL/metrics" >"$OUT/metrics_after.txt"
metric() { awk -v m="$1" 'index($0, m "{") == 1 && !v { v = $NF } END { print v }' "$2"; }
summary "metrics: kv usage idle $(metric vllm:kv_cache_usage_perc "$OUT/metrics_idle.txt") after $(metric vllm:kv_cache_usage_perc "$OUT/metrics_after.txt"); running after $(metric vllm:num_requests_running "$OUT/metrics_after.txt"); generation tokens $(metric vllm:generation_tokens_total "$OUT/metrics_after.txt"); prefix hits $(metric vllm:prefix_cache_hits_total "$OUT/metrics_after.txt")"
kill -TERM $server
wait $server
summary "serve exit $?"
tail -5 "$OUT/serve.err"
exit $status
