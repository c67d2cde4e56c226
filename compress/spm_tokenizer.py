"""A GGUF SentencePiece vocabulary as a tokenizer that splits text as llama.cpp does.

A GGUF with ``tokenizer.ggml.model = "llama"`` stores SentencePiece pieces with a score
each. llama.cpp tokenizes such a vocabulary (src/llama-vocab.cpp, ``llm_tokenizer_spm``)
by repeatedly joining the adjacent pair whose joined piece is in the vocabulary with the
highest score, after cutting out its user-defined pieces (token type 4: Gemma's runs of
spaces and newlines) verbatim. transformers builds a Unigram model from the same pieces for
some families (Gemma 3), which splits "capital" into seven letters.

:func:`as_llama_cpp_splits` rewrites a ``tokenizer.json`` into the equivalent byte-pair
model: a merge ``(a, b)`` for every piece ``a + b`` whose halves are pieces, ranked by the
joined piece's score (joining the best-scoring pair first is what both algorithms do), the
user-defined pieces as added tokens matched before the model runs, and the BOS token
prepended where the GGUF says its vocabulary adds one (``tokenizer.ggml.add_bos_token``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: llama.cpp's token type of a user-defined piece (include/llama.h, LLAMA_TOKEN_TYPE_USER_DEFINED).
USER_DEFINED = 4


def merges_by_score(vocab: list[tuple[str, float]]) -> list[list[str]]:
    """Every ``[a, b]`` with ``a``, ``b`` and ``a + b`` pieces, best-scoring ``a + b`` first."""
    ids = {piece: i for i, (piece, _) in enumerate(vocab)}
    merges = [(-score, ids[piece[:k]], ids[piece[k:]], piece[:k], piece[k:])
              for piece, score in vocab for k in range(1, len(piece))
              if piece[:k] in ids and piece[k:] in ids]
    merges.sort()
    return [[a, b] for *_, a, b in merges]


def as_llama_cpp_splits(tokenizer_json: Path, token_types: list[int], bos: tuple[str, int] | None) -> bool:
    """Rewrite a Unigram ``tokenizer.json`` built from a GGUF SentencePiece vocabulary (see the
    module docstring); returns whether it was rewritten (other models are left alone)."""
    data = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    model = data.get("model") or {}
    if model.get("type") != "Unigram" or len(model.get("vocab") or []) != len(token_types):
        return False
    vocab = [(piece, float(score)) for piece, score in model["vocab"]]
    unk = vocab[model["unk_id"]][0] if model.get("unk_id") is not None else None
    data["model"] = {"type": "BPE", "dropout": None, "unk_token": unk, "continuing_subword_prefix": None,
                     "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": bool(model.get("byte_fallback")),
                     "ignore_merges": False, "vocab": {piece: i for i, (piece, _) in enumerate(vocab)},
                     "merges": merges_by_score(vocab)}
    data["pre_tokenizer"] = None  # SentencePiece sees the whole text as one sequence
    data["added_tokens"] = _with_user_defined(data.get("added_tokens") or [], vocab, token_types)
    if bos is not None:
        data["post_processor"] = _bos_first(*bos)
    tokenizer_json.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return True


def _with_user_defined(added: list[dict[str, Any]], vocab: list[tuple[str, float]],
                       token_types: list[int]) -> list[dict[str, Any]]:
    """``added`` and every user-defined piece, matched in the normalized text (spaces as ``▁``)."""
    have = {entry["id"] for entry in added}
    extra = [{"id": i, "content": vocab[i][0], "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": True, "special": False}
             for i, kind in enumerate(token_types) if kind == USER_DEFINED and i not in have]
    return added + extra


def _bos_first(token: str, token_id: int) -> dict[str, Any]:
    """A post-processor that starts every sequence with BOS, as llama.cpp does for such a vocabulary."""
    bos, a, b = {"SpecialToken": {"id": token, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, \
        {"Sequence": {"id": "B", "type_id": 1}}
    return {"type": "TemplateProcessing", "single": [bos, a], "pair": [bos, a, b],
            "special_tokens": {token: {"id": token, "ids": [token_id], "tokens": [token]}}}
