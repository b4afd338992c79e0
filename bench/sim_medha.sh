#!/usr/bin/env bash
# The Medha experiment in simulation (docs/scheduling.md, "The Medha experiment"):
# Llama-3-8B-shaped cost model on H100s, mixes with 1M and 10M prompts, 8 to 128 GPUs;
# LRS + adaptive chunking vs FCFS with fixed chunks (both on one replica spanning the
# GPUs: tp 8 × kvp N/8) vs separate short/long pools (half the GPUs each). KV blocks of
# 256 tokens: a 10M-token request is then 41K blocks, not 655K, for the allocator to walk
# (timings do not depend on the block size). Writes one
# JSON per run and the TTFT-CDF SVGs, then prints the Markdown table of the doc.
#
#   bash bench/sim_medha.sh [OUT_DIR] [IMG_DIR]
# Env: LONGCTX (the binary, default build/src/longctx), ONLY=1m|10m (one mix only).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${LONGCTX:-build/src/longctx}
out=${1:-bench/results/sim_medha}
img=${2:-docs/img}
mkdir -p "$out" "$img"

run() {  # name gpus tp kvp mix_prompts long_tokens requests
  local name=$1 gpus=$2 tp=$3 kvp=$4 prompts=$5 long=$6 n=$7
  local rate=$((2 * gpus / 8))
  local shard=$(( (long + kvp - 1) / kvp ))
  shard=$(( (shard + 15) / 16 * 16 ))
  # The step budget and running-request limit grow with the KVP groups: each group is
  # a TP group serving its own share of the batch.
  "$bin" simulate --preset llama/8b --gpu h100 --gpus "$gpus" --tp "$tp" --kvp "$kvp" \
    --kvp-shard-tokens "$shard" --max-num-batched-tokens $((4096 * kvp)) --max-num-seqs $((256 * kvp)) \
    --workload "mix:n=$n,rate=$rate,prompts=$prompts,out=128-512,seed=1" \
    --compare fcfs,lrs+adaptive,fcfs+pools --short-pool-gpus $((gpus / 2)) --short-tp "$tp" \
    --tbt-slo 0.1 --min-chunk 256 --ttft-slo 0.5 --block-size 256 \
    --plot "$img/medha_${name}.svg" --plot-title "TTFT CDF, Llama-3-8B, $gpus x H100, $name mix" \
    --json > "$out/$name.json"
  echo "ran $name: $gpus GPUs, $n requests at $rate/s" >&2
}

if [ -z "${ONLY:-}" ] || [ "$ONLY" = 1m ]; then
  run 1m_8gpu 8 4 2 "0.995@1k-8k+0.005@1m" 1048576 2000
  run 1m_32gpu 32 8 4 "0.995@1k-8k+0.005@1m" 1048576 8000
  run 1m_128gpu 128 8 16 "0.995@1k-8k+0.005@1m" 1048576 8000
fi
# 10M prompts: a 10M prefill is ~30 min of 32 GPUs, so a short trace (600 requests,
# 0.5% 10M) that still holds a few 10M prompts.
if [ -z "${ONLY:-}" ] || [ "$ONLY" = 10m ]; then
  run 10m_128gpu 128 8 16 "0.995@1k-8k+0.005@10m" 10485760 600
  # 32 GPUs hold KV for ~17M tokens: one 10M request at a time. Before admission
  # reserved whole prompts this never finished (the 10M prefills evicted each other).
  run 10m_32gpu 32 8 4 "0.995@1k-8k+0.005@10m" 10485760 600
fi

python3 - "$out" <<'PY'
import json, sys, os
out = sys.argv[1]
print("| mix | GPUs | variant | short TTFT p50 | short TTFT p99 | long TTFT p50 | long TTFT p99 | short TBT p50 | tok/s | makespan |")
print("|---|---|---|---|---|---|---|---|---|---|")
for name in ("1m_8gpu", "1m_32gpu", "1m_128gpu", "10m_32gpu", "10m_128gpu"):
    if not os.path.exists(os.path.join(out, name + ".json")):
        continue
    j = json.load(open(os.path.join(out, name + ".json")))
    mix, gpus = name.split("_")
    for r in j["runs"]:
        s, l, a = r["classes"]["short"], r["classes"]["long"], r["classes"]["all"]
        # No long request finished (e.g. all refused: a pool too small for their KV).
        long_p50 = f"{l['ttft_p50']:.4g} s" if l["count"] else f"{l['rejected']} rejected"
        long_p99 = f"{l['ttft_p99']:.4g} s" if l["count"] else "–"
        print(f"| {mix} | {j['gpus']} | {r['policy']} | {s['ttft_p50']:.3g} s | {s['ttft_p99']:.3g} s | "
              f"{long_p50} | {long_p99} | {s['tbt_p50']*1e3:.0f} ms | {a['throughput_tok_s']:,.0f} | {r['duration_s']:.0f} s |")
PY
