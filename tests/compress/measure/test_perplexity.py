"""Perplexity windows: the llama.cpp convention against the arithmetic of llama-perplexity."""

from __future__ import annotations

import math

import numpy as np
import pytest

from compress.measure.perplexity import (Window, convention_stream, llama_cpp_windows, measure_perplexity,
                                         windows)

VOCAB = 8


class FixedLogits:
    """Every row gives token t the probability (t + 1) / 36: a scored token's NLL names which token it was."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []

    def logits(self, ids: list[int]) -> np.ndarray:
        self.calls.append(list(ids))
        return np.tile(np.log(np.arange(1, VOCAB + 1, dtype=np.float32)), (len(ids), 1))


def nll(token: int) -> float:
    return -math.log((token + 1) / 36)


def test_llama_cpp_windows_follow_llama_perplexity():
    # llama-perplexity: n_chunk = n_tokens / n_ctx (floor), first = n_ctx / 2, and the logits of
    # positions first .. n_ctx - 2 score the tokens at first + 1 .. n_ctx - 1.
    assert llama_cpp_windows(14, 6) == [Window(0, 6, 4), Window(6, 12, 4)]
    assert llama_cpp_windows(2048, 512) == [Window(i * 512, (i + 1) * 512, 257) for i in range(4)]
    # 255 tokens a 512-token chunk: 512 - 1 - 256.
    assert sum(w.end - w.begin - w.score_from for w in llama_cpp_windows(2048, 512)) == 4 * 255
    with pytest.raises(ValueError):
        llama_cpp_windows(5, 6)


def test_llama_cpp_convention_scores_the_second_half_with_bos_on_a_tiny_stream():
    ids = [3, 1, 4, 1, 5, 2, 6, 5, 3, 5, 7, 2, 7]
    stream = convention_stream(ids, "llama.cpp", bos_id=0)
    assert stream == [0, *ids]  # the text is tokenized with BOS
    runtime = FixedLogits()
    res = measure_perplexity(runtime, stream, 6, 6, convention="llama.cpp", bos_id=0)
    # Chunks [0, 6) and [6, 12) of the 14-token stream; each chunk's first token becomes BOS;
    # the last 2 tokens (12, 13) make no full chunk and are dropped.
    assert runtime.calls == [[0, 3, 1, 4, 1, 5], [0, 6, 5, 3, 5, 7]]
    # Positions 4 and 5 of each chunk are scored: tokens 1, 5 and 5, 7.
    assert res["scored_tokens"] == 4
    assert res["nll_sum_nats"] == pytest.approx(nll(1) + nll(5) + nll(5) + nll(7), abs=1e-6)  # float32 logits: 1e-7 rounding each
    assert res["ppl"] == pytest.approx(math.exp((nll(1) + 2 * nll(5) + nll(7)) / 4), rel=1e-6)


def test_llama_cpp_convention_without_bos_keeps_the_tokens():
    ids = [3, 1, 4, 1, 5, 2, 6, 5, 3, 5, 7, 2, 7]
    runtime = FixedLogits()
    res = measure_perplexity(runtime, convention_stream(ids, "llama.cpp", None), 6, 6, convention="llama.cpp")
    assert runtime.calls == [[3, 1, 4, 1, 5, 2], [6, 5, 3, 5, 7, 2]]
    assert res["nll_sum_nats"] == pytest.approx(nll(5) + nll(2) + nll(7) + nll(2), abs=1e-6)  # float32 logits: 1e-7 rounding each


def test_default_convention_is_unchanged():
    ids = [3, 1, 4, 1, 5, 2, 6, 5, 3, 5, 7, 2, 7]
    assert convention_stream(ids, "compress", bos_id=0) == ids
    runtime = FixedLogits()
    res = measure_perplexity(runtime, ids, 6, 6)
    # Disjoint windows [0, 6), [6, 12); the lone last token has no history in its window and is not scored.
    assert windows(13, 6, 6) == [Window(0, 6, 1), Window(6, 12, 1)]
    assert runtime.calls == [ids[0:6], ids[6:12]]
    assert res["scored_tokens"] == 10
    with pytest.raises(ValueError):
        convention_stream(ids, "llama-cpp", None)


def test_one_nan_weight_is_a_clear_failure_not_a_nan_figure():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from compress.errors import RuntimeFailure
    from compress.measure.perplexity import model_perplexity

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=1)).eval()
    ids = list(range(1, 33))
    assert math.isfinite(model_perplexity(model, ids, context=16))
    with torch.no_grad():
        model.model.layers[0].mlp.down_proj.weight[3, 5] = float("nan")
    with pytest.raises(RuntimeFailure, match=r"log-likelihood is nan in perplexity window 1 .*NaN or infinite"):
        model_perplexity(model, ids, context=16)
