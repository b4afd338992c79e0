"""Peers of longctx_bench_ttft, on the same GPU in the same session: where transformers' prefill
time goes, and the PyTorch rates at our chunk shapes.

Prints one JSON object per line:
  peer_gemm: torch.nn.functional.linear (bf16 out, as transformers' projections) at the
    Llama-3.1-8B projections for T rows (qkv as transformers runs it: q, k, v separately;
    gate and up separately), and torch.matmul 8192^3.
  peer_attention: scaled_dot_product_attention, FLASH and CUDNN backends, causal over L
    tokens in one call (what transformers does for a whole prompt) and, for a chunk of T
    queries after c*T cached keys, with the lower-right causal mask.
  peer_profile: transformers (sdpa) on the whole prompt, one forward under torch.profiler:
    device time summed by kernel class (gemm, attention, other) beside the wall time.
Timing: CUDA events, one warm-up, median of N runs.
  python3 bench/cuda/ttft_peer.py [chunks=16384,32768] [profile_prompts=32768]
"""
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F

CHUNKS = [int(x) for x in (sys.argv[1] if len(sys.argv) > 1 else "16384,32768").split(",")]
PROFILE = [int(x) for x in (sys.argv[2] if len(sys.argv) > 2 else "32768").split(",") if x]
H, HQ, HKV, D, INTER = 4096, 32, 8, 128, 14336


def emit(obj):
    print(json.dumps(obj), flush=True)


def time_ms(f, reps):
    f()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        f()
        b.record()
        b.synchronize()
        ts.append(a.elapsed_time(b))
    return statistics.median(ts)


def gemms(dev):
    n = 8192
    a = torch.rand(n, n, device=dev, dtype=torch.bfloat16) * 2 - 1
    b = torch.rand(n, n, device=dev, dtype=torch.bfloat16) * 2 - 1
    ms = time_ms(lambda: torch.matmul(a, b), 10)
    emit({"bench": "peer_gemm", "op": "matmul_8192", "ms": round(ms, 4), "tflops": round(2 * n ** 3 / ms / 1e9, 1)})
    del a, b
    shapes = [("q_proj", HQ * D, H), ("k_proj", HKV * D, H), ("v_proj", HKV * D, H), ("qkv_fused", (HQ + 2 * HKV) * D, H),
              ("o_proj", H, HQ * D), ("gate_proj", INTER, H), ("up_proj", INTER, H), ("gate_up_fused", 2 * INTER, H),
              ("down_proj", H, INTER)]
    for T in CHUNKS:
        for name, n_out, k in shapes:
            x = (torch.rand(T, k, device=dev, dtype=torch.bfloat16) * 2 - 1)
            w = (torch.rand(n_out, k, device=dev, dtype=torch.bfloat16) * 2 - 1) * 0.02
            ms = time_ms(lambda: F.linear(x, w), 5)
            emit({"bench": "peer_gemm", "op": name, "m": T, "n": n_out, "k": k, "ms": round(ms, 4),
                  "tflops": round(2.0 * T * n_out * k / ms / 1e9, 1)})
            del x, w
        torch.cuda.empty_cache()


def attention(dev):
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.nn.attention.bias import causal_lower_right
    backends = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION}
    cases = []
    for L in (16384, 32768):
        cases.append(("causal", L, L))
    for T in CHUNKS:
        for c in (1, 3):
            cases.append(("chunk", T, (c + 1) * T))
    for kind, nq, nk in cases:
        q = torch.rand(1, HQ, nq, D, device=dev, dtype=torch.bfloat16) * 2 - 1
        k = torch.rand(1, HKV, nk, D, device=dev, dtype=torch.bfloat16) * 2 - 1
        v = torch.rand(1, HKV, nk, D, device=dev, dtype=torch.bfloat16) * 2 - 1
        ke = k.repeat_interleave(HQ // HKV, dim=1).contiguous()
        ve = v.repeat_interleave(HQ // HKV, dim=1).contiguous()
        flops = 4.0 * nq * (nk - nq / 2.0) * HQ * D
        for name, be in backends.items():
            try:
                with sdpa_kernel([be]):
                    if kind == "causal":
                        f = lambda: F.scaled_dot_product_attention(q, ke, ve, is_causal=True)
                    else:
                        mask = causal_lower_right(nq, nk)
                        f = lambda: F.scaled_dot_product_attention(q, ke, ve, attn_mask=mask)
                    ms = time_ms(f, 3 if nk > 40000 else 5)
                emit({"bench": "peer_attention", "backend": name, "kind": kind, "q": nq, "keys": nk, "ms": round(ms, 4),
                      "tflops": round(flops / ms / 1e9, 1)})
            except Exception as e:  # a backend that refuses the shape or the mask
                emit({"bench": "peer_attention", "backend": name, "kind": kind, "q": nq, "keys": nk,
                      "error": str(e)[:160]})
        del q, k, v, ke, ve
        torch.cuda.empty_cache()


def kernel_class(name):
    n = name.lower()
    if any(s in n for s in ("flash", "fmha", "cudnn", "attention", "sdpa")):
        return "attention"
    if any(s in n for s in ("gemm", "nvjet", "cutlass", "xmma", "sm90_", "cublas")):
        return "gemm"
    return "other"


@torch.inference_mode()
def profile(dev):
    sys.path.insert(0, "bench/cuda")
    from peer_latency import build
    model, peer = build()
    if model is None:
        emit({"bench": "peer_profile", "error": "transformers is not installed"})
        return
    ids = torch.randint(0, 128256, (1, 512), device=dev)
    model(ids, logits_to_keep=1, use_cache=False)
    torch.cuda.synchronize()
    from torch.profiler import ProfilerActivity, profile as tprofile
    for L in PROFILE:
        ids = torch.randint(0, 128256, (1, L), device=dev)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        model(ids, logits_to_keep=1, use_cache=True)
        torch.cuda.synchronize()
        wall = time.perf_counter() - t0
        with tprofile(activities=[ProfilerActivity.CUDA]) as prof:
            model(ids, logits_to_keep=1, use_cache=True)
            torch.cuda.synchronize()
        by_class, top = {}, {}
        for e in prof.key_averages():
            us = getattr(e, "self_device_time_total", None)
            if us is None:
                us = getattr(e, "self_cuda_time_total", 0.0)
            if not us:
                continue
            cls = kernel_class(e.key)
            by_class[cls] = by_class.get(cls, 0.0) + us
            top[e.key] = top.get(e.key, 0.0) + us
        emit({"bench": "peer_profile", "peer": peer, "prompt": L, "wall_s": round(wall, 4),
              "device_s": {k: round(v / 1e6, 4) for k, v in by_class.items()},
              "top": [[k[:90], round(v / 1e6, 4)] for k, v in sorted(top.items(), key=lambda kv: -kv[1])[:14]]})
        torch.cuda.empty_cache()


def main():
    dev = torch.device("cuda")
    emit({"bench": "peer_device", "name": torch.cuda.get_device_name(), "torch": torch.__version__})
    gemms(dev)
    attention(dev)
    if PROFILE:
        profile(dev)


if __name__ == "__main__":
    main()
