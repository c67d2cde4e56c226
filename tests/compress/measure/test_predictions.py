"""Views set measurements beside today's planner's predictions, keeping the stored ones as provenance."""

from __future__ import annotations

import pytest

from compress import results
from compress.measure.pareto_table import pareto_rows, pareto_table
from compress.measure.predictions import CHANGED_PCT, with_current_predictions

GIB = 2**30
SETTINGS = {"batch_sizes": [4, 8], "device": "cpu", "pp_tokens": 128, "ppl_context": 512, "ppl_stride": 512,
            "ppl_tokens": 2048, "reps": 3, "tests": ["ppl", "pp", "tg", "batch"], "tg_prompt_tokens": 1,
            "tg_tokens": 32, "warmup": 1}


def _memory(model="smollm2-135m-instruct", predicted_gib=0.15, value_gib=0.53, **kw):
    # 0.15 GiB: what an older planner predicted for q8_0 on the CPU, before it counted the runtime's buffers.
    return results.record(model=model, model_fingerprint="f", variant="q8_0", device="cpu", profile="cpu",
                          runtime="llama.cpp", test="memory", metric="peak_memory_bytes", value=value_gib * GIB,
                          predicted=predicted_gib * GIB, prediction_error_pct=(value_gib / predicted_gib - 1) * 100,
                          bench_settings=kw.pop("bench_settings", SETTINGS), **kw)


def test_a_stale_prediction_is_made_again_and_kept_as_provenance():
    old = _memory()
    [new] = with_current_predictions([old])
    assert new["predicted_as_recorded"] == old["predicted"]
    assert new["prediction_error_pct_as_recorded"] == old["prediction_error_pct"]
    assert new["predicted"] != old["predicted"] and new["prediction_changed"]
    assert new["prediction_error_pct"] == pytest.approx((new["value"] / new["predicted"] - 1) * 100)
    assert abs(new["prediction_error_pct"]) < 25  # the old record read +253%
    assert old["predicted"] == 0.15 * GIB  # the input is not changed


def test_a_prediction_that_still_holds_is_not_marked():
    [today] = with_current_predictions([_memory()])
    [again] = with_current_predictions([_memory(predicted_gib=today["predicted"] / GIB * (1 + CHANGED_PCT / 200))])
    assert not again["prediction_changed"]


def test_a_model_the_planner_cannot_read_says_so_instead_of_a_number():
    [new] = with_current_predictions([_memory(model="/gone/folder")])
    assert new["predicted"] is None and new["prediction_error_pct"] is None
    assert new["prediction_note"].startswith("not re-predicted: the planner does not know /gone/folder")
    assert "not re-predicted" in pareto_table([new]).rows[0][-1]


def test_records_without_a_predicted_figure_pass_unchanged():
    rec = results.record(model="m", variant="fp32", test="ppl", metric="same_top_pct", value=90.0)
    assert with_current_predictions([rec]) == [rec]


def test_perplexity_is_predicted_from_the_baseline_of_the_same_settings():
    common = {"model": "smollm2-135m-instruct", "model_fingerprint": "f", "device": "cpu", "profile": "cpu",
              "test": "ppl", "metric": "perplexity", "bench_settings": SETTINGS, "params": {"settings_key": "k"}}
    base = results.record(**common, variant="fp32", runtime="transformers", value=20.0)
    q8 = results.record(**common, variant="q8_0", runtime="llama.cpp", value=20.1, predicted=99.0)
    _, new = with_current_predictions([base, q8])
    assert 20.0 < new["predicted"] < 21.0 and new["predicted_as_recorded"] == 99.0


def test_a_local_model_is_found_through_its_artifacts_manifest(tmp_path):
    import json

    model = tmp_path / "my-model"
    model.mkdir()
    # A small Llama config (widths multiples of 256, as the GGUF and GPTQ block sizes want).
    (model / "config.json").write_text(json.dumps({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 256, "intermediate_size": 512,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 1024,
        "max_position_embeddings": 2048, "tie_word_embeddings": True}))
    artifact = tmp_path / "artifact"
    artifact.mkdir()
    (artifact / "manifest.json").write_text(json.dumps({"source": {"kind": "hf", "path": str(model)}}))
    [found] = with_current_predictions([_memory(model="my-model", artifact=str(artifact))])
    assert found["predicted"] is not None and "prediction_note" not in found
    (artifact / "manifest.json").unlink()  # the artifact gone: nothing names the model's folder any more
    [gone] = with_current_predictions([_memory(model="my-model", artifact=str(artifact))])
    assert gone["predicted"] is None and gone["prediction_note"].startswith("not re-predicted")


def test_cpu_records_are_re_predicted_with_the_host_their_run_measured():
    """The demo run of 2026-12-06 was measured after a probe of its machine: re-predicted today, on
    any machine, its decode speed is predicted from that probe's bandwidth (in its MBU records),
    so today's prediction equals the one bench stored where the speed model is unchanged since
    (llama.cpp). In transformers a decode step now reads the weights as the CPU loader holds them
    (float32 where it widens them), so today's prediction is slower than the stored one there."""
    from pathlib import Path

    from compress import results
    from compress.measure.predictions import measured_hosts, with_current_predictions

    records = results.load(Path(__file__).resolve().parents[3] / "results" / "cpu-demo-2026-12-06.jsonl")
    hosts = measured_hosts(records)
    assert hosts and all(bw and bw > 0 for bw, _ in hosts.values())
    for r in with_current_predictions(records):
        if r.get("metric") == "decode_tok_s" and r.get("status") == "ok" and r.get("predicted_as_recorded"):
            if r.get("runtime") == "llama.cpp":
                assert r["predicted"] == pytest.approx(r["predicted_as_recorded"], rel=0.02), r["variant"]
            else:
                assert r["predicted"] <= r["predicted_as_recorded"] * 1.02, r["variant"]


def test_a_quantized_kv_cache_is_predicted_to_cost_quality_and_the_band_comes_along():
    def ln_ratio(kv):
        return results.record(model="smollm2-135m-instruct", model_fingerprint="f", variant="q4_k_m", device="cpu",
                              profile="cpu", runtime="llama.cpp", test="ppl", metric="ln_ppl_ratio", value=0.07,
                              bench_settings={**SETTINGS, "kv_dtype": kv})

    plain, q8, q4 = with_current_predictions([ln_ratio(None), ln_ratio("q8_0"), ln_ratio("q4_0")])
    assert plain["predicted"] < q8["predicted"] < q4["predicted"]
    low, high = q4["predicted_band"]
    assert low < q4["predicted"] < high
