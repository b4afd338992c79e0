"""Appends a bench/RESULTS.md section and writes the raw JSON for one device run.

Usage (on the dev machine, after fetching what scripts/device/kernel_tests.sh wrote):
  python3 bench/cuda/report.py DIR   # DIR holds bench_ours.jsonl, bench_peer.jsonl, device.txt
"""
import datetime
import json
import os
import subprocess
import sys

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
src = sys.argv[1]


def lines(name):
    with open(os.path.join(src, name)) as f:
        return [json.loads(l) for l in f if l.strip().startswith("{")]


ours, peer = lines("bench_ours.jsonl"), lines("bench_peer.jsonl")
with open(os.path.join(src, "device.txt")) as f:
    smi = f.read().splitlines()
device = smi[1].split(",")[0].strip() if len(smi) > 1 else "unknown"
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True).stdout.strip()
dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True).stdout.strip()
commit += " dirty" if dirty else ""
now = datetime.datetime.now(datetime.timezone.utc)
stamp = now.strftime("%Y%m%d_%H%M%S")


def pick(rows, bench, **kw):
    for r in rows:
        if r.get("bench") == bench and all(r.get(k) == v for k, v in kw.items()):
            return r
    return {}


out = [f"\n## CUDA kernels — {now.strftime('%Y-%m-%dT%H:%M:%SZ')}\n",
       f"Device: {device} (nvidia-smi: {smi[1].strip() if len(smi) > 1 else ''}). Commit: {commit}.",
       "Programs: `longctx_bench_kernels` (ours) and `bench/cuda/peer_attention.py` (PyTorch "
       f"{pick(peer, 'peer_device').get('torch', '?')}, cuDNN {pick(peer, 'peer_device').get('cudnn', '?')}), "
       "same session, same GPU; CUDA events, median of 10–30 runs after 3 warm-ups. "
       "Ours reads K/V through block tables (block 16, blocks in random order); the peers read "
       "contiguous K/V. Raw JSON: `bench/results/cuda_kernels_" + stamp + ".json`.\n",
       "Prefill attention, causal, 1 sequence, 32 q heads / 8 kv heads, d 128 "
       "(FLOPs = 2·L²·Hq·d):\n",
       "| L | ours TFLOP/s | torch SDPA FLASH_ATTENTION | torch SDPA CUDNN_ATTENTION | ours / flash | ours / cuDNN |",
       "|---|---|---|---|---|---|"]
for L in (4096, 16384):
    o, f, c = pick(ours, "prefill_attention", L=L), pick(peer, "peer_prefill_attention", backend="flash", L=L), \
        pick(peer, "peer_prefill_attention", backend="cudnn", L=L)
    out.append(f"| {L} | {o.get('tflops')} ({o.get('ms')} ms) | {f.get('tflops')} ({f.get('ms')} ms) | "
               f"{c.get('tflops')} ({c.get('ms')} ms) | {o['tflops'] / f['tflops']:.0%} | {o['tflops'] / c['tflops']:.0%} |")
copy = pick(ours, "d2d_copy")
out += ["", "Decode attention, one query token per sequence, 32K context, 32/8 heads, d 128; bandwidth = "
        "K+V bytes read / time. Ceiling: a 1 GiB device-to-device copy in the same run, "
        f"{copy.get('gbps_rw')} GB/s counting bytes read + written (torch's copy: "
        f"{pick(peer, 'peer_d2d_copy').get('gbps_rw')} GB/s).\n",
        "| sequences | ours GB/s (ms, partitions) | % of copy | torch SDPA flash GB/s | torch SDPA cuDNN GB/s |",
        "|---|---|---|---|---|"]
for B in (1, 8):
    o = pick(ours, "decode_attention", B=B)
    f, c = pick(peer, "peer_decode_attention", backend="flash", B=B), pick(peer, "peer_decode_attention", backend="cudnn", B=B)
    out.append(f"| {B} | {o.get('kv_gbps')} ({o.get('ms')} ms, {o.get('splits')}) | {o['kv_gbps'] / copy['gbps_rw']:.0%} | "
               f"{f.get('kv_gbps')} | {c.get('kv_gbps')} |")
g, pg = pick(ours, "gemm"), pick(peer, "peer_gemm")
out += ["", f"GEMM bf16 8192³ through `cuda::linear` (cuBLASLt): {g.get('tflops')} TFLOP/s; torch.matmul: "
        f"{pg.get('tflops')} TFLOP/s.\n"]
with open(os.path.join(root, "bench", "RESULTS.md"), "a") as f:
    f.write("\n".join(out) + "\n")
os.makedirs(os.path.join(root, "bench", "results"), exist_ok=True)
with open(os.path.join(root, "bench", "results", f"cuda_kernels_{stamp}.json"), "w") as f:
    json.dump({"date": now.isoformat(), "device": device, "nvidia_smi": smi, "commit": commit, "ours": ours,
               "peer": peer}, f, indent=1)
print("\n".join(out))
