"""PyTorch peer of longctx_bench_moe_grouped: torch's grouped_mm on the same expert groups.

Reads the `moe_routing` lines that the C++ benchmark printed (argv[1]) — per-expert row
counts of each (shape, tokens) case — and times, on the same GPU in the same session:
  torch_grouped_mm  torch.nn.functional.grouped_mm if this PyTorch has it, else
                    torch._grouped_mm: x [rows, k] bf16 · w [E, n, k]ᵀ (a transposed view,
                    the layout those kernels take), offs = cumulative row ends (int32);
  torch_dense       torch.matmul over all rows with one weight (the same FLOPs, no groups).
Timing as the C++ side: CUDA events, 3 warm-ups, median of 20. One JSON object per line.
"""
import json
import sys

import torch


def grouped_mm_fn():
    f = getattr(torch.nn.functional, "grouped_mm", None)
    if f is not None:
        return f, "torch.nn.functional.grouped_mm"
    return torch._grouped_mm, "torch._grouped_mm"


def median_ms(fn, reps=20):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a = torch.cuda.Event(enable_timing=True)
        b = torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    times.sort()
    return times[len(times) // 2]


def main():
    cases = [json.loads(l) for l in open(sys.argv[1]) if '"moe_routing"' in l]
    gmm, gmm_name = grouped_mm_fn()
    print(json.dumps({"bench": "peer_device", "name": torch.cuda.get_device_name(), "torch": torch.__version__,
                      "grouped_mm": gmm_name}), flush=True)
    dev = torch.device("cuda")
    gen = torch.Generator(device=dev).manual_seed(0)
    weights = {}
    for c in cases:
        e, h, inter = c["experts"], c["hidden"], c["inter"]
        rows = c["rows"]
        offs = torch.tensor(c["counts"], dtype=torch.int64).cumsum(0).to(torch.int32).to(dev)
        for gemm, n, k in (("gate_up", 2 * inter, h), ("down", h, inter)):
            key = (c["shape"], gemm)
            if key not in weights:
                weights.clear()  # one shape's weights at a time
                torch.cuda.empty_cache()
                weights[key] = (torch.rand(e, n, k, device=dev, generator=gen, dtype=torch.float32) * 0.04 - 0.02).to(
                    torch.bfloat16)
            w = weights[key]
            x = (torch.rand(rows, k, device=dev, generator=gen) * 2 - 1).to(torch.bfloat16)
            wt = w.transpose(-2, -1)  # [E, k, n], column-major per expert
            flops = 2.0 * rows * n * k
            out = gmm(x, wt, offs=offs)
            # The same groups through a per-expert loop in fp32: a check that offs means what we think.
            ref_rows = []
            start = 0
            for ex, cnt in enumerate(c["counts"]):
                if cnt:
                    ref_rows.append(x[start:start + cnt].float() @ w[ex].float().t())
                start += cnt
            ref = torch.cat(ref_rows)
            rel = ((out.float() - ref).norm() / ref.norm()).item()
            for method, fn in (("torch_grouped_mm", lambda: gmm(x, wt, offs=offs)),
                               ("torch_dense", lambda: torch.matmul(x, w[0].t()))):
                ms = median_ms(fn)
                line = {"bench": "moe_gemm", "impl": "torch", "shape": c["shape"], "tokens": c["tokens"],
                        "rows": rows, "gemm": gemm, "n": n, "k": k, "method": method, "ms": round(ms, 4),
                        "tflops": round(flops / (ms * 1e-3) / 1e12, 1)}
                if method == "torch_grouped_mm":
                    line["rel_err_vs_fp32_loop"] = float("%.2e" % rel)
                print(json.dumps(line), flush=True)
            del x, out, ref, ref_rows


if __name__ == "__main__":
    main()
