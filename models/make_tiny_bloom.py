#!/usr/bin/env python3
"""Builds a tiny random-weight BLOOM model directory that vLLM and transformers load like
bigscience/bloom-560m, for tests (real weights cannot be downloaded here).

The shape is BLOOM's (ALiBi, fused QKV, LayerNorm after embeddings) at a tiny size: hidden
256, 2 layers, 4 heads (head size 64: vLLM's CPU attention rejects head size 16). The
tokenizer is a byte-level BPE trained here on the CLINC150 utterances (or, without them, on a
built-in text), saved as `tokenizer.json` with `tokenizer_class: BloomTokenizerFast`. Same
seed, same model: weights and tokenizer are deterministic.

Usage: make_tiny_bloom.py OUT_DIR [--seed 0] [--clinc DIR] [--shape tiny|560m]
"""

import argparse
import json
import os
import sys

SHAPES = {
    # hidden, layers, heads, vocab
    "tiny": (256, 2, 4, 4096),
    # bloom-560m's shape, for the CPU engine's benchmark.
    "560m": (1024, 24, 16, 250880),
}

SPECIAL = ["<unk>", "<s>", "</s>", "<pad>"]

FALLBACK_TEXT = """Hello there! How are you today? I'm fine, thank you.
Remind me to call mum at 5 PM. Set an alarm for seven in the morning.
What's the weather like? Tell me a joke. What can you do for me?
Thanks for your help. Good night. See you tomorrow.
User: hi
Assistant: Hi! How can I help you today?
"""


def corpus(clinc_dir):
    lines = []
    if clinc_dir:
        for name in sorted(os.listdir(clinc_dir)):
            if not name.endswith(".json"):
                continue
            with open(os.path.join(clinc_dir, name), encoding="utf-8") as f:
                data = json.load(f)
            if isinstance(data, dict):
                for value in data.values():
                    if isinstance(value, list):
                        for item in value:
                            if isinstance(item, list) and item and isinstance(item[0], str):
                                lines.append(item[0])
    if not lines:
        lines = FALLBACK_TEXT.splitlines()
    # Role markers of the backend's prompt template, so they tokenize compactly.
    lines += ["User:", "Assistant:", "System:", "Context:"] * 50
    return lines


def train_tokenizer(lines, vocab_size):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(lines, trainer=trainer)
    return tokenizer


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clinc", default=None, help="CLINC150 folder (data_*.json)")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
    args = parser.parse_args()

    import torch
    from transformers import BloomConfig, BloomForCausalLM, PreTrainedTokenizerFast

    hidden, layers, heads, vocab = SHAPES[args.shape]
    os.makedirs(args.out, exist_ok=True)
    tokenizer = train_tokenizer(corpus(args.clinc), min(vocab, 4096))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
    )
    fast.save_pretrained(args.out)
    config_path = os.path.join(args.out, "tokenizer_config.json")
    with open(config_path, encoding="utf-8") as f:
        tok_config = json.load(f)
    tok_config["tokenizer_class"] = "BloomTokenizerFast"
    with open(config_path, "w", encoding="utf-8") as f:
        json.dump(tok_config, f, indent=2, sort_keys=True)

    torch.manual_seed(args.seed)
    config = BloomConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        n_layer=layers,
        n_head=heads,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
        unk_token_id=fast.unk_token_id,
        seq_length=2048,
    )
    model = BloomForCausalLM(config)
    model.eval()
    model.save_pretrained(args.out, safe_serialization=True)
    params = sum(p.numel() for p in model.parameters())
    print(f"{args.out}: BLOOM {args.shape} (hidden {hidden}, {layers} layers, {heads} heads, "
          f"vocab {vocab}), {params / 1e6:.1f}M parameters, seed {args.seed}")


if __name__ == "__main__":
    sys.exit(main())
