"""The pre-tokenizers llama.cpp knows by name, as a tokenizer.json writes them.

A GGUF names how its byte-level BPE vocabulary splits text before merging
(``tokenizer.ggml.pre``); a Hugging Face tokenizer.json spells the same splitting out as a
``pre_tokenizer``. One table serves both ways: the GGUF writer names the splitting of a
tokenizer.json (:mod:`compress.gguf_vocab`), and a GGUF's dequantized copy gets the
tokenizer.json splitting its name stands for (:mod:`compress.loading`).
"""

from __future__ import annotations

from typing import Any

# The split regexes of the Llama-3 and Qwen2 tokenizer.json files; llama.cpp splits the same
# way for the pre-tokenizer names below (src/llama-vocab.cpp, LLAMA_VOCAB_PRE_TYPE_*).
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")
_BYTE_LEVEL = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
_BYTE_LEVEL_NO_REGEX = {**_BYTE_LEVEL, "use_regex": False}


def _split(pattern: str) -> dict[str, Any]:
    return {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": False}


#: llama.cpp's pre-tokenizer names (``tokenizer.ggml.pre``) → the tokenizer.json ``pre_tokenizer``
#: that splits text the same way, as the models' own tokenizer.json files write it. GPT-2's
#: byte-level regex is "gpt-2"; "smollm" first splits every digit apart (SmolLM, StarCoder).
PRE_TOKENIZER_SPECS: dict[str, dict[str, Any]] = {
    "gpt-2": _BYTE_LEVEL,
    "smollm": {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True}, _BYTE_LEVEL]},
    "llama-bpe": {"type": "Sequence", "pretokenizers": [_split(LLAMA3_SPLIT), _BYTE_LEVEL_NO_REGEX]},
    "qwen2": {"type": "Sequence", "pretokenizers": [_split(QWEN2_SPLIT), _BYTE_LEVEL_NO_REGEX]},
}
