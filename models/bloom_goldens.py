#!/usr/bin/env python3
"""Writes transformers' own answers for a BLOOM checkpoint, which the CPU engine's tests
compare against: the logits at every position of fixed ids, and a greedy generation of 20
tokens from a chat prompt (`goldens.json`, beside the model unless OUT is given).

Usage: bloom_goldens.py MODEL_DIR [OUT]
"""

import json
import os
import sys


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    model_dir = sys.argv[1]
    out = sys.argv[2] if len(sys.argv) == 3 else os.path.join(model_dir, "goldens.json")

    import torch
    from tokenizers import Tokenizer
    from transformers import BloomForCausalLM, GenerationConfig

    torch.manual_seed(0)
    model = BloomForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
    vocab = model.config.vocab_size
    ids = [(11 * i + 5) % vocab for i in range(10)]
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0]
    tokenizer = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    prompt = tokenizer.encode("User: hello, what can you do?\nAssistant:").ids
    # eos_token_id None: 20 tokens whatever they are (random weights may pick </s>).
    config = GenerationConfig(do_sample=False, max_new_tokens=20, eos_token_id=None, pad_token_id=0)
    with torch.no_grad():
        generated = model.generate(torch.tensor([prompt]), generation_config=config)[0][len(prompt):]
    with open(out, "w") as f:
        json.dump(
            {
                "logits_ids": ids,
                "logits": [[round(float(x), 7) for x in row] for row in logits],
                "greedy_prompt_ids": prompt,
                "greedy_ids": [int(x) for x in generated],
            },
            f,
        )
    print(f"goldens: wrote {out}")


if __name__ == "__main__":
    main()
