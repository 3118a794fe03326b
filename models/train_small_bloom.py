#!/usr/bin/env python3
"""Trains a small BLOOM (the architecture of bloom-560m: ALiBi, fused QKV, tied embeddings; hidden
256, 4 layers, 4 heads, vocab 4096) on CLINC150's training utterances, so that the CPU engine's
quantized precisions can be judged on a model with real structure (random weights say nothing
about quantization error). Deterministic: one thread, fixed seeds; a few CPU minutes.

Writes OUT_DIR as a Hugging Face checkpoint (config.json, model.safetensors, tokenizer.json),
plus `heldout.txt` (CLINC150's `val` and `oos_val` utterances, never trained on) and
`metrics.json` with PyTorch's own fp32 perplexity on them. The perplexity is over each line's
tokens, each line scored after `</s>` — the same as `cpu_engine_bench --perplexity`.

Usage: train_small_bloom.py CLINC_DIR OUT_DIR [--steps 1200] [--seed 0]
"""

import argparse
import json
import math
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_tiny_bloom import train_tokenizer  # noqa: E402  (the tests' tokenizer recipe)


def batches(rows, size, rng):
    order = list(range(len(rows)))
    while True:
        rng.shuffle(order)
        for i in range(0, len(order) - size + 1, size):
            yield [rows[j] for j in order[i:i + size]]


def pad(seqs, pad_id):
    import torch

    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(s)
        mask[i, :len(s)] = 1
    return ids, mask


def perplexity(model, seqs, pad_id):
    """exp(mean NLL) of every token after the leading </s> (the trailing </s> not scored)."""
    import torch

    nll, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(seqs), 64):
            chunk = [s[:-1] for s in seqs[i:i + 64]]
            ids, mask = pad(chunk, pad_id)
            logits = model(input_ids=ids, attention_mask=mask).logits
            logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
            target = ids[:, 1:]
            picked = logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)
            valid = mask[:, 1:].bool()
            nll -= picked[valid].sum().item()
            count += int(valid.sum())
    return math.exp(nll / count), count


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clinc")
    ap.add_argument("out")
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import torch
    from transformers import BloomConfig, BloomForCausalLM, PreTrainedTokenizerFast

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    rng = random.Random(args.seed)

    with open(os.path.join(args.clinc, "train_val.json"), encoding="utf-8") as f:
        data = json.load(f)
    train_text = [u for u, _ in data["train"] + data["oos_train"]]
    heldout_text = [u for u, _ in data["val"] + data["oos_val"]]

    tokenizer = train_tokenizer(train_text, 4096)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    os.makedirs(args.out, exist_ok=True)
    fast.save_pretrained(args.out)
    eos, pad_id = fast.eos_token_id, fast.pad_token_id

    def encode(lines):
        return [[eos] + tokenizer.encode(line).ids + [eos] for line in lines]

    train, heldout = encode(train_text), encode(heldout_text)
    config = BloomConfig(
        vocab_size=4096, hidden_size=256, n_layer=4, n_head=4,
        bos_token_id=fast.bos_token_id, eos_token_id=eos, pad_token_id=pad_id,
        unk_token_id=fast.unk_token_id, seq_length=2048,
    )
    model = BloomForCausalLM(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / 50) * 0.5 * (1 + math.cos(math.pi * step / args.steps))
    )
    started = time.time()
    model.train()
    for step, batch in zip(range(args.steps), batches(train, 32, rng)):
        ids, mask = pad(batch, pad_id)
        labels = ids.masked_fill(mask == 0, -100)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        if step % 200 == 0 or step == args.steps - 1:
            print(f"step {step}: loss {loss.item():.3f} ({time.time() - started:.0f} s)", flush=True)
    model.eval()
    ppl, tokens = perplexity(model, heldout, pad_id)
    model.save_pretrained(args.out, safe_serialization=True)
    with open(os.path.join(args.out, "heldout.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(heldout_text) + "\n")
    metrics = {
        "steps": args.steps,
        "seed": args.seed,
        "train_seconds": round(time.time() - started, 1),
        "heldout_lines": len(heldout_text),
        "heldout_tokens": tokens,
        "heldout_perplexity_pytorch_fp32": round(ppl, 4),
    }
    with open(os.path.join(args.out, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    print(f"{args.out}: held-out perplexity {ppl:.4f} over {tokens} tokens (PyTorch fp32)")


if __name__ == "__main__":
    main()
