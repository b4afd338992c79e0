"""Turns a bench/cuda/moe_run.sh output folder into a bench/RESULTS.md section and raw JSON.

  python3 bench/cuda/moe_report.py DIR [COMMIT]

DIR holds device.txt, moe_ours.jsonl (longctx_bench_moe_grouped) and moe_peer.jsonl
(moe_peer.py, same session, same GPU). Appends "## MoE grouped expert GEMMs (GPU)" to
bench/RESULTS.md and writes all lines to bench/results/moe_grouped_<stamp>.json.
"""
import datetime
import json
import os
import subprocess
import sys


def main():
    d = sys.argv[1]
    commit = sys.argv[2] if len(sys.argv) > 2 else subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    ours = [json.loads(l) for l in open(os.path.join(d, "moe_ours.jsonl")) if l.strip()]
    peer = [json.loads(l) for l in open(os.path.join(d, "moe_peer.jsonl")) if l.strip()]
    gpu = open(os.path.join(d, "device.txt")).read().splitlines()[1].split(",")[0]
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    pdev = next(r for r in peer if r["bench"] == "peer_device")
    routing = {(r["shape"], r["tokens"]): r for r in ours if r["bench"] == "moe_routing"}
    t = {}
    for r in ours + peer:
        if r["bench"] == "moe_gemm":
            method = r["method"].split(":")[0]
            t[(r["shape"], r["tokens"], r["gemm"], method)] = r
            if method == "auto":
                t[(r["shape"], r["tokens"], r["gemm"], "auto_choice")] = r["method"].split(":")[1]
    out = []
    p = out.append
    p(f"\n## MoE grouped expert GEMMs (GPU) — {stamp}\n")
    p(f"Device: {gpu}; PyTorch {pdev['torch']} ({pdev['grouped_mm']}) in the same session. Commit: {commit}.")
    p("bench/cuda/moe_grouped_bench.cu + moe_peer.py (bench/cuda/moe_run.sh): the two expert GEMMs of one")
    p("MoE layer (gate_up: n = 2·inter, k = hidden; down: n = hidden, k = inter), bf16 in/out, fp32")
    p("accumulation; per-expert row counts from Gumbel-top-k routing over a seeded log-normal expert")
    p("popularity (max/mean = the busiest expert's rows over the mean; the peer reads the same counts).")
    p("ms = median of 20 after 3 warm-ups, CUDA events (host enqueue time included). loop = one cuBLASLt")
    p("matmul per expert; grouped = one cublasGemmGroupedBatchedEx; auto = the cost model's pick (l/g);")
    p("dense = one GEMM of all rows with one weight (same FLOPs, no grouping: the floor).")
    p("torch/ours = torch grouped_mm time over our auto time (> 1: ours faster).\n")
    p("| shape | tokens | max/mean | GEMM | loop ms | grouped ms | auto ms | torch grouped_mm ms | "
      "dense ms (ours / torch) | auto TFLOP/s | torch/ours |")
    p("|---|---|---|---|---|---|---|---|---|---|---|")
    for (shape, tokens), rt in routing.items():
        for gemm in ("gate_up", "down"):
            g = lambda m: t.get((shape, tokens, gemm, m))
            if not g("auto") or not g("torch_grouped_mm"):
                continue
            choice = "l" if t[(shape, tokens, gemm, "auto_choice")] == "loop_lt" else "g"
            p(f"| {shape} | {tokens} | {rt['max_over_mean']:.2f} | {gemm} {g('auto')['n']}×{g('auto')['k']} | "
              f"{g('loop_lt')['ms']:.3f} | {g('cublas_grouped')['ms']:.3f} | {g('auto')['ms']:.3f} ({choice}) | "
              f"{g('torch_grouped_mm')['ms']:.3f} | {g('dense_floor')['ms']:.3f} / {g('torch_dense')['ms']:.3f} | "
              f"{g('auto')['tflops']:.0f} | {g('torch_grouped_mm')['ms'] / g('auto')['ms']:.2f} |")
    with open("bench/RESULTS.md", "a") as f:
        f.write("\n".join(out) + "\n")
    os.makedirs("bench/results", exist_ok=True)
    raw = f"bench/results/moe_grouped_{stamp.replace('-', '').replace(':', '')[:15]}.json"
    with open(raw, "w") as f:
        for r in ours + peer:
            f.write(json.dumps(r) + "\n")
    print("\n".join(out))
    print(f"raw: {raw}")


if __name__ == "__main__":
    main()
