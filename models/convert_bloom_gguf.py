#!/usr/bin/env python3
"""Converts a BLOOM checkpoint to GGUF with llama.cpp's own converter, for `cargo xtask
bench-cpu`'s comparison (nothing of llama.cpp is used by the product or the tests).

llama.cpp's converter recognises a BPE tokenizer's pre-tokenizer by hashing what it makes of a
test text, and refuses one it has not seen ("BPE pre-tokenizer was not recognized"): the
project's own trained tokenizer is such one. It is BLOOM's kind of byte-level BPE, so the
converter is told so; everything else is the converter unchanged.

Usage: convert_bloom_gguf.py LLAMA_CPP_DIR MODEL_DIR OUT_FILE OUTTYPE   (f32, bf16, q8_0)
"""

import os
import sys


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    llama, model, out, outtype = sys.argv[1:]
    sys.path.insert(0, os.path.join(llama, "gguf-py"))
    sys.path.insert(0, llama)
    import conversion.base as base

    base.TextModel.get_vocab_base_pre = lambda self, tokenizer: "bloom"
    import convert_hf_to_gguf

    sys.argv = ["convert_hf_to_gguf.py", model, "--outfile", out, "--outtype", outtype]
    convert_hf_to_gguf.main()


if __name__ == "__main__":
    main()
