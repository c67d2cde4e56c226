"""Model-aware quality predictions: the carrying rule by hand, bands, and measured quality in the plan."""

from __future__ import annotations

import importlib.util
import math
import statistics
import tomllib
from pathlib import Path

import pytest

from compress.planner import make_plan, quality
from compress.planner.measured import measured_quality
from compress.planner.spec import load_model_spec

ROOT = Path(__file__).resolve().parents[3]


def test_carry_by_hand():
    # Llama-3-8B q4_K_M: ln(6.407115 / 6.231636) = 0.027770; carried to 0.135B params of the same
    # regime: alpha 0 from 8.03B down to the 7B pivot, then 0.289 from 7B to 0.135B; the band
    # takes alpha 0 .. 0.376 below the pivot and 0 .. 0.122 above.
    ln_ratio = math.log(6.407115 / 6.231636)
    got = quality.carry(ln_ratio, 8.03, "modern", 135_000_000, "modern")
    assert got.point == pytest.approx(ln_ratio * (7 / 0.135) ** 0.289, rel=1e-12)
    assert got.low == pytest.approx(ln_ratio, rel=1e-12)
    assert got.high == pytest.approx(ln_ratio * (8.03 / 7) ** 0.122 * (7 / 0.135) ** 0.376, rel=1e-12)
    # Both sides of the pivot: Llama-2-70B to 1B crosses it once.
    assert quality.size_factor(70.0, 1_000_000_000, 0.3, 0.1) == pytest.approx((70 / 7) ** 0.1 * 7**0.3)
    # A legacy reference carried to a modern model of its own size: x 1.96, band x 1.45 .. x 4.37.
    legacy = quality.carry(ln_ratio, 8.03, "legacy", 8_030_000_000, "modern")
    assert (legacy.point, legacy.low, legacy.high) == pytest.approx((1.96 * ln_ratio, 1.45 * ln_ratio, 4.37 * ln_ratio))


def test_the_stated_constants_are_the_ones_their_derivation_gives():
    spec = importlib.util.spec_from_file_location("quality_constants", ROOT / "bench" / "quality_constants.py")
    derive = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(derive)
    data = tomllib.loads((ROOT / "profiles" / "quality.toml").read_text(encoding="utf-8"))
    per_format = derive.size_exponents(data["entry"])
    # Qwen2-0.5B's k-quant files are mostly Q5_0 (896-wide rows) and q8_0/q6_k changes are
    # within the two-decimal rounding: neither may enter.
    assert "q8_0" not in per_format and "q6_k" not in per_format
    assert data["scaling"]["size_exponent"] == pytest.approx(statistics.median(per_format.values()), abs=5e-4)
    assert data["scaling"]["size_exponent_band"] == pytest.approx(
        [max(0.0, min(per_format.values())), max(per_format.values())], abs=5e-4)
    large = derive.large_size_exponents(data["entry"])
    assert data["scaling"]["size_exponent_large"] == pytest.approx(max(0.0, statistics.median(large.values())))
    assert data["scaling"]["size_exponent_large_band"] == pytest.approx([0.0, max(large.values())], abs=5e-4)
    assert data["proxies"]["nf4"]["noise_ratio"] == pytest.approx(derive.nf4_noise_ratio(n=1 << 20), abs=0.01)


def test_where_kld_is_published_the_perplexity_change_is_read_from_it():
    # Llama-3-8B q4_K_M (KLD 0.031273) carried to SmolLM2-135M by (7 / 0.1345)^0.289; then
    # ln(PPL ratio) = that KLD (factor 1); the band also spans the perplexity changes carried directly.
    spec = load_model_spec("smollm2-135m")
    got = quality.estimate(spec, "q4_k_m")
    kld = 0.031273 * (7e9 / spec.params) ** 0.289 * _smollm2_q4_k_m_mix()
    assert got.kld == pytest.approx(kld, rel=1e-3)
    assert got.ppl_delta_pct == pytest.approx(100 * math.expm1(kld), rel=1e-3)
    assert got.band_pct[0] <= got.ppl_delta_pct <= got.band_pct[1]
    assert "read from the KLD of Llama-3-8B" in got.source
    # A figure published for this very model wins: Llama-3-8B's own q8_0 perplexity change.
    own = quality.estimate(load_model_spec("llama-3-8b"), "q8_0")
    assert own.ppl_delta_pct == pytest.approx(100 * (6.234284 / 6.231636 - 1), abs=1e-3)


