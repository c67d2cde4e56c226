"""KL divergence and token agreement: hand computations, the top-k bound, a tiny model, the cache."""

from __future__ import annotations

import math

import numpy as np
import pytest

from compress.measure import kld
from compress.measure.perplexity import _ModelLogits, measure_perplexity

# Two positions over a 3-token vocabulary, and the token that follows each.
P = np.log([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3]])
Q = np.log([[0.4, 0.4, 0.2], [0.1, 0.3, 0.6]])
TARGETS = [1, 2]


def test_full_vocabulary_kld_and_agreement_by_hand():
    ref = kld.reference_from_logprobs(P, TARGETS, k=3)
    assert ref.top_ids.tolist() == [[0, 1, 2], [1, 2, 0]]
    summary = kld.summarize([kld.compare(ref, Q, TARGETS)])
    # Row 1: 0.5 ln(0.5/0.4) + 0.3 ln(0.3/0.4) + 0.2 ln 1 = 0.1115718 - 0.0863046 = 0.0252672.
    # Row 2: 0.1 ln 1 + 0.6 ln(0.6/0.3) + 0.3 ln(0.3/0.6) = 0.3 ln 2 = 0.2079442.
    row1, row2 = 0.025267154, 0.207944154
    assert summary["kld_mean"] == pytest.approx((row1 + row2) / 2, abs=1e-8)
    assert summary["kld_max"] == pytest.approx(row2, abs=1e-8)
    assert summary["kld_p99"] == pytest.approx(row1 + 0.99 * (row2 - row1), abs=1e-8)  # linear between 2 order stats
    # Row 1: both models' top token is 0 (Q ties 0 and 1; the lower id wins); row 2: 1 vs 2.
    assert summary["same_top_pct"] == 50.0
    # p of the next token: 0.3 -> 0.4 and 0.3 -> 0.6: RMS sqrt((0.01 + 0.09) / 2) = 0.2236068.
    assert summary["delta_p_rms_pct"] == pytest.approx(22.36068, abs=1e-5)
    # ln(PPL_Q / PPL_P) = mean(ln p - ln q) = (ln(0.3/0.4) + ln(0.3/0.6)) / 2 = -0.4904146.
    assert summary["ln_ppl_ratio"] == pytest.approx(-0.490414625, abs=1e-8)
    assert summary["tail_mass_mean"] == 0.0


def test_top_k_kld_is_a_lower_bound_short_by_the_tail_divergence():
    ref = kld.reference_from_logprobs(P[:1], TARGETS[:1], k=1)
    got = kld.compare(ref, Q[:1], TARGETS[:1]).kld[0]
    # Top 1 {0} and the tail {1, 2}: 0.5 ln(0.5/0.4) + 0.5 ln(0.5/0.6) = 0.0204110.
    assert got == pytest.approx(0.020410996, abs=1e-8)
    # The gap is p_tail x KL(P_tail || Q_tail) = 0.5 x (0.6 ln(0.6/(2/3)) + 0.4 ln(0.4/(1/3))) = 0.0048562.
    assert 0.025267154 - got == pytest.approx(0.5 * (0.6 * math.log(0.9) + 0.4 * math.log(1.2)), abs=1e-8)


def test_identical_distributions_give_zero():
    ref = kld.reference_from_logprobs(P, TARGETS, k=2)
    summary = kld.summarize([kld.compare(ref, P, TARGETS)])
    assert summary["kld_max"] == 0.0 and summary["same_top_pct"] == 100.0
    assert summary["delta_p_rms_pct"] == 0.0 and summary["ln_ppl_ratio"] == 0.0


def test_tiny_model_kld_matches_a_direct_computation(tiny_llama):
    """The bench's KLD of a perturbed tiny Llama against the full-vocabulary formula computed in torch."""
    import torch

    from compress.loading import load_causal_lm

    torch.manual_seed(0)
    ids = torch.randint(0, 512, (96,)).tolist()
    base = load_causal_lm(tiny_llama)
    noisy = load_causal_lm(tiny_llama)
    with torch.no_grad():
        for p in noisy.parameters():
            p.add_(torch.randn_like(p) * 0.02 * p.abs().mean())
    collected = measure_perplexity(_ModelLogits(base, "cpu"), ids, 32, 32, collect_top_k=512)
    ref = collected["reference"]
    assert len(ref) == collected["scored_tokens"] == 3 * 31
    res = measure_perplexity(_ModelLogits(noisy, "cpu"), ids, 32, 32, reference=ref)

    # By hand: KL(P || Q) = sum_v p_v (ln p_v - ln q_v) over the whole vocabulary, per scored position.
    per_token, same, ln_ratio = [], [], []
    with torch.no_grad():
        for start in range(0, 96, 32):
            window = torch.tensor([ids[start : start + 32]])
            lp = torch.log_softmax(base(window).logits[0, :-1].double(), -1)
            lq = torch.log_softmax(noisy(window).logits[0, :-1].double(), -1)
            per_token += (lp.exp() * (lp - lq)).sum(-1).tolist()
            same += (lp.argmax(-1) == lq.argmax(-1)).tolist()
            targets = torch.tensor(ids[start + 1 : start + 32])
            ln_ratio += (lp.gather(1, targets[:, None]) - lq.gather(1, targets[:, None]))[:, 0].tolist()
    assert res["kld"]["kld_mean"] == pytest.approx(sum(per_token) / len(per_token), rel=1e-4)
    assert res["kld"]["kld_max"] == pytest.approx(max(per_token), rel=1e-4)
    assert res["kld"]["kld_mean"] > 1e-4  # the perturbation is visible: this is not comparing zeros
    assert res["kld"]["same_top_pct"] == pytest.approx(100 * sum(same) / len(same))
    assert res["kld"]["ln_ppl_ratio"] == pytest.approx(sum(ln_ratio) / len(ln_ratio), rel=1e-4, abs=1e-7)
    # The ratio agrees with the two perplexities measured on the same windows.
    base_ppl = collected["ppl"]
    assert res["kld"]["ln_ppl_ratio"] == pytest.approx(math.log(res["ppl"] / base_ppl), abs=1e-9)

    # Top 64 of 512: a lower bound, close where the tail holds little of the baseline's mass.
    top64 = measure_perplexity(_ModelLogits(base, "cpu"), ids, 32, 32, collect_top_k=64)["reference"]
    bound = measure_perplexity(_ModelLogits(noisy, "cpu"), ids, 32, 32, reference=top64)["kld"]
    assert bound["kld_mean"] <= res["kld"]["kld_mean"] + 1e-12
    # Reruns repeat to the last digit.
    again = measure_perplexity(_ModelLogits(noisy, "cpu"), ids, 32, 32, reference=ref)
    assert again["kld"] == res["kld"]


def test_reference_cache_round_trip(tmp_path, monkeypatch):
    from compress.measure import reference

    monkeypatch.setenv("COMPRESS_CACHE", str(tmp_path))
    ref = kld.reference_from_logprobs(P, TARGETS, k=2)
    key = reference.reference_key("fp", [1, 2, 3], 512, 512, "compress", None, 2)
    assert key != reference.reference_key("fp", [1, 2, 4], 512, 512, "compress", None, 2)
    assert key != reference.reference_key("fp", [1, 2, 3], 512, 512, "llama.cpp", None, 2)
    assert reference.load_reference(key) is None
    reference.save_reference(key, ref)
    back = reference.load_reference(key)
    again = kld.summarize([kld.compare(back, Q, TARGETS)])
    assert again == kld.summarize([kld.compare(ref, Q, TARGETS)])
