"""Appends a bench/RESULTS.md section and writes the raw JSON for one device run.

Usage (on the dev machine, after fetching what scripts/device/kernel_tests.sh wrote):
  python3 bench/cuda/report.py DIR   # DIR holds bench_ours.jsonl, bench_peer.jsonl, device.txt
                                     # (and bench_sweep.jsonl, the decode partition sweep, if run)
"""
import datetime
import json
import os
import subprocess
import sys

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
src = sys.argv[1]


def lines(name):
    path = os.path.join(src, name)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip().startswith("{")]


ours, peer, sweep = lines("bench_ours.jsonl"), lines("bench_peer.jsonl"), lines("bench_sweep.jsonl")
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


def ratio(a, b):
    return f"{a / b:.0%}" if a and b else "—"


out = [f"\n## CUDA kernels — {now.strftime('%Y-%m-%dT%H:%M:%SZ')}\n",
       f"Device: {device} (nvidia-smi: {smi[1].strip() if len(smi) > 1 else ''}). Commit: {commit}.",
       "Programs: `longctx_bench_kernels` (ours) and `bench/cuda/peer_attention.py` (PyTorch "
       f"{pick(peer, 'peer_device').get('torch', '?')}, cuDNN {pick(peer, 'peer_device').get('cudnn', '?')}), "
       "same session, same GPU; CUDA events, median of 5–30 runs after 3 warm-ups. "
       "Ours reads K/V through block tables (block 16, blocks in random order); the peers read "
       "contiguous K/V. Two figures for ours: events around one call (as the peers are timed: "
       "the host's enqueue and launch latency included) and, in brackets or the graph column, a "
       "CUDA graph of the call replayed back to back (10 per timing for decode, 1 for prefill), "
       "per replay: the device time when the launch hides behind earlier work, as in the model's "
       "decode-step graph. Raw JSON: `bench/results/cuda_kernels_" + stamp + ".json`.\n",
       "Prefill attention, causal, 1 sequence, 32 q heads / 8 kv heads, d 128 "
       "(FLOPs = 2·L²·Hq·d):\n",
       "| L | ours TFLOP/s (ms) | torch SDPA FLASH_ATTENTION | torch SDPA CUDNN_ATTENTION | ours / flash | ours / cuDNN |",
       "|---|---|---|---|---|---|"]
for L in (4096, 16384, 65536):
    o, f, c = pick(ours, "prefill_attention", L=L), pick(peer, "peer_prefill_attention", backend="flash", L=L), \
        pick(peer, "peer_prefill_attention", backend="cudnn", L=L)
    out.append(f"| {L} | {o.get('tflops')} ({o.get('ms')} ms) | {f.get('tflops')} ({f.get('ms')} ms) | "
               f"{c.get('tflops')} ({c.get('ms')} ms) | {ratio(o.get('tflops'), f.get('tflops'))} | "
               f"{ratio(o.get('tflops'), c.get('tflops'))} |")
copy = pick(ours, "d2d_copy")
cg = copy.get("gbps_rw")
out += ["", "Decode attention, one query token per sequence, 32/8 heads, d 128; bandwidth = "
        "K+V bytes read / time. Ceiling: a 1 GiB device-to-device copy in the same run, "
        f"{cg} GB/s counting bytes read + written (torch's copy: "
        f"{pick(peer, 'peer_d2d_copy').get('gbps_rw')} GB/s).\n",
        "| context | sequences | ours GB/s, one call (ms, partitions) | % of copy | ours GB/s, graph replays (ms) | "
        "% of copy | torch SDPA flash GB/s | torch SDPA cuDNN GB/s |",
        "|---|---|---|---|---|---|---|---|"]
for L in (32768, 131072):
    for B in (1, 8):
        o = pick(ours, "decode_attention", B=B, context=L)
        f = pick(peer, "peer_decode_attention", backend="flash", B=B, context=L)
        c = pick(peer, "peer_decode_attention", backend="cudnn", B=B, context=L)
        out.append(f"| {L // 1024}K | {B} | {o.get('kv_gbps')} ({o.get('ms')} ms, {o.get('splits')}) | "
                   f"{ratio(o.get('kv_gbps'), cg)} | {o.get('graph_kv_gbps')} ({o.get('graph_ms')} ms) | "
                   f"{ratio(o.get('graph_kv_gbps'), cg)} | {f.get('kv_gbps')} | {c.get('kv_gbps')} |")
if sweep:
    scopy = pick(sweep, "d2d_copy").get("gbps_rw")
    out += ["", "Decode partition sweep (same run, `longctx_bench_kernels --sweep`): GB/s of graph replays "
            f"at forced partition sizes (keys); copy {scopy} GB/s; the automatic choice first.\n"]
    parts = sorted({r["partition"] for r in sweep if r.get("bench") == "decode_sweep"})
    out.append("| context | sequences | " + " | ".join("auto" if p == 0 else str(p) for p in parts) + " |")
    out.append("|---|---|" + "---|" * len(parts))
    for L in (32768, 131072):
        for B in (1, 8):
            cells = []
            for p in parts:
                r = pick(sweep, "decode_sweep", B=B, context=L, partition=p)
                cells.append(f"{r['graph_kv_gbps']:.0f}" + (f" ({r['splits']})" if p == 0 else "") if r else "—")
            out.append(f"| {L // 1024}K | {B} | " + " | ".join(cells) + " |")
g, pg = pick(ours, "gemm"), pick(peer, "peer_gemm")
out += ["", f"GEMM bf16 8192³ through `cuda::linear` (cuBLASLt): {g.get('tflops')} TFLOP/s; torch.matmul: "
        f"{pg.get('tflops')} TFLOP/s.\n"]
with open(os.path.join(root, "bench", "RESULTS.md"), "a") as f:
    f.write("\n".join(out) + "\n")
os.makedirs(os.path.join(root, "bench", "results"), exist_ok=True)
with open(os.path.join(root, "bench", "results", f"cuda_kernels_{stamp}.json"), "w") as f:
    json.dump({"date": now.isoformat(), "device": device, "nvidia_smi": smi, "commit": commit, "ours": ours,
               "peer": peer, "sweep": sweep}, f, indent=1)
print("\n".join(out))
