"""Model-aware quality predictions: the carrying rule by hand, bands, and measured quality in the plan."""

from __future__ import annotations

import math

import pytest

from compress.planner import make_plan, quality
from compress.planner.measured import measured_quality
from compress.planner.spec import load_model_spec


def test_carry_by_hand():
    # Llama-3-8B q4_K_M: ln(6.407115 / 6.231636) = 0.027770; carried to 0.135B params of the same
    # regime with alpha 0.2: x (8.03 / 0.135)^0.2 = x 2.2635.
    ln_ratio = math.log(6.407115 / 6.231636)
    got = quality.carry(ln_ratio, 8.03, "modern", 135_000_000, "modern")
    assert got.point == pytest.approx(ln_ratio * (8.03 / 0.135) ** 0.2, rel=1e-12)
    assert got.low == pytest.approx(ln_ratio * (8.03 / 0.135) ** 0.05, rel=1e-12)
    assert got.high == pytest.approx(ln_ratio * (8.03 / 0.135) ** 0.40, rel=1e-12)
    # A legacy reference carried to a modern model: x 1.96, band x 1.45 .. x 4.37.
    legacy = quality.carry(ln_ratio, 8.03, "legacy", 8_030_000_000, "modern")
    assert (legacy.point, legacy.low, legacy.high) == pytest.approx((1.96 * ln_ratio, 1.45 * ln_ratio, 4.37 * ln_ratio))


def test_smaller_and_more_trained_models_are_predicted_to_lose_more():
    small, big, old = (quality.estimate(load_model_spec(m), "q4_k_m") for m in ("smollm2-135m", "llama-3-8b",
                                                                                   "llama-2-7b"))
    assert small.ppl_delta_pct > big.ppl_delta_pct > old.ppl_delta_pct > 0
    for e in (small, big, old):
        assert e.band_pct[0] <= e.ppl_delta_pct <= e.band_pct[1]
        assert e.kld is not None and e.kld_band[0] <= e.kld <= e.kld_band[1]
    assert "Llama-3-8B" in small.source and "Qwen2-0.5B" in small.source


def test_a_model_of_unknown_family_gets_a_wider_band():
    known = load_model_spec("llama-3-8b")
    unknown = load_model_spec("mistral-7b")
    assert quality.model_regime(unknown) is None
    k, u = quality.estimate(known, "q4_k_m"), quality.estimate(unknown, "q4_k_m")
    assert u.band_pct[1] / max(u.band_pct[0], 1e-9) > k.band_pct[1] / k.band_pct[0]


def test_plan_json_states_the_band_for_every_predicted_candidate():
    plan = make_plan("qwen2.5-7b", gpu="a100-80gb-sxm").to_dict()
    for c in plan["candidates"]:
        p = c["predicted"]
        if p["ppl_delta_pct"] is not None:
            low, high = p["ppl_delta_band_pct"]
            assert low <= p["ppl_delta_pct"] <= high, c["variant"]


def _record(variant, metric, value, settings="s1", profile="cpu", stamp="2026-01-01T00:00:00"):
    return {"schema": "compress.result/1", "status": "ok", "model": "smollm2-135m-instruct", "model_fingerprint": "f",
            "variant": variant, "metric": metric, "value": value, "profile": profile, "timestamp": stamp,
            "params": {"settings_key": settings}}


def test_measured_quality_is_against_the_baseline_of_the_same_settings():
    records = [_record("fp32", "perplexity", 20.0), _record("q4_k_m", "perplexity", 22.0),
               _record("q4_k_m", "kld_mean", 0.05),
               _record("fp32", "perplexity", 40.0, settings="other"),  # another text: never mixed in
               _record("q8_0", "perplexity", 20.2, profile="h100-sxm")]  # another device
    got = measured_quality(records, {"smollm2-135m-instruct"}, "cpu")
    assert got["q4_k_m"]["ppl_delta_pct"] == pytest.approx(10.0)
    assert got["q4_k_m"]["kld_mean"] == 0.05
    assert "q8_0" not in got


def test_measured_quality_enters_the_ranking():
    plan = make_plan("smollm2-135m", gpu="cpu", objective="quality").to_dict()
    first = plan["candidates"][0]["variant"]
    # A measurement that says the predicted best loses 50% moves it down the quality ranking.
    records = [_record("fp32", "perplexity", 20.0), _record(first, "perplexity", 30.0)]
    again = make_plan("smollm2-135m", gpu="cpu", objective="quality", records=records).to_dict()
    ranked = [c["variant"] for c in again["candidates"]]
    assert ranked[0] != first
    moved = next(c for c in again["candidates"] if c["variant"] == first)
    assert moved["measured"]["ppl_delta_pct"] == pytest.approx(50.0)
    assert moved["predicted"]["ppl_delta_pct"] == next(
        c for c in plan["candidates"] if c["variant"] == first)["predicted"]["ppl_delta_pct"]
