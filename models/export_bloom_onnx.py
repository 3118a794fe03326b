#!/usr/bin/env python3
"""Exports a BLOOM model directory (bigscience/bloom-560m, or one made by make_tiny_bloom.py) to
ONNX for gpu-backend's CPU engine, which runs it with tract-onnx.

The graph is a with-past decoder: inputs `input_ids` [1, S] and, per layer, `past_key_i` and
`past_value_i` [1, heads, P, head_dim]; outputs `logits` [1, vocab] for the last position and
`present_key_i` / `present_value_i` [1, heads, P+S, head_dim]. S and P are symbolic, so one
graph serves the prompt (P = 0) and every decoded token (S = 1). Weights go to external data
(`model.onnx.data`): bloom-560m is over ONNX's 2 GB protobuf limit.

The forward pass is written out here over the model's own modules (embedding, layer norms,
fused QKV, dense layers) instead of tracing transformers' BloomForCausalLM, whose cache
classes change between releases. The script checks it against transformers before exporting.
Two choices are for tract: the LM head gets its own copy of the tied embedding matrix (tract
re-packs a constant shared by a Gather and a MatMul on every call), and the causal mask is
built from positions (the engine turns off tract's FoldUniformMask pass, which folds it wrongly).

With --goldens it also writes `goldens.json`: transformers' logits for fixed ids and its greedy
generation (20 tokens), which the engine's tests compare against.

Usage: export_bloom_onnx.py MODEL_DIR OUT_DIR [--goldens]
"""

import argparse
import json
import math
import os
import shutil
import sys
import time


def alibi_slopes(num_heads):
    # transformers' build_alibi_tensor, slopes only.
    closest = 2 ** math.floor(math.log2(num_heads))
    base = 2 ** (-(2 ** -(math.log2(closest) - 3)))
    slopes = [base ** p for p in range(1, closest + 1)]
    if closest != num_heads:
        extra = 2 ** (-(2 ** -(math.log2(2 * closest) - 3)))
        remaining = min(closest, num_heads - closest)
        slopes += [extra ** p for p in range(1, 1 + 2 * remaining, 2)]
    return slopes


def build_module(model):
    import torch
    import torch.nn.functional as F

    config = model.config
    if config.apply_residual_connection_post_layernorm:
        sys.exit("apply_residual_connection_post_layernorm=true is not supported (bloom-560m: false)")
    heads = config.n_head
    head_dim = config.hidden_size // heads

    class BloomWithPast(torch.nn.Module):
        def __init__(self):
            super().__init__()
            t = model.transformer
            self.embeddings = t.word_embeddings
            self.embeddings_ln = t.word_embeddings_layernorm
            self.blocks = t.h
            self.ln_f = t.ln_f
            # Untied on purpose (see the module docstring).
            self.lm_head = torch.nn.Parameter(model.lm_head.weight.detach().clone())
            self.register_buffer("slopes", torch.tensor(alibi_slopes(heads), dtype=torch.float32))

        def forward(self, input_ids, *past):
            batch, seq = input_ids.shape
            past_len = past[0].shape[2]
            total = past_len + seq
            hidden = self.embeddings_ln(self.embeddings(input_ids))
            key_pos = torch.arange(total, dtype=torch.float32)
            query_pos = torch.arange(seq, dtype=torch.float32) + past_len
            alibi = self.slopes[:, None, None] * key_pos[None, None, :]
            future = key_pos[None, :] > query_pos[:, None]
            mask = torch.where(future, torch.finfo(torch.float32).min, 0.0)
            bias = alibi + mask[None, :, :]
            scale = 1.0 / math.sqrt(head_dim)
            presents = []
            for i, block in enumerate(self.blocks):
                ln = block.input_layernorm(hidden)
                qkv = block.self_attention.query_key_value(ln).view(batch, seq, heads, 3, head_dim)
                query = qkv[..., 0, :].transpose(1, 2)
                key = torch.cat([past[2 * i], qkv[..., 1, :].transpose(1, 2)], dim=2)
                value = torch.cat([past[2 * i + 1], qkv[..., 2, :].transpose(1, 2)], dim=2)
                presents += [key, value]
                scores = torch.matmul(query, key.transpose(-1, -2)) * scale + bias
                probs = F.softmax(scores, dim=-1)
                context = torch.matmul(probs, value).transpose(1, 2).reshape(batch, seq, heads * head_dim)
                attended = block.self_attention.dense(context) + hidden
                ff = block.mlp.dense_h_to_4h(block.post_attention_layernorm(attended))
                ff = ff * 0.5 * (1.0 + torch.tanh(0.79788456 * ff * (1 + 0.044715 * ff * ff)))
                hidden = block.mlp.dense_4h_to_h(ff) + attended
            last = self.ln_f(hidden[:, -1, :])
            logits = torch.matmul(last, self.lm_head.t())
            return (logits, *presents)

    return BloomWithPast().eval(), heads, head_dim


