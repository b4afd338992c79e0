"""Peer of `longctx bench latency`: Hugging Face transformers (attn_implementation="sdpa")
on the same shape (Llama-3.1-8B, random bf16 weights), same GPU, same session.

TTFT: one forward of the whole prompt with logits for the last position only
(logits_to_keep=1), synchronised. TPOT: decode steps over a DynamicCache pre-filled with
random K/V of the context length (as our benchmark decodes over a randomised KV cache);
each step is model(next_token, past_key_values=cache), timed to the argmax on the host.
Without transformers, a PyTorch reference of the same layer stack (F.scaled_dot_product_attention
and torch.matmul) is used and labelled "torch-reference". Prints one JSON object.
"""
import json
import math
import statistics
import sys
import time

import torch

PROMPTS = [int(x) for x in (sys.argv[1] if len(sys.argv) > 1 else "4096,16384,32768,131072").split(",")]
BATCHES = [int(x) for x in (sys.argv[2] if len(sys.argv) > 2 else "1,8,64").split(",")]
CONTEXTS = [int(x) for x in (sys.argv[3] if len(sys.argv) > 3 else "1024,32768").split(",")]
STEPS = 10

CFG = dict(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
           num_attention_heads=32, num_key_value_heads=8, head_dim=128, max_position_embeddings=131072,
           rms_norm_eps=1e-5, rope_theta=500000.0, tie_word_embeddings=False)


def sync():
    torch.cuda.synchronize()


def build():
    try:
        import transformers
        from transformers import LlamaConfig, LlamaForCausalLM
        rope = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                "original_max_position_embeddings": 8192}
        kw = {k: v for k, v in CFG.items() if k != "rope_theta"}
        if int(transformers.__version__.split(".")[0]) >= 5:  # 5.x: rope_parameters holds rope_theta too
            cfg = LlamaConfig(**kw, rope_parameters=dict(rope, rope_theta=CFG["rope_theta"]))
        else:
            cfg = LlamaConfig(**kw, rope_theta=CFG["rope_theta"], rope_scaling=rope)
        cfg._attn_implementation = "sdpa"
        torch.set_default_dtype(torch.bfloat16)
        with torch.device("cuda"):
            model = LlamaForCausalLM(cfg)
        torch.set_default_dtype(torch.float32)
        model.eval()
        return model, "transformers %s (sdpa)" % transformers.__version__
    except ImportError:
        return None, "torch-reference"


def kv_bytes_ok(tokens):
    need = tokens * 2 * 32 * 8 * 128 * 2
    free, _ = torch.cuda.mem_get_info()
    return need < free * 0.8


@torch.inference_mode()
def main():
    model, peer = build()
    if model is None:
        print(json.dumps({"peer": peer, "error": "transformers is not installed"}))
        return
    from transformers import DynamicCache
    out = {"peer": peer, "device": torch.cuda.get_device_name(), "torch": torch.__version__, "ttft": [], "tpot": []}
    gen = torch.Generator(device="cuda").manual_seed(0)
    # warm-up
    ids = torch.randint(0, CFG["vocab_size"], (1, 512), device="cuda", generator=gen)
    model(ids, logits_to_keep=1, use_cache=False)
    sync()
    for L in PROMPTS:
        ids = torch.randint(0, CFG["vocab_size"], (1, L), device="cuda", generator=gen)
        times = []
        try:
            for r in range(1 if L >= 65536 else 2):
                sync()
                t0 = time.perf_counter()
                logits = model(ids, logits_to_keep=1, use_cache=True).logits
                tok = int(logits[0, -1].argmax())
                times.append(time.perf_counter() - t0)
                del logits
            out["ttft"].append({"prompt_tokens": L, "peer_s": statistics.median(times)})
        except torch.OutOfMemoryError as e:
            out["ttft"].append({"prompt_tokens": L, "peer_s": None, "error": "out of memory"})
        torch.cuda.empty_cache()
        print(json.dumps(out["ttft"][-1]), file=sys.stderr, flush=True)
    for ctx in CONTEXTS:
        for b in BATCHES:
            if not kv_bytes_ok(b * (ctx + STEPS + 4)):
                out["tpot"].append({"batch": b, "context": ctx, "peer_s": None,
                                    "error": "KV of %d x %d tokens does not fit next to the weights" % (b, ctx)})
                print(json.dumps(out["tpot"][-1]), file=sys.stderr, flush=True)
                continue
            try:
                cache = DynamicCache()
                for layer in range(CFG["num_hidden_layers"]):
                    k = torch.rand((b, 8, ctx, 128), device="cuda", dtype=torch.bfloat16, generator=gen) * 2 - 1
                    v = torch.rand((b, 8, ctx, 128), device="cuda", dtype=torch.bfloat16, generator=gen) * 2 - 1
                    cache.update(k, v, layer)
                tok = torch.randint(0, CFG["vocab_size"], (b, 1), device="cuda", generator=gen)
                times = []
                for step in range(STEPS + 3):
                    pos = torch.full((b, 1), ctx + step, device="cuda", dtype=torch.long)
                    sync()
                    t0 = time.perf_counter()
                    logits = model(tok, past_key_values=cache, position_ids=pos, use_cache=True).logits
                    tok = logits[:, -1].argmax(-1, keepdim=True)
                    tok.cpu()
                    if step >= 3:
                        times.append(time.perf_counter() - t0)
                out["tpot"].append({"batch": b, "context": ctx, "peer_s": statistics.median(times)})
                del cache
            except torch.OutOfMemoryError:
                out["tpot"].append({"batch": b, "context": ctx, "peer_s": None, "error": "out of memory"})
            torch.cuda.empty_cache()
            print(json.dumps(out["tpot"][-1]), file=sys.stderr, flush=True)
    # The ceilings as torch sees them (a cross-check of ours).
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    bm = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ bm
    sync()
    ts = []
    for _ in range(10):
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record(); a @ bm; e1.record(); e1.synchronize()
        ts.append(e0.elapsed_time(e1) * 1e-3)
    out["torch_matmul_tflops"] = 2 * 8192 ** 3 / statistics.median(ts) / 1e12
    print(json.dumps(out))


if __name__ == "__main__":  # bench/cuda/ttft_peer.py imports build()
    main()
