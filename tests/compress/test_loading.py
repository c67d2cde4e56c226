"""GGUF → Hugging Face: the dequantized copy's tokenizer splits text as llama.cpp does for that GGUF."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from compress import llamacpp
from compress.gguf_writer import write_gguf
from compress.loading import hf_checkpoint, load_tokenizer
from compress.pretokenizers import PRE_TOKENIZER_SPECS
from compress.sources import Source

# Runs of spaces before digits: GPT-2's split ends a run one space early (" " then " 2004"),
# SmolLM's splits the digits off first and keeps the run whole ("  " then "2", "0", ...).
TEXT = "Paradigm Press,  2004\n*  55 Fresh asphalt \n\n 0.5 and   1234567 spaces"


@pytest.fixture(scope="module")
def smollm_gguf(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Llama with SmolLM's pre-tokenizer, written as an F32 GGUF (``tokenizer.ggml.pre`` = smollm)."""
    folder = tmp_path_factory.mktemp("smollm-split")
    shutil.copytree(tiny_llama, folder, dirs_exist_ok=True)
    spec = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    spec["pre_tokenizer"] = PRE_TOKENIZER_SPECS["smollm"]
    (folder / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    # A folder of its own: transformers would read a tokenizer.json beside the GGUF instead of the GGUF's vocabulary.
    path = tmp_path_factory.mktemp("smollm-gguf") / "tiny.F32.gguf"
    assert write_gguf(folder, path, dtype="F32")["pre_tokenizer"] == "smollm"
    return path


def test_dequantized_tokenizer_splits_like_llama_cpp(smollm_gguf: Path, tiny_llama: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMPRESS_CACHE", str(tmp_path))  # not the user's dequantized folder
    folder = hf_checkpoint(Source("gguf", smollm_gguf, "tiny"))
    ours = load_tokenizer(folder)(TEXT, add_special_tokens=False)["input_ids"]
    assert ours == llamacpp.gguf_tokenize(smollm_gguf, TEXT)
    # GPT-2's split, which transformers gives every GGUF BPE vocabulary, tokenizes this text otherwise.
    assert load_tokenizer(tiny_llama)(TEXT, add_special_tokens=False)["input_ids"] != ours
