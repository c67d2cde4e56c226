"""bench --kv-dtype: llama.cpp's quantized KV cache measured, with the planner's prediction for the same type."""

from __future__ import annotations

from dataclasses import replace

import pytest

from compress import apply, sources, variants
from compress.errors import UserInputError
from compress.measure import sweep
from compress.measure.settings import BenchSettings, plan_tests

SETTINGS = BenchSettings(ppl_tokens=256, ppl_context=128, ppl_stride=128, pp_tokens=16, tg_tokens=4, reps=1,
                         warmup=0, batch_sizes=(2,), threads=1, device="cpu", tests=("ppl", "tg", "batch"),
                         kld_top_k=0)
OPTIONS = apply.Options(device="cpu", calib_samples=4, calib_seq_len=64)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    return tmp_path_factory.mktemp("artifacts")


def _sweep(tiny_llama, path, artifacts, names, kv_dtype=None):
    settings = replace(SETTINGS, kv_dtype=kv_dtype)
    return sweep.run_sweep(sources.resolve(str(tiny_llama)), variants.parse_list(names), settings, OPTIONS, path,
                           artifacts, log=lambda line: None, isolate=True)


def _value(records, metric):
    return next(r for r in records if r["metric"] == metric and r["status"] == "ok")


def test_a_quantized_kv_cache_runs_in_llama_cpp_and_every_record_names_it(tiny_llama, tmp_path, artifacts):
    default = _sweep(tiny_llama, tmp_path / "f16.jsonl", artifacts, "q8_0")
    quantized = _sweep(tiny_llama, tmp_path / "q8.jsonl", artifacts, "q8_0", kv_dtype="q8_0")
    measured = [r for r in quantized if r["test"] != "size"]
    assert measured and all(r["status"] == "ok" and r["kv_dtype"] == "q8_0" for r in measured)
    # part of each test's settings key (the memory test's key is made of the others')
    assert all(r["params"]["kv_dtype"] == "q8_0" for r in measured if r["test"] != "memory")
    assert all(r.get("kv_dtype") == "fp16" for r in default if r["test"] != "size")
    f16_ppl, q8_ppl = _value(default, "perplexity")["value"], _value(quantized, "perplexity")["value"]
    assert q8_ppl != f16_ppl and abs(q8_ppl / f16_ppl - 1) < 0.05  # rounded keys and values: close, not equal
    assert _value(quantized, "throughput_tok_s")["value"] > 0  # the batched context holds the same cache type
    memory = _value(quantized, "peak_memory_bytes")
    assert memory["predicted"] is not None  # the planner's figure for the same KV type sits beside it


def test_a_runtime_without_that_cache_type_skips_with_the_reason(tiny_llama, tmp_path, artifacts):
    written = _sweep(tiny_llama, tmp_path / "r.jsonl", artifacts, "fp32", kv_dtype="q4_0")
    load = next(r for r in written if r["test"] == "load")
    assert load["status"] == "skipped" and "transformers runs a KV cache of its default type only" in load["error"]


def test_the_kv_type_is_part_of_the_settings_key_and_checked():
    plain, q8 = plan_tests(SETTINGS, 1), plan_tests(replace(SETTINGS, kv_dtype="q8_0"), 1)
    assert plain["tg4"]["settings_key"] != q8["tg4"]["settings_key"] and "kv_dtype" not in plain["tg4"]
    with pytest.raises(UserInputError, match="--kv-dtype must be one of"):
        replace(SETTINGS, kv_dtype="q3_k")
