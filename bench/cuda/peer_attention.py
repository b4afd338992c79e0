"""PyTorch peers for longctx_bench_kernels, measured in the same session on the same GPU.

Prints one JSON object per line:
  prefill attention, causal, B=1, 32 q heads / 8 kv heads, d 128, L = 4K, 16K and 64K, through
  torch.nn.functional.scaled_dot_product_attention with the FLASH_ATTENTION and
  CUDNN_ATTENTION backends (contiguous K/V: the peers read no block tables). GQA is passed as
  enable_gqa=True; where a backend refuses it, K/V are expanded to 32 heads beforehand
  (outside the timing) and the line says "gqa": "expanded".
  decode attention (one query token, 32K and 128K context, B = 1 and 8) with the same backends.
  torch.matmul bf16 8192³ and a device-to-device copy, as the ceilings' cross-check.
Timing: CUDA events, 3 warm-ups, median of N runs.
"""
import json
import statistics

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel


def time_ms(f, reps):
    for _ in range(3):
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


def sdpa(backend, q, k, v, causal, reps):
    """Returns (ms, gqa_mode) or raises when the backend cannot run the shape."""
    hq, hkv = q.shape[1], k.shape[1]
    with sdpa_kernel([backend]):
        try:
            f = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True)
            f()
            torch.cuda.synchronize()
            return time_ms(f, reps), "enable_gqa"
        except RuntimeError:
            ke = k.repeat_interleave(hq // hkv, dim=1).contiguous()
            ve = v.repeat_interleave(hq // hkv, dim=1).contiguous()
            f = lambda: F.scaled_dot_product_attention(q, ke, ve, is_causal=causal)
            f()
            torch.cuda.synchronize()
            return time_ms(f, reps), "expanded"


def emit(obj):
    print(json.dumps(obj), flush=True)


def main():
    dev = torch.device("cuda")
    emit({"bench": "peer_device", "name": torch.cuda.get_device_name(), "torch": torch.__version__,
          "cudnn": torch.backends.cudnn.version()})
    hq, hkv, d = 32, 8, 128
    backends = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION}
    for L in (4096, 16384, 65536):
        q = torch.randn(1, hq, L, d, device=dev, dtype=torch.bfloat16)
        k = torch.randn(1, hkv, L, d, device=dev, dtype=torch.bfloat16)
        v = torch.randn(1, hkv, L, d, device=dev, dtype=torch.bfloat16)
        for name, be in backends.items():
            try:
                ms, mode = sdpa(be, q, k, v, True, 5 if L > 20000 else 10 if L > 8192 else 20)
                emit({"bench": "peer_prefill_attention", "backend": name, "L": L, "ms": round(ms, 4),
                      "tflops": round(2.0 * L * L * hq * d / ms / 1e9, 1), "gqa": mode})
            except RuntimeError as e:
                emit({"bench": "peer_prefill_attention", "backend": name, "L": L, "error": str(e)[:200]})
        del q, k, v
    for L, B in ((32768, 1), (32768, 8), (131072, 1), (131072, 8)):
        q = torch.randn(B, hq, 1, d, device=dev, dtype=torch.bfloat16)
        k = torch.randn(B, hkv, L, d, device=dev, dtype=torch.bfloat16)
        v = torch.randn(B, hkv, L, d, device=dev, dtype=torch.bfloat16)
        for name, be in backends.items():
            try:
                ms, mode = sdpa(be, q, k, v, False, 30)
                kv_bytes = 2.0 * B * L * hkv * d * 2
                emit({"bench": "peer_decode_attention", "backend": name, "B": B, "context": L, "ms": round(ms, 4),
                      "kv_gbps": round(kv_bytes / ms / 1e6, 1), "gqa": mode})
            except RuntimeError as e:
                emit({"bench": "peer_decode_attention", "backend": name, "B": B, "context": L,
                      "error": str(e)[:200]})
        del q, k, v
    a = torch.randn(8192, 8192, device=dev, dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device=dev, dtype=torch.bfloat16)
    ms = time_ms(lambda: a @ b.T, 10)
    emit({"bench": "peer_gemm", "m": 8192, "n": 8192, "k": 8192, "ms": round(ms, 4),
          "tflops": round(2.0 * 8192 ** 3 / ms / 1e9, 1)})
    n = 1 << 30
    src = torch.empty(n, dtype=torch.uint8, device=dev).fill_(0x5a)
    dst = torch.empty_like(src)
    ms = time_ms(lambda: dst.copy_(src), 20)
    emit({"bench": "peer_d2d_copy", "bytes": n, "ms": round(ms, 4), "gbps_rw": round(2.0 * n / ms / 1e6, 1)})


if __name__ == "__main__":
    main()
