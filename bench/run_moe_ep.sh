#!/usr/bin/env bash
# CPU benchmark of a MoE layer spread over host ranks: experts TP-split (--ep 1) against
# expert parallelism (--ep N), each beside the single-rank layer in the same run
# (bench/moe_ep_bench.cpp), on the qwen3_moe fixture and a Qwen3-30B-A3B-shaped layer.
# Appends a section to bench/RESULTS.md and the raw JSON to bench/results/.
# BUILD (default build) is the build folder; only longctx_bench_moe_ep is (re)built in it.
# On a machine without a build (the device tool: a quiet 16-core host), carry a built
# binary and set BENCH=path, RESULTS_MD and RESULTS_DIR (e.g. under $OUT) and COMMIT.
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_TARGET=longctx_bench_moe_ep
source bench/moe_common.sh
# Each rank runs one OpenMP/OpenBLAS thread and is timed by its thread CPU time (the bench).
json=$RESULTS_DIR/moe_ep_layer_$(date -u +%Y%m%d_%H%M%S).json
: > "$json"
"$bench" --config tests/data/hf/qwen3_moe --dtype f32 --tokens 256,2048 --ranks 2,4,8 --repeats 9 | tee -a "$json"
"$bench" --config qwen3_moe/30b-a3b --dtype bf16 --tokens 16,256,2048 --ranks 2,4,8 --repeats 3 | tee -a "$json"
python3 - "$json" "$stamp" "$commit" "$cpu" "$cores" "${OPENBLAS_CORETYPE:-unset}" >> "$RESULTS_MD" <<'PY'
import sys
sys.path.insert(0, "bench")
from moe_results import layer, load_rows
path, stamp, commit, cpu, cores, coretype = sys.argv[1:]
rows = load_rows(path)
print(f"\n## MoE layer over ranks on CPU (TP-split experts vs EP) — {stamp}\n")
print(f"Machine: {cpu}, {cores} cores. Ranks are threads of one process (HostCommunicator),")
print("one OpenMP/OpenBLAS thread each (RunOptions::threads_per_rank = 1); each rank is timed by")
print("its own thread CPU time (a rank blocked in a collective sleeps, so waiting does not")
print("count; the host collectives' copies do). critical = the slowest rank's time per layer")
print("forward plus the FFN all-reduce (the layer's time on dedicated cores with ideal links),")
print("total = the sum over ranks (work); speedup = single-rank time / critical, measured in")
print(f"the same run. OPENBLAS_CORETYPE={coretype}. Commit: {commit}. Random weights and inputs")
print("(near-balanced routing); bench/moe_ep_bench.cpp, model/sharded_moe_mlp.cpp.\n")
print("| layer | weights | tokens | ranks | split | single ms | critical ms | total ms | speedup | tok/s (critical) |")
print("|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    split = "EP" if r["split"] == "ep" else "TP-split"
    print(f"| {layer(r)} | {r['weights']} | {r['tokens']} | {r['ranks']} | {split} | {r['single_ms']:.2f} | "
          f"{r['critical_ms']:.2f} | {r['total_ms']:.2f} | {r['speedup']:.2f} | {r['tok_s']:.1f} |")
PY
echo "results: $RESULTS_MD, $json"
