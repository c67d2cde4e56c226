"""Pareto rows from records: latest figure wins, dominance, failures, prediction errors."""

from __future__ import annotations

from compress import results
from compress.measure.pareto_table import FAILED_CELL_CHARS, failure_text, pareto_rows, pareto_table

GIB = 2**30
#: The test each metric comes from in a real bench run.
TEST_OF = {"perplexity": "ppl", "decode_tok_s": "tg32", "peak_memory_bytes": "memory", "ttft_ms": "pp128",
           "artifact_bytes": "size", "ln_ppl_ratio": "ppl", "kld_mean": "ppl", "same_top_pct": "ppl"}


def _rec(variant, metric, value, ts="2026-01-01T00:00:00", predicted=None, status="ok", device="cpu", **kw):
    error = None if predicted is None else (value - predicted) / predicted * 100
    return results.record(model="m", model_fingerprint="f", variant=variant, device=device, runtime="rt",
                          test=kw.pop("test", TEST_OF[metric]), metric=metric, value=value, predicted=predicted,
                          prediction_error_pct=error, status=status, timestamp=ts, **kw)


def _variant(name, ppl, tok_s, mem_gib, **kw):
    return [_rec(name, "perplexity", ppl), _rec(name, "decode_tok_s", tok_s, **kw),
            _rec(name, "peak_memory_bytes", mem_gib * GIB)]


def test_dominated_variant_is_off_the_front():
    records = (_variant("fp32", 10.0, 20.0, 2.0) + _variant("q8_0", 10.1, 40.0, 1.0)
               + _variant("bad", 10.5, 30.0, 1.5)  # q8_0 beats it on all three
               + _variant("q4", 11.0, 60.0, 0.6))
    rows = {r["variant"]: r for r in pareto_rows(records)}
    assert {v: r["pareto"] for v, r in rows.items()} == {"fp32": True, "q8_0": True, "bad": False, "q4": True}
    assert [r["variant"] for r in pareto_rows(records)] == ["fp32", "q8_0", "bad", "q4"]  # by perplexity


def test_latest_record_replaces_an_older_one():
    records = _variant("fp32", 10.0, 20.0, 2.0) + [_rec("fp32", "decode_tok_s", 25.0, ts="2026-02-01T00:00:00")]
    assert pareto_rows(records)[0]["decode_tok_s"] == 25.0


def test_failed_variant_shows_its_reason_and_is_never_on_the_front():
    records = _variant("fp32", 10.0, 20.0, 2.0) + [
        results.record(model="m", model_fingerprint="f", variant="nf4", device="cpu", test="apply", metric=None,
                       value=None, status="failed", error="RuntimeError: no kernel")]
    table = pareto_table(records)
    row = [r for r in table.rows if r[0] == "nf4"][0]
    assert row[-1] == "failed: apply: RuntimeError: no kernel" and row[table.columns.index("pareto")] == ""


def test_prediction_error_is_shown():
    records = _variant("fp32", 10.0, 30.0, 2.0, predicted=20.0)
    row = pareto_rows(records)[0]
    assert row["predicted_decode_tok_s"] == 20.0 and row["decode_error_pct"] == 50.0
    table = pareto_table(records)
    assert table.rows[0][table.columns.index("tok/s err%")] == "+50"


def test_devices_are_separate_fronts_and_model_filter_applies():
    records = _variant("fp32", 10.0, 20.0, 2.0) + [
        _rec("fp32", "perplexity", 10.0, device="cuda"), _rec("fp32", "decode_tok_s", 5.0, device="cuda"),
        _rec("fp32", "peak_memory_bytes", 9 * GIB, device="cuda")]
    rows = pareto_rows(records)
    assert len(rows) == 2 and all(r["pareto"] for r in rows)
    assert pareto_rows(records, model="other") == [] and len(pareto_rows(records, model="f")) == 2


