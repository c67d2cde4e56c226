"""A GGUF SentencePiece vocabulary rewritten to split text as llama.cpp does (compress/spm_tokenizer.py)."""

import json
from pathlib import Path

from compress.spm_tokenizer import USER_DEFINED, as_llama_cpp_splits, merges_by_score

# Pieces and scores of a tiny SentencePiece vocabulary; "▁▁" is user-defined (a run of two spaces).
VOCAB = [("<unk>", 0.0), ("<bos>", 0.0), ("▁", -1.0), ("a", -2.0), ("b", -3.0), ("c", -4.0),
         ("ab", -5.0), ("bc", -6.0), ("abc", -7.0), ("▁▁", -1000.0), ("▁a", -9.0)]
TYPES = [2, 3, 1, 1, 1, 1, 1, 1, 1, USER_DEFINED, 1]


def unigram_json(path: Path) -> Path:
    """A Unigram tokenizer.json as transformers writes one from a GGUF vocabulary."""
    data = {"version": "1.0", "truncation": None, "padding": None,
            "added_tokens": [{"id": 1, "content": "<bos>", "single_word": False, "lstrip": False, "rstrip": False,
                              "normalized": False, "special": True}],
            "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "▁"},
            "pre_tokenizer": {"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithPrevious",
                              "invert": False},
            "post_processor": None, "decoder": None,
            "model": {"type": "Unigram", "unk_id": 0, "vocab": [list(v) for v in VOCAB], "byte_fallback": False}}
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_merges_join_the_best_scoring_piece_first():
    # ab (-5) before bc (-6) before abc (-7) before ▁a (-9); abc's two splits by the left piece's id.
    assert merges_by_score(VOCAB) == [["a", "b"], ["b", "c"], ["a", "bc"], ["ab", "c"], ["▁", "a"], ["▁", "▁"]]


def test_rewritten_tokenizer_splits_like_sentencepiece_and_adds_bos(tmp_path):
    from tokenizers import Tokenizer

    path = unigram_json(tmp_path / "tokenizer.json")
    assert as_llama_cpp_splits(path, TYPES, ("<bos>", 1))
    tok = Tokenizer.from_file(str(path))
    # "abc": ab first (best score), then abc. "bca": bc, then "bca" is no piece: bc + a.
    # "a  b": the user-defined run of spaces is cut out before any merge.
    assert tok.encode("abc").ids == [1, 8]
    assert tok.encode("bca").ids == [1, 7, 3]
    assert tok.encode("a  b").ids == [1, 3, 9, 4]
    assert tok.encode("abc", add_special_tokens=False).ids == [8]


def test_other_tokenizer_models_are_left_alone(tmp_path):
    path = unigram_json(tmp_path / "tokenizer.json")
    data = json.loads(path.read_text())
    data["model"]["type"] = "BPE"
    path.write_text(json.dumps(data))
    before = path.read_text()
    assert not as_llama_cpp_splits(path, TYPES, None)
    assert path.read_text() == before