def empty_past(config, heads, head_dim, length=0):
    import torch

    gen = torch.Generator().manual_seed(1)
    return [
        torch.randn(1, heads, length, head_dim, generator=gen) if length else torch.zeros(1, heads, 0, head_dim)
        for _ in range(2 * config.n_layer)
    ]


def check_against_transformers(model, module, heads, head_dim, vocab):
    """Our forward, prompt then token by token through the cache, against transformers'."""
    import torch

    ids = torch.tensor([[(7 * i + 3) % vocab for i in range(12)]])
    with torch.no_grad():
        want = model(ids).logits[0]
        out = module(ids[:, :8], *empty_past(model.config, heads, head_dim))
        got = [out[0][0]]
        past = list(out[1:])
        for pos in range(8, 12):
            out = module(ids[:, pos : pos + 1], *past)
            got.append(out[0][0])
            past = list(out[1:])
    got = torch.stack(got)
    err = ((got - want[7:]).abs().max() / want[7:].abs().max()).item()
    print(f"export: our forward vs transformers: max relative error {err:.2e}", flush=True)
    if err > 1e-5:
        sys.exit(f"our forward pass disagrees with transformers ({err:.2e})")


def export(module, config, heads, head_dim, out_path):
    import torch

    layers = config.n_layer
    names_in = ["input_ids"] + [f"past_{kind}_{i}" for i in range(layers) for kind in ("key", "value")]
    names_out = ["logits"] + [f"present_{kind}_{i}" for i in range(layers) for kind in ("key", "value")]
    ids = torch.tensor([[5, 6, 7, 8]])
    past = empty_past(config, heads, head_dim, length=3)
    seq = torch.export.Dim("S", min=1, max=65536)
    past_len = torch.export.Dim("P", min=0, max=65536)
    # forward(input_ids, *past): torch.export sees two arguments, the ids and a tuple.
    shapes = ({1: seq}, tuple({2: past_len} for _ in past))
    with torch.no_grad():
        torch.onnx.export(
            module,
            (ids, *past),
            out_path,
            input_names=names_in,
            output_names=names_out,
            dynamic_shapes=shapes,
            dynamo=True,
            external_data=True,
            optimize=True,
            # tract is tested against opsets 9 to 18.
            opset_version=18,
        )


def goldens(model, tokenizer_path, out_path):
    import torch
    from transformers import GenerationConfig

    vocab = model.config.vocab_size
    ids = [(11 * i + 5) % vocab for i in range(10)]
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0]
    from tokenizers import Tokenizer

    prompt = Tokenizer.from_file(tokenizer_path).encode("User: hello, what can you do?\nAssistant:").ids
    # eos_token_id None: 20 tokens whatever they are (random weights may pick </s>).
    config = GenerationConfig(do_sample=False, max_new_tokens=20, eos_token_id=None, pad_token_id=0)
    with torch.no_grad():
        generated = model.generate(torch.tensor([prompt]), generation_config=config)[0][len(prompt) :]
    with open(out_path, "w") as f:
        json.dump(
            {
                "logits_ids": ids,
                "logits": [[round(float(x), 7) for x in row] for row in logits],
                "greedy_prompt_ids": prompt,
                "greedy_ids": [int(x) for x in generated],
            },
            f,
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir")
    parser.add_argument("out_dir")
    parser.add_argument("--goldens", action="store_true")
    args = parser.parse_args()

    import torch
    from transformers import BloomForCausalLM

    torch.manual_seed(0)
    started = time.time()
    model = BloomForCausalLM.from_pretrained(args.model_dir, torch_dtype=torch.float32).eval()
    module, heads, head_dim = build_module(model)
    check_against_transformers(model, module, heads, head_dim, model.config.vocab_size)
    os.makedirs(args.out_dir, exist_ok=True)
    for stale in ("model.onnx", "model.onnx.data"):
        if os.path.exists(os.path.join(args.out_dir, stale)):
            os.remove(os.path.join(args.out_dir, stale))
    export(module, model.config, heads, head_dim, os.path.join(args.out_dir, "model.onnx"))
    for name in ("config.json", "tokenizer.json"):
        shutil.copy(os.path.join(args.model_dir, name), os.path.join(args.out_dir, name))
    if args.goldens:
        goldens(model, os.path.join(args.model_dir, "tokenizer.json"), os.path.join(args.out_dir, "goldens.json"))
    print(f"export: wrote {args.out_dir} in {time.time() - started:.1f} s", flush=True)


if __name__ == "__main__":
    main()
