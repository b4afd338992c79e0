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
# Env: LONGCTX (the binary, default build/src/longctx), ONLY=1m|10m|spp (one part only).
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

# SPP (Medha's third axis): the same 128 GPUs as tp 8 × pp 4 × kvp 4, a long prefill's
# chunks pipelined through the 4 stages (a step starts every stage time; a decode's token
# takes all 4). FCFS and LRS + adaptive (the sizer keeps pp stage times within the TBT SLO).
run_spp() {  # name gpus tp pp kvp mix_prompts long_tokens requests
  local name=$1 gpus=$2 tp=$3 pp=$4 kvp=$5 prompts=$6 long=$7 n=$8
  local rate=$((2 * gpus / 8))
  local shard=$(( (long + kvp - 1) / kvp ))
  shard=$(( (shard + 15) / 16 * 16 ))
  "$bin" simulate --preset llama/8b --gpu h100 --gpus "$gpus" --tp "$tp" --pp "$pp" --kvp "$kvp" \
    --kvp-shard-tokens "$shard" --max-num-batched-tokens $((4096 * kvp)) --max-num-seqs $((256 * kvp)) \
    --workload "mix:n=$n,rate=$rate,prompts=$prompts,out=128-512,seed=1" \
    --compare fcfs,lrs+adaptive --tbt-slo 0.1 --min-chunk 256 --ttft-slo 0.5 --block-size 256 \
    --json > "$out/$name.json"
  echo "ran $name: $gpus GPUs (tp $tp x pp $pp x kvp $kvp), $n requests at $rate/s" >&2
}
if [ -z "${ONLY:-}" ] || [ "$ONLY" = spp ]; then
  run_spp 1m_128gpu_spp 128 8 4 4 "0.995@1k-8k+0.005@1m" 1048576 8000
  run_spp 10m_128gpu_spp 128 8 4 4 "0.995@1k-8k+0.005@10m" 10485760 600
  # One 10M prompt alone on 128 GPUs, per layout: what SPP does for a single long prefill
  # (FCFS, 16K-token chunks; 16 output tokens).
  for layout in "tp8_kvp16:--tp 8 --kvp 16 --kvp-shard-tokens 655360" \
                "tp8_pp4_kvp4:--tp 8 --pp 4 --kvp 4 --kvp-shard-tokens 2621440" \
                "tp8_pp8_kvp2:--tp 8 --pp 8 --kvp 2 --kvp-shard-tokens 5242880" \
                "tp8_pp16:--tp 8 --pp 16"; do
    # shellcheck disable=SC2086
    "$bin" simulate --preset llama/8b --gpu h100 --gpus 128 ${layout#*:} --max-num-batched-tokens 16384 \
      --workload "mix:n=1,rate=1,prompts=1@10m,out=16-16,seed=1" --policy fcfs --block-size 256 \
      --json > "$out/10m_alone_${layout%%:*}.json"
  done
fi

python3 - "$out" <<'PY'
import json, sys, os
out = sys.argv[1]
print("| mix | GPUs | variant | short TTFT p50 | short TTFT p99 | long TTFT p50 | long TTFT p99 | short TBT p50 | tok/s | makespan |")
print("|---|---|---|---|---|---|---|---|---|---|")
for name in ("1m_8gpu", "1m_32gpu", "1m_128gpu", "1m_128gpu_spp", "10m_32gpu", "10m_128gpu", "10m_128gpu_spp"):
    if not os.path.exists(os.path.join(out, name + ".json")):
        continue
    j = json.load(open(os.path.join(out, name + ".json")))
    mix, gpus = name.split("_")[:2]
    gpus = str(j["gpus"]) + (" (tp8 pp4 kvp4, SPP)" if name.endswith("_spp") else "")
    for r in j["runs"]:
        s, l, a = r["classes"]["short"], r["classes"]["long"], r["classes"]["all"]
        # No long request finished (e.g. all refused: a pool too small for their KV).
        long_p50 = f"{l['ttft_p50']:.4g} s" if l["count"] else f"{l['rejected']} rejected"
        long_p99 = f"{l['ttft_p99']:.4g} s" if l["count"] else "–"
        print(f"| {mix} | {gpus} | {r['policy']} | {s['ttft_p50']:.3g} s | {s['ttft_p99']:.3g} s | "
              f"{long_p50} | {long_p99} | {s['tbt_p50']*1e3:.0f} ms | {a['throughput_tok_s']:,.0f} | {r['duration_s']:.0f} s |")
print()
# Floor: causal attention FLOPs of a 10,485,760-token prompt on Llama-3-8B (2·L²·Hq·d·layers)
# over 128 GPUs at the table's attention rate (GEMMs add 2·params·L, under 1% of it).
print("| one 10M prompt alone, 128 GPUs | TTFT | attention floor | TTFT ÷ floor |")
print("|---|---|---|---|")
for name in ("tp8_kvp16", "tp8_pp4_kvp4", "tp8_pp8_kvp2", "tp8_pp16"):
    f = os.path.join(out, f"10m_alone_{name}.json")
    if os.path.exists(f):
        j = json.load(open(f))
        L = 10485760
        floor = 2 * L * L * 32 * 128 * 32 / (j["gpus"] * j["hardware"]["attn_flops_per_s"])
        t = j["classes"]["long"]["ttft_p50"]
        print(f"| {name.replace('_', ' ')} | {t:.0f} s | {floor:.0f} s | {t / floor:.2f} |")
PY
