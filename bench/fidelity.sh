#!/usr/bin/env bash
# Fidelity of the simulator against a real server on this machine's CPU backend
# (docs/scheduling.md, "Fidelity"): one trace of mixed requests is
#   1. served for real: `longctx serve` + `longctx bench serve --dataset TRACE`,
#   2. simulated: `longctx simulate --trace TRACE --hardware PROFILE` with the table that
#      `longctx bench profile --model DIR` measured on this machine just before, and the
#      serving path's per-request overhead, its idle-wake cost and the steps' slowdown under
#      concurrent streams, measured on the same server by two probes,
# and the per-class median and p90 TTFT and TBT are compared (bench/fidelity_compare.py).
#
#   bash bench/fidelity.sh MODEL_DIR [N] [WORKLOAD] [LONG_THRESHOLD]
# Env: PROFILE_ARGS (extra `bench profile` flags, e.g. "--quick --repeats 2" for a slow
# model), LONGCTX (the binary, default build/src/longctx), OMP_NUM_THREADS (default 1: on
# shared cores a second OpenMP thread mostly waits at barriers), OUT (results folder,
# default bench/results/fidelity_<model>_<time>).
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:?usage: bench/fidelity.sh MODEL_DIR [N] [WORKLOAD]}
n=${2:-200}
# 85% short prompts (64-512 tokens), 15% long (2K-8K; "long" from 2048), 16-64 outputs.
workload=${3:-"mix:n=$n,rate=1.5,prompts=0.85@64-512+0.15@2k-8k,out=16-64,seed=7"}
bin=${LONGCTX:-build/src/longctx}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
name=$(basename "$model")
out=${OUT:-bench/results/fidelity_${name}_$(date -u +%Y%m%d_%H%M%S)}
mkdir -p "$out"
threshold=${4:-2048}

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$out/load.txt"
# shellcheck disable=SC2086
"$bin" bench profile --out "$out/profile.json" --model "$model" --name "cpu-$name" ${PROFILE_ARGS:-} \
  | tee "$out/profile.txt"
# The trace: generated once, then served and simulated.
"$bin" simulate --workload "$workload" --model "$model" --hardware "$out/profile.json" \
  --kv-cache-tokens 1000000 --save-trace "$out/trace.jsonl" --long-threshold $threshold > /dev/null

port=$((20000 + RANDOM % 20000))
"$bin" serve --model "$model" --port $port --max-num-batched-tokens 2048 --max-num-seqs 256 \
  --step-log "$out/steps.jsonl" > "$out/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  curl -sf "http://127.0.0.1:$port/health" > /dev/null && break
  sleep 0.5
done
# The serving path's own cost per request (HTTP, tokenization, the stream's first write)
# and what waking an idle engine adds to its first step: 30 short requests one at a time,
# their client TTFT and logged steps against the calibration (bench/request_overhead.py);
# the simulator adds them (--request-overhead, --idle-wake).
python3 -c 'import json
for i in range(30): print(json.dumps({"arrival_s": 0.25 * i, "prompt_tokens": 64, "output_tokens": 2}))' \
  > "$out/probe_trace.jsonl"
"$bin" bench serve --base-url "http://127.0.0.1:$port" --dataset "$out/probe_trace.jsonl" --num-prompts 30 \
  --vocab-size 1000 --result-json "$out/probe_serve.json" --max-duration 120 > "$out/probe_bench_serve.txt"
read -r overhead idle_wake < <(python3 bench/request_overhead.py "$out/probe_serve.json" "$out/steps.jsonl" \
  "$out/profile.json" 2> >(tee -a "$out/load.txt" >&2))
probe_steps=$(wc -l < "$out/steps.jsonl")
# The engine's steps while the server streams to several clients at once, against the
# profile's price: 8 requests together (64-token prompts, 32 tokens each), three times; the
# median measured / predicted of their ~90 decode steps scales every simulated step
# (--step-scale). One burst of ~30 steps of a few ms each moved the factor from 0.94 to 1.19
# between two runs of the same binary on the tiny model; three bursts steady it.
python3 -c 'import json
for i in range(8): print(json.dumps({"arrival_s": 0.001 * i, "prompt_tokens": 64, "output_tokens": 32}))' \
  > "$out/probe_streams_trace.jsonl"
for burst in 1 2 3; do
  "$bin" bench serve --base-url "http://127.0.0.1:$port" --dataset "$out/probe_streams_trace.jsonl" --num-prompts 8 \
    --vocab-size 1000 --result-json "$out/probe_streams_serve_$burst.json" --max-duration 300 \
    > "$out/probe_streams_bench_serve_$burst.txt"
done
streams_end=$(wc -l < "$out/steps.jsonl")
step_scale=$(python3 bench/serving_factor.py "$out/steps.jsonl" "$out/profile.json" $((probe_steps + 1)) "$streams_end" \
  2> >(tee -a "$out/load.txt" >&2))
probe_steps=$streams_end
start=$(date +%s)
"$bin" bench serve --base-url "http://127.0.0.1:$port" --dataset "$out/trace.jsonl" --num-prompts "$n" \
  --vocab-size 1000 --result-json "$out/serve.json" --max-duration 1800 | tee "$out/bench_serve.txt"
echo "served $n requests in $(( $(date +%s) - start )) s; load after: $(cut -d' ' -f1-3 /proc/loadavg)" \
  | tee -a "$out/load.txt"
kill $server; wait $server 2>/dev/null || true
trap - EXIT
tail -n +$((probe_steps + 1)) "$out/steps.jsonl" > "$out/trace_steps.jsonl"

"$bin" simulate --trace "$out/trace.jsonl" --model "$model" --hardware "$out/profile.json" \
  --kv-cache-tokens 1000000 --max-num-batched-tokens 2048 --max-num-seqs 256 --long-threshold $threshold \
  --request-overhead "$overhead" --idle-wake "$idle_wake" --step-scale "$step_scale" --requests-json "$out/sim_requests.json" --json > "$out/sim.json"
python3 bench/fidelity_compare.py "$out/serve.json" "$out/sim_requests.json" $threshold | tee "$out/compare.md"
# Every step of the trace's run priced by the calibration, by kind of step.
python3 bench/step_fidelity.py "$out/trace_steps.jsonl" "$out/profile.json" | tee "$out/steps.md"
echo "results in $out"
