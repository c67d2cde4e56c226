"""Every command's table output reads at 80 columns: no line wider, no word or number split.

Each command runs twice, at COLUMNS=80 and at COLUMNS=400. The wide run lays every cell on
one line, so its words and numbers are whole; each of them must appear whole in the 80-column
run too (a number folded across two lines, `1,0` / `08`, would not).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

import cli

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
BOX = re.compile(r"^[─━═│┃ ]*$")


def _tokens(text: str) -> set[str]:
    return {t for t in text.split() if not BOX.match(t)}


def _run(args: list[str], columns: int) -> str:
    result = CliRunner().invoke(cli.app, args, env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, (args, result.output, result.exception)
    return result.output


def _check(args: list[str]) -> None:
    narrow, wide = _run(args, 80), _run(args, 400)
    too_long = [line for line in narrow.splitlines() if len(line) > 80]
    assert not too_long, (args, too_long)
    split = _tokens(wide) - _tokens(narrow)
    assert not split, (args, sorted(split)[:10])


@pytest.fixture(scope="module")
def two_models(tmp_path_factory) -> Path:
    """The committed records of two models in one file: the pareto table grows a model column."""
    path = tmp_path_factory.mktemp("results") / "both.jsonl"
    path.write_text((RESULTS / "bench.jsonl").read_text() + (RESULTS / "h100-llama-2-7b-random.jsonl").read_text())
    return path


@pytest.mark.parametrize("args", [
    ["plan", "-m", "llama-2-7b", "-g", "t4"],
    ["plan", "-m", "smollm2-135m", "-g", "cpu"],
    ["plan", "-m", "llama-3.1-70b", "-g", "t4", "--context", "8192"],  # nothing fits: alternatives
    ["plan", "-m", "mixtral-8x7b", "-g", "h100-sxm", "--gpus", "2", "--batch", "8"],
    ["plan", "-m", "llama-3.1-70b", "-g", "mi300x", "--sweep-context"],
    ["plan", "-m", "llama-3.1-8b", "--gpu-memory", "24GiB", "--bandwidth", "1000"],
    ["gpus"],
    ["models"],
    ["review", "--model", "smollm2-135m", "--gpu", "cpu", "--results", str(RESULTS / "bench.jsonl")],
    ["pareto", "--results", str(RESULTS / "bench.jsonl")],
    ["pareto", "--results", str(RESULTS / "h100-llama-3.2-3b-random.jsonl")],
    # Every committed file at once: three models, rows of several settings, a failed load.
    ["pareto", "--results", str(RESULTS)],
    ["pareto", "--results", str(RESULTS / "quality-cpu.jsonl")],
])
def test_tables_fit_80_columns(args):
    _check(args)


def test_pareto_of_two_models_fits_80_columns(two_models):
    _check(["pareto", "--results", str(two_models)])


def test_wide_shows_every_column():
    compact = _run(["plan", "-m", "llama-2-7b", "-g", "t4", "--table", "candidates"], 400)
    wide = _run(["plan", "-m", "llama-2-7b", "-g", "t4", "--table", "candidates", "--wide"], 400)
    assert "why / notes" not in compact.split("More columns with --wide")[0] and "More columns" in compact
    assert "why / notes" in wide and "kernel" in wide


def test_piped_output_is_not_squeezed_to_80():
    """With no terminal and no COLUMNS, a table keeps a row a line (a log, a file)."""
    import subprocess
    import sys

    env = {k: v for k, v in __import__("os").environ.items() if k != "COLUMNS"}
    out = subprocess.run([sys.executable, str(ROOT / "cli.py"), "gpus", "--wide"], capture_output=True, text=True,
                         cwd=ROOT, env=env, check=True).stdout
    assert max(len(line) for line in out.splitlines()) > 80


def test_apply_summary_fits_80_columns(capsys, monkeypatch):
    from compress.commands.applying import _summary

    monkeypatch.setenv("COLUMNS", "80")
    manifest = json.loads(json.dumps({
        "variant": "gptq-4-g64", "format": "safetensors", "runtime": "transformers", "source_size_bytes": 541_000_000,
        "input_size_bytes": 538_000_000, "size_bytes": 118_000_000, "timings_s": {"total": 133.2},
        "peak_memory_bytes": 1_224_000_000, "device": "cpu"}))
    _summary(manifest, Path("artifacts/smollm2-135m-instruct-gptq-4-g64"))
    out = capsys.readouterr().out
    assert "gptq-4-g64" in out and max(len(line) for line in out.splitlines()) <= 80


def test_gpus_shows_the_compute_of_cards_without_bf16():
    """T4 and V100 have no bf16: the 80-column view shows fp16, which every card has."""
    rows = {line.split()[0]: line.split() for line in _run(["gpus"], 80).splitlines() if line.strip()}
    assert rows["t4"][3] == "65.0" and rows["v100"][3] != "-"
