"""The sizing review: plan, measured evidence, risks, recommendation; Markdown and HTML."""

from __future__ import annotations

from typer.testing import CliRunner

from compress import results
from compress.review import render_html, review, review_data, risks

GIB = 2**30


def _measured(variant, tok_s, predicted_tok_s, model="smollm2-135m", profile="cpu"):
    common = {"model": model, "model_fingerprint": "f", "variant": variant, "device": "cpu", "profile": profile}
    return [results.record(**common, test="tg32", metric="decode_tok_s", value=tok_s, predicted=predicted_tok_s,
                           prediction_error_pct=(tok_s - predicted_tok_s) / predicted_tok_s * 100),
            results.record(**common, test="ppl", metric="perplexity", value=23.5),
            results.record(**common, test="memory", metric="peak_memory_bytes", value=0.5 * GIB)]


def test_review_without_measurements_says_predictions_are_unvalidated():
    data = review_data("smollm2-135m", "cpu", [])
    best = data["plan"]["recommended"]
    assert best and any(best in r and "not yet validated" in r for r in data["risks"])
    text = review("smollm2-135m", "cpu", [])
    assert text.startswith("# Sizing review: smollm2-135m") and "## Recommendation" in text
    assert "every figure above is a prediction" in text


def test_review_uses_measured_evidence_of_the_same_device_profile():
    best = review_data("smollm2-135m", "cpu", [])["plan"]["recommended"]
    close = _measured(best, tok_s=100.0, predicted_tok_s=95.0)
    data = review_data("smollm2-135m", "cpu", close)
    assert best in data["measured"] and data["measured"][best]["decode_tok_s"] == 100.0
    assert not any("not yet validated" in r for r in data["risks"])
    # records from another device profile are not evidence for this one
    assert review_data("smollm2-135m", "cpu", _measured(best, 100.0, 95.0, profile="a10"))["measured"] == {}
    far = _measured(best, tok_s=20.0, predicted_tok_s=95.0)
    assert any("decode speed is -79% off the prediction" in r for r in review_data("smollm2-135m", "cpu", far)["risks"])


def test_random_weight_records_count_for_speed_and_memory_not_quality():
    best = review_data("smollm2-135m", "cpu", [])["plan"]["recommended"]
    measured = review_data("smollm2-135m", "cpu", _measured(best, 100.0, 95.0, model="smollm2-135m-random"))["measured"]
    assert measured[best]["decode_tok_s"] == 100.0 and measured[best]["peak_memory_gib"] == 0.5
    assert measured[best].get("perplexity") is None  # random weights say nothing of quality


def test_a_variant_measured_on_two_versions_of_the_model_shows_the_newest_figures():
    # An earlier file of the model (another fingerprint) measured speed and perplexity; the
    # current one perplexity only: the newer perplexity, and the speed only the older run has.
    old = [dict(r, model_fingerprint="old", timestamp="2026-01-01T00:00:00")
           for r in _measured("q8_0", 100.0, 95.0)]
    new = [dict(results.record(model="smollm2-135m", model_fingerprint="new", variant="q8_0", device="cpu",
                               profile="cpu", test="ppl", metric="perplexity", value=22.5),
                timestamp="2026-02-01T00:00:00")]
    for records in (old + new, new + old):  # whatever the order in the file
        got = review_data("smollm2-135m", "cpu", records)["measured"]["q8_0"]
        assert got["perplexity"] == 22.5 and got["decode_tok_s"] == 100.0


def test_context_near_the_maximum_is_a_risk():
    data = review_data("smollm2-135m", "cpu", [], context=8000)  # SmolLM2 trains to 8,192 tokens
    assert any("within 10% of the model's maximum 8192" in r for r in data["risks"])


def test_small_memory_margin_and_missing_kernels_are_risks():
    plan = {"gpu": {"usable_memory_gib": 24.0}, "recommended": "fp16", "options": {"context": 1024},
            "model": {"max_context": 4096},
            "candidates": [{"variant": "fp16", "margin_gib": 1.5, "supported": True, "reasons": []},
                           {"variant": "awq-4", "margin_gib": 9.0, "supported": False,
                            "reasons": ["AWQ kernel needs sm75+, T4 is sm70"]}]}
    found = risks(plan, {})
    assert any("margin 1.50 GiB is under 10%" in r for r in found)
    assert any("awq-4: AWQ kernel needs sm75+" in r for r in found)


def test_review_html_escapes_record_text():
    evil = "<script>alert(1)</script>"
    data = review_data("smollm2-135m", "cpu", [])
    data["risks"].append(evil)
    html = render_html(data)
    assert evil not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_review_command_writes_markdown_and_html(tmp_path):
    from cli import app

    out = tmp_path / "review.html"
    (tmp_path / "none.jsonl").write_text("")  # a results file with no records yet: every figure is predicted
    result = CliRunner().invoke(app, ["review", "--model", "smollm2-135m", "--gpu", "cpu",
                                      "--results", str(tmp_path / "none.jsonl"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "# Sizing review" in result.output and out.read_text().startswith("<!DOCTYPE html>")


def test_kernel_risks_come_from_reason_codes_not_words():
    from compress.planner import make_plan

    plan = make_plan("llama-2-7b", "t4").to_dict()
    for c in plan["candidates"]:
        assert len(c["reason_codes"]) == len(c["reasons"])
    wanda = next(c for c in plan["candidates"] if c["variant"] == "wanda-50")
    # "...saves nothing in dense kernels" is a note about sparsity, not a missing kernel
    note = wanda["reason_codes"].index("sparsity_no_gain")
    assert "kernels" in wanda["reasons"][note] and set(wanda["reason_codes"]) == {"too_big", "sparsity_no_gain"}
    found = risks(plan, {})
    assert not any(r.startswith("wanda-50:") for r in found)
    # bf16 on a T4 (sm75) is emulated, and GPTQ falls back from Marlin (sm80+): risks, by their codes
    bf16 = next(c for c in plan["candidates"] if c["variant"] == "bf16")
    assert "dtype_emulated" in bf16["reason_codes"]
    assert any(r.startswith("bf16:") for r in found)
    gptq = next(c for c in plan["candidates"] if c["variant"] == "gptq-4-g128")
    assert gptq["reason_codes"] == ["kernel_fallback"] and any(r.startswith("gptq-4-g128:") for r in found)
