"""bench/predicted_vs_measured.py: the predicted-vs-measured document, from records built here
and from the committed results."""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("predicted_vs_measured", ROOT / "bench" / "predicted_vs_measured.py")
pvm = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = pvm  # its dataclasses look their module up there
_spec.loader.exec_module(pvm)


def _record(variant, metric, value, predicted=None, band=None, stamp="2026-12-06T21:00:00+0000", status="ok",
            test="ppl", kv=None, load=0.5, error=None, threads=None):
    return {"model": "m", "profile": "cpu", "device": "cpu", "device_name": "AMD EPYC", "variant": variant,
            "metric": metric, "value": value, "predicted": predicted, "predicted_band": band, "status": status,
            "test": test, "timestamp": stamp, "error": error, "bench_settings": {"kv_dtype": kv},
            "params": {"load_avg_1m": load, "threads": threads}}


def _metric(name):
    return next(m for m in pvm.METRICS if m.name == name)


def _table(records, whys=None):
    return pvm.cells(pvm.latest_records(records))[("m", "cpu", "AMD EPYC")], whys or {}


def test_a_kv_cache_type_is_a_variant_of_its_own_and_the_newest_figure_wins():
    variants, _ = _table([_record("q4_k_m", "ln_ppl_ratio", math.log(1.05), math.log(1.04)),
                          _record("q4_k_m", "ln_ppl_ratio", math.log(1.06), math.log(1.04), stamp="2026-12-07"),
                          _record("q4_k_m", "ln_ppl_ratio", math.log(1.09), math.log(1.08), kv="q4_0")])
    assert set(variants) == {"q4_k_m", "q4_k_m (KV q4_0)"}
    cell = variants["q4_k_m"]["quality"]
    assert cell.measured == pytest.approx(6.0) and cell.error(relative=False) == pytest.approx(2.0)


def test_a_miss_says_why_and_an_unexplained_one_says_so():
    records = [_record("q5_k_m", "ln_ppl_ratio", math.log(1.11), math.log(1.03), band=[0.0, math.log(1.05)]),
               _record("q8_0", "ln_ppl_ratio", math.log(1.005), math.log(1.004), band=[0.0, math.log(1.007)]),
               _record("q2_k", "ln_ppl_ratio", math.log(1.9), math.log(1.8), band=[0.0, math.log(1.5)])]
    variants, _ = _table(records)
    whys = {("m", "q5_k_m", "quality"): "rows stored in another type"}
    lines = pvm.metric_table(_metric("quality"), "m", variants, whys, 25.0)
    row = {line.split(" | ")[0].strip("| "): line for line in lines if line.startswith("| q")}
    assert row["q5_k_m"].endswith("| rows stored in another type |")
    assert row["q8_0"].endswith("|  |")  # inside its band: nothing to say
    assert row["q2_k"].endswith("| not yet explained |")


def test_a_failed_test_shows_its_cause_and_a_busy_speed_is_marked():
    records = [_record("w8a8-int8", "decode_tok_s", 40.0, 45.0), _record(
        "w8a8-int8", "decode_tok_s", None, status="failed", test="tg32", stamp="2026-12-07",
        error="RuntimeFailure: vLLM load failed | no CPU kernel"),
        _record("q8_0", "decode_tok_s", 60.0, 100.0, band=[80.0, 120.0], test="tg32", load=3.2)]
    variants, _ = _table(records)
    assert variants["w8a8-int8"]["decode"].failed == "failed: vLLM load failed / no CPU kernel"
    lines = pvm.metric_table(_metric("decode"), "m", variants, {}, 25.0)
    assert any("| w8a8-int8 | - | - | failed |" in line for line in lines)
    assert any(line.startswith("| q8_0 ") and "measured under load 3.20" in line for line in lines)


def test_a_runs_own_threads_are_not_load_from_others():
    """Two threads of the bench itself hold a 2-core machine's load average near 2: not a shared CPU."""
    own = _record("q4_0", "decode_tok_s", 60.0, 100.0, band=[80.0, 120.0], test="tg32", load=1.9, threads=2)
    shared = _record("q2_k", "decode_tok_s", 60.0, 100.0, band=[80.0, 120.0], test="tg32", load=3.9, threads=2)
    variants, _ = _table([own, shared])
    lines = pvm.metric_table(_metric("decode"), "m", variants, {}, 25.0)
    assert any(line.startswith("| q4_0 ") and line.endswith("| not yet explained |") for line in lines)
    assert any(line.startswith("| q2_k ") and "measured under load 1.90" in line for line in lines)


def test_a_metric_no_variant_measured_has_no_table():
    variants, _ = _table([_record("fp16", "decode_tok_s", 20.0, 21.0, test="tg32")])
    assert pvm.metric_table(_metric("quality"), "m", variants, {}, 25.0) == []


def test_the_committed_document_matches_the_records():
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "predicted_vs_measured.py"), "--check"],
                          capture_output=True, text=True, env={"PYTHONPATH": str(ROOT), "PATH": ""}, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "matches the records" in done.stdout


def test_every_candidate_the_planner_proposes_is_listed_where_unmeasured():
    missing = pvm.unmeasured_candidates("smollm2-135m-instruct", "cpu", ["fp32", "q8_0 (KV q4_0)"])
    assert "q4_k_m" in missing and "layerdrop-8" in missing
    assert "fp32" not in missing and "q8_0" not in missing  # measured in some setting counts
    whys = {("m", "awq-4-g64", "unmeasured"): "no CPU kernel"}
    assert "| awq-4-g64 | no CPU kernel |" in pvm.unmeasured_table("m", ["awq-4-g64"], whys)
    assert pvm.unmeasured_candidates("no-such-model", "cpu", []) == []