def _smollm2_q4_k_m_mix() -> float:
    """By hand: SmolLM2-135M (30 layers, 576 wide, 1536 FFN, 192-wide K/V, tied 49152 x 576
    embeddings) in q4_K_M. llama.cpp's mix names Q6_K for the tied embeddings and for attn_v and
    ffn_down on the 14 'more bits' layers, Q4_K elsewhere; rows of 576 fit no 256-wide k-quant
    block, so Q6_K is stored as Q8_0 and Q4_K as Q5_0 there (ffn_down's rows are 1536 wide and
    fit). Noise of each type: the KLD of llama.cpp's Llama 3 8B file of that type."""
    q8_0, q6_k, q5_0, q4_k = 0.001355, 0.005452, 0.022239, 0.043136
    embed, q_o, k_v, ffn = 49152 * 576, 576 * 576, 576 * 192, 576 * 1536
    more, rest = 14, 16
    stored = (embed * q8_0 + 30 * (2 * q_o + k_v + 2 * ffn) * q5_0 + more * k_v * q8_0 + rest * k_v * q5_0
              + more * ffn * q6_k + rest * ffn * q4_k)
    named = (embed * q6_k + 30 * (2 * q_o + k_v + 2 * ffn) * q4_k + more * k_v * q6_k + rest * k_v * q4_k
             + more * ffn * q6_k + rest * ffn * q4_k)
    return stored / named


def test_a_file_type_whose_rows_all_fit_keeps_its_published_mix():
    # Llama-3-8B's rows (4096, 14336) are multiples of 256: no fallback, the figure stands.
    assert "stored in other types" not in quality.estimate(load_model_spec("llama-3-8b"), "q4_k_m").source
    assert "x 0.58 for the tensors stored in other types" in quality.estimate(load_model_spec("smollm2-135m"),
                                                                              "q4_k_m").source


def test_nf4_borrows_q4_0_scaled_by_its_noise_power():
    spec = load_model_spec("llama-3-8b")
    nf4, q4_0 = quality.estimate(spec, "nf4"), quality.estimate(spec, "q4_0")
    assert nf4.kld == pytest.approx(1.145 * q4_0.kld, rel=1e-3)
    assert "proxy: q4_0" in nf4.source


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


def test_a_quantized_kv_cache_adds_its_published_change_carried_to_the_model():
    spec = load_model_spec("smollm2-135m")
    weights = quality.estimate(spec, "q4_k_m")
    assert quality.estimate(spec, "q4_k_m", "fp16") == weights  # a 16-bit cache changes nothing
    q8, q4 = quality.estimate(spec, "q4_k_m", "q8_0"), quality.estimate(spec, "q4_k_m", "q4_0")
    # By hand: Gemma-3-4B's q4_0 cache, 7.8551 -> 7.9506 (llama.cpp PR #21551), carried to
    # 0.135B params in the model's own (modern) regime.
    kv = quality.carry(math.log(7.9506 / 7.8551), 3.88, "modern", spec.params, "modern").point
    assert math.log1p(q4.ppl_delta_pct / 100) - math.log1p(weights.ppl_delta_pct / 100) == pytest.approx(kv, abs=1e-4)
    assert weights.ppl_delta_pct < q8.ppl_delta_pct < q4.ppl_delta_pct
    assert q4.band_pct[0] > weights.band_pct[0] and q4.kld > weights.kld
    assert "KV cache q4_0" in q4.source and "PR #21551" in q4.source


def test_a_kv_cache_type_with_no_published_figure_is_left_out_and_said_so():
    spec = load_model_spec("smollm2-135m")
    got = quality.estimate(spec, "fp16", "fp8")
    assert got.ppl_delta_pct == 0 and "KV cache fp8: no published perplexity" in got.source


def test_measured_quality_counts_only_records_of_the_planned_kv_cache_type():
    kv_q8 = {**_record("q4_k_m", "ln_ppl_ratio", math.log(1.08), settings="s2"), "bench_settings": {"kv_dtype": "q8_0"}}
    records = [_record("fp32", "perplexity", 20.0), _record("q4_k_m", "perplexity", 21.0), kv_q8]
    assert measured_quality(records, {"smollm2-135m-instruct"}, "cpu")["q4_k_m"]["ppl_delta_pct"] == pytest.approx(5.0)
    got = measured_quality(records, {"smollm2-135m-instruct"}, "cpu", "q8_0")
    assert set(got) == {"q4_k_m"} and got["q4_k_m"]["ppl_delta_pct"] == pytest.approx(8.0)


def test_plan_with_a_quantized_kv_cache_predicts_its_quality_change():
    plain = make_plan("smollm2-135m", gpu="cpu").to_dict()["candidates"]
    q4 = make_plan("smollm2-135m", gpu="cpu", kv_dtype="q4_0").to_dict()["candidates"]
    before = {c["variant"]: c["predicted"]["ppl_delta_pct"] for c in plain}
    for c in q4:
        if before[c["variant"]] is not None:
            assert c["predicted"]["ppl_delta_pct"] > before[c["variant"]], c["variant"]
