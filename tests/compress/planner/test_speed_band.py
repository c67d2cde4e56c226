"""Every speed the planner predicts carries a band, and the speed backtest scores the
predictions against published, measured figures (bench/speed_figures.toml)."""

import importlib.util
import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

import cli
from compress.planner import load_gpu, load_model_spec, make_plan, predict_variant, profiles
from compress.planner.predict import speed_band

ROOT = Path(__file__).resolve().parents[3]
runner = CliRunner()


def _backtest():
    spec = importlib.util.spec_from_file_location("speed_backtest", ROOT / "bench" / "speed_backtest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_speed_of_a_json_plan_has_a_band_around_it():
    result = runner.invoke(cli.app, ["plan", "-m", "llama-3.1-8b", "-g", "rtx-4090", "--batch", "4", "-f", "json",
                                     "--sweep-context"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    for c in plan["candidates"]:
        p = c["predicted"]
        for key in ("decode_tok_s", "ttft_ms", "ttft_single_ms"):
            low, high = p[f"{key}_band"]
            assert low <= p[key] <= high, (c["variant"], key)
            assert low < high
    for row in plan["context_sweep"]:
        for name, cand in row["candidates"].items():
            low, high = cand["decode_tok_s_band"]
            assert low <= cand["decode_tok_s"] <= high, name


def _speeds(node, path=""):
    """(path, value, band) of every speed in a JSON document: keys ending in _tok_s or _ms."""
    if isinstance(node, dict):
        for key, value in node.items():
            if (key.endswith("_tok_s") or key.endswith("_ms")) and isinstance(value, (int, float)):
                yield f"{path}.{key}", value, node.get(f"{key}_band")
            else:
                yield from _speeds(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _speeds(value, f"{path}[{i}]")


def test_no_speed_anywhere_in_a_json_plan_goes_without_a_band():
    # fp16 on an H100 in vLLM also carries the measured-kernel model's figures
    for args in (["-g", "h100-sxm", "--engine", "vllm"], ["-g", "rtx-4090,l4"]):
        result = runner.invoke(cli.app, ["plan", "-m", "llama-3.1-8b", *args, "-f", "json", "--sweep-context"])
        assert result.exit_code == 0, result.output
        found = list(_speeds(json.loads(result.output)))
        assert found
        for path, value, band in found:
            assert band is not None and band[0] <= value <= band[1], path


def test_band_is_the_engines_ratio_of_measured_to_predicted():
    # llama.cpp's decode band is [0.69, 1.12] x the prediction (profiles/runtimes.toml
    # [speed_band]); a time is the inverse: prefill ratios [0.37, 1.18] make TTFT
    # [1 / 1.18, 1 / 0.37] x the prediction.
    c = predict_variant(load_model_spec("llama-3-8b"), load_gpu("rtx-4090"), "q4_k_m", runtime="llama.cpp")["predicted"]
    decode, prefill = speed_band("llama.cpp")["decode"], speed_band("llama.cpp")["prefill"]
    assert c["decode_tok_s_band"] == pytest.approx([c["decode_tok_s"] * decode[0], c["decode_tok_s"] * decode[1]],
                                                   abs=0.01)
    assert c["ttft_ms_band"] == pytest.approx([c["ttft_ms"] / prefill[1], c["ttft_ms"] / prefill[0]], abs=0.2)
    # an engine with no published figure takes the wide default band
    assert speed_band("onnxruntime") == speed_band("mlx") == {"decode": (0.67, 1.5), "prefill": (0.67, 1.5)}


def test_every_engine_band_holds_its_point():
    for engine, band in profiles.load("runtimes.toml")["speed_band"].items():
        for speed in ("decode", "prefill"):
            assert band[speed][0] <= 1.0 <= band[speed][1], (engine, speed)


def test_the_wide_view_shows_the_bands():
    result = runner.invoke(cli.app, ["plan", "-m", "llama-2-7b", "-g", "h100-sxm", "--wide"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "decode band" in result.output and "TTFT band" in result.output


def test_figures_are_cited_and_a_third_is_held_out():
    backtest = _backtest()
    sources, rows = backtest.load_figures()
    assert len(rows) >= 30
    assert all(r["source"] in sources and sources[r["source"]]["url"] for r in rows)
    held_out = [r for r in rows if r["split"] == "holdout"]
    assert 3 * len(held_out) >= len(rows)
    assert {r["split"] for r in rows} == {"fit", "holdout"}


def test_backtest_scores_the_figures_within_its_target():
    # The target: a median absolute error of 15% or less over all figures.
    backtest = _backtest()
    _, rows = backtest.load_figures()
    scored = backtest.score(rows)
    errors = sorted(abs(r["error_pct"]) for r in scored)
    assert len(errors) == len(rows) and all(math.isfinite(e) for e in errors)
    assert errors[len(errors) // 2] <= 15.0


def test_the_stored_bands_are_the_ones_the_fit_figures_give():
    # profiles/runtimes.toml [speed_band] for llama.cpp and transformers is regenerated by
    # `bench/speed_backtest.py --bands`; an edit to either side without the other fails here.
    backtest = _backtest()
    _, rows = backtest.load_figures()
    fitted = backtest.fitted_bands(backtest.score(rows))
    stored = profiles.load("runtimes.toml")["speed_band"]
    for engine, speeds in fitted.items():
        for speed, (low, high, _n) in speeds.items():
            assert stored[engine][speed] == [low, high], (engine, speed)


def test_plan_note_says_where_the_band_comes_from():
    plan = make_plan("llama-2-7b", "t4")
    assert all(c["predicted"]["speed_band_source"].startswith("profiles/runtimes.toml [speed_band]")
               for c in plan.candidates)


def test_ranking_check_names_the_faster_variant_and_a_tie():
    backtest = _backtest()
    base = {"source": "s", "gpu": "rtx-4090", "gpus": 1, "model": "llama-3-8b", "metric": "prefill_tok_s",
            "batch": 1, "prompt_tokens": 512}
    rows = [{**base, "variant": "q4_k_m", "measured": 7139.0, "predicted": 5401.0},
            {**base, "variant": "gguf-f16", "measured": 9382.0, "predicted": 5401.0}]
    lines = backtest.ranking_check(rows)
    assert lines[0].startswith("  differ") and "measured gguf-f16" in lines[0] and "a tie" in lines[1]
    rows[1]["predicted"] = 6000.0
    assert backtest.ranking_check(rows) == ["  agree  rtx-4090 llama-3-8b pp: gguf-f16"]
