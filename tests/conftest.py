"""Shared fixtures: a tiny Llama built in the test session, its tokenizer, and text.

The tiny model keeps hidden and intermediate sizes at multiples of 256 so that
every storage format applies (GGUF K-quants use 256-wide blocks, group-size-128
formats need 128). Its tokenizer is a byte-level BPE trained here on the default
corpus, so nothing is downloaded.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

TINY_VOCAB = 512


def pytest_configure(config: pytest.Config) -> None:
    """Let Ctrl-C reach the tests that send it. A shell that starts a job in the background
    (``cmd &`` without job control) makes it ignore SIGINT, and every process it starts inherits
    that: Python then installs no KeyboardInterrupt handler, and the Ctrl-C tests' children
    would run to the end. A handler, unlike an ignored signal, is reset to the default on exec."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip GPU tests where torch sees no CUDA device."""
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if not has_cuda:
        skip = pytest.mark.skip(reason="needs a CUDA GPU")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep the suite's caches apart from the user's, but share the dequantized default model.

    The suite's cache is a fresh folder; only its ``dequantized`` folder links to the user's
    (``$COMPRESS_CACHE`` or ``~/.cache/compress``), so the default model is dequantized once
    per machine rather than once per run, and nothing else the tests write lands there.
    """
    user = Path(os.environ.get("COMPRESS_CACHE") or Path.home() / ".cache" / "compress")
    (user / "dequantized").mkdir(parents=True, exist_ok=True)
    root = tmp_path_factory.mktemp("compress-cache")
    (root / "dequantized").symlink_to(user / "dequantized", target_is_directory=True)
    os.environ["COMPRESS_CACHE"] = str(root)
    # A bench would probe this machine first, and every later plan in the session would predict
    # from that figure (taken while tests load the cores): tests predict from the documented
    # defaults, and the probe's own tests ask for it (tests/compress/measure/test_probe.py).
    os.environ["COMPRESS_AUTO_PROBE"] = "0"
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("GPTQMODEL_CPU_WORKERS", "2")


@pytest.fixture(scope="session")
def corpus_text() -> str:
    from compress.corpus import default_text

    return default_text("eval")


@pytest.fixture(scope="session")
def text_file(tmp_path_factory: pytest.TempPathFactory, corpus_text: str) -> Path:
    path = tmp_path_factory.mktemp("text") / "sample.txt"
    path.write_text(corpus_text[:200_000], encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory, corpus_text: str) -> Path:
    """A Hugging Face folder with a 4-layer Llama (GQA 4:2 heads) and a 512-token BPE tokenizer."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-llama")
    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=TINY_VOCAB, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    bpe.train_from_iterator([corpus_text[:300_000]], trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<|endoftext|>",
                                        eos_token="<|endoftext|>", unk_token="<|endoftext|>")
    tokenizer.save_pretrained(folder)

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=TINY_VOCAB, hidden_size=256, intermediate_size=512, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                         rms_norm_eps=1e-5, tie_word_embeddings=False, bos_token_id=0, eos_token_id=0)
    model = LlamaForCausalLM(config).eval()
    model.save_pretrained(folder)
    return folder