def test_quality_against_the_baseline_beside_its_prediction():
    import math

    records = _variant("fp32", 10.0, 20.0, 2.0) + _variant("q4_k_m", 10.8, 40.0, 1.0) + [
        _rec("q4_k_m", "ln_ppl_ratio", math.log(1.08), predicted=math.log(1.04), test="ppl"),
        _rec("q4_k_m", "kld_mean", 0.05, predicted=0.04, test="ppl"),
        _rec("q4_k_m", "same_top_pct", 91.5, test="ppl")]
    row = {r["variant"]: r for r in pareto_rows(records)}["q4_k_m"]
    assert row["ppl_delta_pct"] == __import__("pytest").approx(8.0)
    assert row["predicted_ppl_delta_pct"] == __import__("pytest").approx(4.0)
    assert row["ppl_delta_error_pct"] == __import__("pytest").approx(100.0)  # twice the predicted loss
    assert row["kld_mean"] == 0.05 and row["predicted_kld_mean"] == 0.04 and row["same_top_pct"] == 91.5
    assert row["kld_error_pct"] == __import__("pytest").approx(25.0)
    table = pareto_table(records)
    cells = dict(zip(table.columns, next(r for r in table.rows if r[0] == "q4_k_m")))
    assert cells["Δppl %"] == "+8.00" and cells["pred Δppl %"] == "+4.00" and cells["Δppl err%"] == "+100"
    assert cells["KLD"] == "0.0500" and cells["same top %"] == "91.5"


def test_ttft_is_the_prefill_tests_and_the_runtime_the_measuring_ones():
    # A variant measured with --runtime vllm: its size record names the artifact's own runtime,
    # and the served tests' TTFT (queueing under load included) must not replace pp128's.
    records = _variant("w8a8", 22.7, 6.2, 3.8) + [
        _rec("w8a8", "ttft_ms", 387.0, test="pp128"),
        _rec("w8a8", "ttft_ms", 3060.0, test="serve-rate2", ts="2026-01-02T00:00:00"),
        results.record(model="m", model_fingerprint="f", variant="w8a8", device="cpu", runtime="transformers",
                       test="size", metric="artifact_bytes", value=159 * 2**20, status="ok"),
    ]
    row = pareto_rows(records)[0]
    assert row["ttft_ms"] == 387.0 and row["runtime"] == "rt" and row["artifact_mib"] == 159


def test_settings_split_a_variant_into_rows_labelled_by_what_differs():
    # The same variant scored in both perplexity conventions (two token counts): two rows, never merged.
    def ppl(convention, tokens, value):
        return _rec("q8_0", "perplexity", value, bench_settings={"ppl_convention": convention, "ppl_tokens": tokens})

    records = [ppl("compress", 2048, 22.07), ppl("llama.cpp", 8192, 22.50)]
    rows = pareto_rows(records)
    assert sorted((r["perplexity"], r["setting"]) for r in rows) == [
        (22.07, "ppl compress, 2048 tok"), (22.50, "ppl llama.cpp, 8192 tok")]
    table = pareto_table(records)
    assert [r[table.columns.index("setting")] for r in table.rows] == ["A", "B"]
    assert any("A = ppl compress, 2048 tok; B = ppl llama.cpp, 8192 tok" in n for n in table.notes)
    # One setting a variant: no setting column.
    assert "setting" not in pareto_table(records[:1]).columns


def test_a_failed_test_says_why_in_its_cells():
    records = _variant("fp32", 10.0, 20.0, 2.0)[:1] + [
        results.record(model="m", model_fingerprint="f", variant="fp32", device="cpu", test="tg32", metric=None,
                       value=None, status="failed", error="RuntimeError: out of memory while decoding",
                       timestamp="2026-01-01T00:00:00")]
    cells = pareto_table(records).records()[0]
    assert cells["tok/s"] == "failed: out of me…" and len(cells["tok/s"]) == 18
    assert cells["ppl"] == "10.000"
    # Measured again, and fine: the failure is history.
    later = records + [_rec("fp32", "decode_tok_s", 21.0, test="tg32", ts="2026-02-01T00:00:00")]
    assert pareto_table(later).records()[0]["tok/s"] == 21.0 and pareto_rows(later)[0]["failures"] == []


def test_a_failure_cell_wraps_instead_of_widening_its_column():
    text = failure_text("TypeError: Gemma3RotaryEmbedding.forward() missing 1 required positional argument")
    assert text.startswith("failed: Gemma3") and len(text) <= FAILED_CELL_CHARS
    assert max(len(word) for word in text.split()) <= len("failed:")
