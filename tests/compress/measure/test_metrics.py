"""Measurement formulas against hand calculations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from compress.measure import metrics
from compress.measure.perplexity import measure_perplexity, window_nll_nats, windows


def test_sample_stats_by_hand():
    s = metrics.sample_stats([4.0, 1.0, 3.0, 2.0])
    assert s["n"] == 4 and s["min"] == 1.0 and s["max"] == 4.0
    assert s["mean"] == 2.5 and s["median"] == 2.5
    assert s["p90"] == pytest.approx(3.7)  # rank 0.9 * 3 = 2.7 -> 3 + 0.7 * (4 - 3)
    assert s["stddev"] == pytest.approx(math.sqrt(5 / 3))  # (2.25 + 0.25 + 0.25 + 2.25) / (4 - 1)
    assert metrics.sample_stats([7.0])["stddev"] == 0.0


def test_percentile_matches_numpy_linear():
    data = [0.3, 9.1, 2.2, 5.5, 4.0, 8.8, 1.7]
    for q in (0, 10, 50, 90, 99, 100):
        assert metrics.percentile(data, q) == pytest.approx(float(np.percentile(data, q)))
    with pytest.raises(ValueError):
        metrics.sample_stats([])


def test_perplexity_by_hand():
    assert metrics.perplexity(4 * math.log(10), 4) == pytest.approx(10.0)
    with pytest.raises(ValueError):
        metrics.perplexity(1.0, 0)


def test_flops_per_token_by_hand():
    # 2 * 1000 + 4 * n_layer 2 * context 3 * d_attn 4 = 2000 + 96
    assert metrics.flops_per_token(1000, layers=2, context_tokens=3, attention_dim=4) == 2096
    # 1000 weights, a 10 x 20 table: untied, the input table is left out; tied, it is the output
    # head too and stays.
    assert metrics.matmul_params(1000, 10, 20, tied_embeddings=False) == 800
    assert metrics.matmul_params(1000, 10, 20, tied_embeddings=True) == 1000


def test_mfu_and_mbu_by_hand():
    assert metrics.mfu(1e12, 1e14) == pytest.approx(0.01)
    # 1 GB per token at 50 tok/s on 100 GB/s = 50%
    assert metrics.mbu(1e9, 50, 100e9) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        metrics.mbu(1e9, 50, 0)


def test_seven_b_fp16_at_100_tok_s_moves_1_4_tb_per_s_not_140_gb_per_s():
    """The often-copied '7B x 2 x 100 = 140 GB/s' is off by ten: 7e9 x 2 B x 100/s = 1.4e12 B/s."""
    weight_bytes = 7e9 * 2
    # 1.4 TB/s is exactly what 100 tok/s needs: 100% of a 1.4 TB/s device, 10x a 140 GB/s one.
    assert metrics.mbu(weight_bytes, 100, 1.4e12) == pytest.approx(1.0, rel=1e-12)
    assert metrics.mbu(weight_bytes, 100, 140e9) == pytest.approx(10.0, rel=1e-12)
    # which is 1.4 / 3.35 = 41.8% of an H100 SXM's 3.35 TB/s (NVIDIA H100 datasheet, HBM3)
    assert metrics.mbu(weight_bytes, 100, 3.35e12) == pytest.approx(0.41791, rel=1e-4)


def test_decode_reads_the_weights_and_the_cache_so_far():
    # SmolLM2-135M in fp16: 134,515,008 params x 2 B = 269,030,016 B of weights; after 512
    # tokens its cache holds 11,796,480 B (test_kv_cache_bytes_by_hand): 280,826,496 B a token.
    kv = metrics.kv_cache_bytes(30, 3, 64, 512, 2)
    assert metrics.decode_bytes_per_token(weight_bytes=269_030_016, kv_bytes_read=kv) == 280_826_496


def test_kv_cache_bytes_by_hand():
    # SmolLM2-135M: 2 (K and V) x 30 layers x 3 KV heads x 64 x 512 tokens x 2 bytes (fp16)
    assert metrics.kv_cache_bytes(30, 3, 64, 512, 2) == 2 * 30 * 3 * 64 * 512 * 2 == 11_796_480


def test_prediction_error_pct():
    assert metrics.prediction_error_pct(110, 100) == pytest.approx(10.0)
    assert metrics.prediction_error_pct(50, 100) == pytest.approx(-50.0)
    assert metrics.prediction_error_pct(1, 0) is None and metrics.prediction_error_pct(1, None) is None


def test_disjoint_windows_score_every_token_but_each_window_start():
    ws = windows(10, context=4, stride=4)
    assert [(w.begin, w.end, w.score_from) for w in ws] == [(0, 4, 1), (4, 8, 1), (8, 10, 1)]
    assert sum(w.end - w.begin - w.score_from for w in ws) == 7  # 10 tokens - 3 window starts


def test_strided_windows_score_every_token_after_the_first_exactly_once():
    ws = windows(10, context=4, stride=2)
    scored = [w.begin + i for w in ws for i in range(w.score_from, w.end - w.begin)]
    assert scored == list(range(1, 10))
    assert all(w.score_from >= 2 for w in ws[1:])  # later windows keep >= 2 tokens of history


def test_uniform_logits_give_perplexity_equal_to_vocabulary():
    vocab = 50

    class Uniform:
        def logits(self, ids):
            return np.zeros((len(ids), vocab), dtype=np.float32)

    nll, count = window_nll_nats(np.zeros((5, vocab)), [1, 2, 3, 4, 5], 1)
    assert count == 4 and nll == pytest.approx(4 * math.log(vocab))
    res = measure_perplexity(Uniform(), list(range(40)), context=16, stride=16)
    assert res["ppl"] == pytest.approx(vocab) and res["scored_tokens"] == 40 - 3


def test_certain_logits_give_perplexity_one():
    ids = [3, 1, 4, 1, 5, 9, 2, 6]
    logits = np.full((len(ids), 10), -1e4)
    logits[np.arange(len(ids) - 1), ids[1:]] = 0.0  # row i puts all mass on the next token
    nll, _ = window_nll_nats(logits, ids, 1)
    assert metrics.perplexity(nll, len(ids) - 1) == pytest.approx(1.0)


def test_window_nll_does_not_depend_on_chunking(monkeypatch):
    from compress.measure import perplexity as ppl_module

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(150, 97)).astype(np.float32)
    ids = rng.integers(0, 97, size=150).tolist()
    whole = window_nll_nats(logits, ids, 3)
    monkeypatch.setattr(ppl_module, "ROWS_PER_CHUNK", 7)
    assert window_nll_nats(logits, ids, 3) == whole  # exactly, not approximately
