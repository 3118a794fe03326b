#!/usr/bin/env python3
"""PyTorch eager (fp32 or bf16) on a BLOOM model directory, measured as gpu-backend's
cpu_engine_bench measures the CPU engine: prefill of 64 tokens (median of three), greedy decode
tokens/s with the key/value cache, peak RSS. Same ids, same thread count.

Usage: bench_bloom_torch.py MODEL_DIR [--dtype fp32|bf16] [--prompt-tokens 64] [--decode-tokens 32] [--threads N]
"""

import argparse
import resource
import time


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("model_dir")
    parser.add_argument("--prompt-tokens", type=int, default=64)
    parser.add_argument("--decode-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    args = parser.parse_args()

    import torch
    from transformers import BloomForCausalLM

    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.time()
    model = BloomForCausalLM.from_pretrained(
        args.model_dir,
        torch_dtype=torch.float32 if args.dtype == "fp32" else torch.bfloat16,
        attn_implementation="eager",
    ).eval()
    load_s = time.time() - started
    ids = torch.tensor([[(i * 7 + 3) % 4000 for i in range(args.prompt_tokens)]])
    with torch.inference_mode():
        prefills = []
        for _ in range(3):
            t = time.time()
            out = model(ids, use_cache=True)
            prefills.append(time.time() - t)
        prefills.sort()
        past = out.past_key_values
        token = out.logits[:, -1, :].argmax(-1, keepdim=True)
        t = time.time()
        for _ in range(args.decode_tokens):
            out = model(token, past_key_values=past, use_cache=True)
            past = out.past_key_values
            token = out.logits[:, -1, :].argmax(-1, keepdim=True)
        decode_s = time.time() - t
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"RESULT engine=pytorch-{args.dtype}-eager threads={torch.get_num_threads()} load_s={load_s:.2f} "
        f"prefill_{args.prompt_tokens}_s={prefills[1]:.3f} "
        f"prefill_tok_s={args.prompt_tokens / prefills[1]:.1f} "
        f"decode_tok_s={args.decode_tokens / decode_s:.2f} peak_rss_mb={peak_mb:.0f}",
        flush=True,
    )


if __name__ == "__main__":
    main()
