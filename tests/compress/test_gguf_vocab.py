"""A Hugging Face tokenizer read as the GGUF vocabulary llama.cpp tokenizes with."""

from __future__ import annotations

import shutil

import pytest

from compress.errors import UnsupportedError, UserInputError
from compress.gguf_vocab import CONTROL, NORMAL, PRE_TOKENIZERS, UNUSED, pre_tokenizer_signature, read_vocab


def test_pre_tokenizer_signatures_by_hand():
    assert pre_tokenizer_signature(None) == ()
    assert pre_tokenizer_signature({"type": "ByteLevel", "add_prefix_space": True}) == ("bytelevel+regex+prefix",)
    sequence = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": r"\d"}}, {"type": "Digits", "individual_digits": True},
        {"type": "ByteLevel", "use_regex": False}]}
    assert pre_tokenizer_signature(sequence) == (r"split:\d", "digits", "bytelevel")
    assert PRE_TOKENIZERS[("bytelevel+regex",)] == "gpt-2"


def test_the_tiny_models_bpe_tokenizer_is_padded_to_the_embedding_rows(tiny_llama):
    import json

    config = json.loads((tiny_llama / "config.json").read_text())
    vocab = read_vocab(tiny_llama, config, config["vocab_size"] + 8)
    assert (vocab.model, vocab.pre) == ("gpt2", "gpt-2")
    assert len(vocab.tokens) == len(vocab.types) == config["vocab_size"] + 8
    assert vocab.tokens[0] == "<|endoftext|>" and vocab.types[0] == CONTROL and vocab.types[1] == NORMAL
    assert vocab.tokens[-1] == f"[PAD{config['vocab_size'] + 7}]" and vocab.types[-1] == UNUSED
    assert vocab.merges and all(" " in m for m in vocab.merges)
    assert vocab.special_ids["eos"] == 0
    with pytest.raises(UnsupportedError, match="embedding rows"):
        read_vocab(tiny_llama, config, 100)


def test_a_folder_without_a_tokenizer_is_refused(tmp_path, tiny_llama):
    shutil.copy(tiny_llama / "config.json", tmp_path / "config.json")
    with pytest.raises(UserInputError, match="no tokenizer.json or tokenizer.model"):
        read_vocab(tmp_path, {}, 512)
