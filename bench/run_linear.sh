#!/usr/bin/env bash
# CPU linear across its regime switch (bench/cpu_linear_bench.cpp): bf16 weights at the
# Qwen3-0.6B projection shapes, m = 1..32 rows, beside OpenBLAS sgemm on the same weights
# already in fp32 and the bf16 bytes over the measured read bandwidth, one core
# (OMP_NUM_THREADS=1, as bench/fidelity.sh runs the engine) unless OMP_NUM_THREADS says.
# Appends a section to bench/RESULTS.md and the JSON lines to bench/results/.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
source bench/common.sh
json=bench/results/cpu_linear_$(date -u +%Y%m%d_%H%M%S).jsonl
./build/bench/longctx_bench_cpu_linear "$@" | tee "$json"
python3 - "$json" "$stamp" "$commit" "$cpu" "$OMP_NUM_THREADS" "$(cut -d' ' -f1-3 /proc/loadavg)" >> bench/RESULTS.md <<'PY'
import json, sys
path, stamp, commit, cpu, threads, load = sys.argv[1:]
rows = [json.loads(l) for l in open(path)]
ms = sorted({r["m"] for r in rows})
print(f"\n## CPU linear (bf16 weights) — {stamp}\n")
print(f"Machine: {cpu}, OMP_NUM_THREADS={threads}, load {load}. Commit: {commit}. "
      f"`cpu::linear` with bf16 W (streaming path up to kLinearSmallM rows, widened panels + "
      f"sgemm above) beside OpenBLAS sgemm on the same weights in fp32 (no conversion) and the "
      f"bf16 bytes ÷ measured read bandwidth ({rows[0]['read_gb_s']:.1f} GB/s). Milliseconds, "
      f"median of the repeats; cells are ours / sgemm fp32.\n")
print("| shape (n × k) | floor | " + " | ".join(f"m={m}" for m in ms) + " |")
print("|---|---:|" + "---:|" * len(ms))
for shape in dict.fromkeys(r["shape"] for r in rows):
    rs = {r["m"]: r for r in rows if r["shape"] == shape}
    first = next(iter(rs.values()))
    cells = " | ".join(f"{rs[m]['ours_ms']:.2f} / {rs[m]['sgemm_f32_ms']:.2f}" for m in ms)
    print(f"| {shape} ({first['n']} × {first['k']}) | {first['read_floor_ms']:.2f} | {cells} |")
PY
echo "results: bench/RESULTS.md, $json"
