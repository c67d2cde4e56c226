"""The views on the committed records, run as a user runs them: from another folder, on several
files, and with the printed build and serve lines checked against what apply writes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
DEMO = ("fp32", "gptq-4-g64", "nf4", "q8_0", "q4_k_m")


def _cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, timeout=120)


def test_pareto_and_report_from_another_folder(tmp_path):
    shown = _cli("pareto", "--results", str(RESULTS / "bench.jsonl"), "--format", "json", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert {r["variant"] for r in json.loads(shown.stdout)} == set(DEMO)
    report = _cli("report", "-o", str(tmp_path / "r.html"), cwd=tmp_path, env={"COMPRESS_RESULTS": str(RESULTS)})
    assert report.returncode == 0, report.stderr
    missing = _cli("pareto", cwd=tmp_path, env={"COMPRESS_RESULTS": ""})
    assert missing.returncode != 0 and "Traceback" not in missing.stderr
    assert f"tried --results (not given), $COMPRESS_RESULTS (not set), {tmp_path / 'results'}" in missing.stderr


def test_report_of_two_files_holds_both():
    from cli import app

    out = Path(os.environ.get("TMPDIR", "/tmp")) / f"two-{os.getpid()}.html"
    result = CliRunner().invoke(app, ["report", "--results", str(RESULTS / "bench.jsonl"),
                                      "--results", str(RESULTS / "vllm-cpu.jsonl"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    out.unlink()
    assert "q4_k_m" in text and "w8a8-int8" in text  # one file each
    assert "bench.jsonl" in text and "vllm-cpu.jsonl" in text


def test_review_of_the_committed_records_matches_the_measurements_page():
    from compress import results
    from compress.measure.predictions import with_current_predictions
    from compress.review import review_data

    data = review_data("smollm2-135m", "cpu", with_current_predictions(results.load(RESULTS / "bench.jsonl")))
    assert set(DEMO) <= set(data["measured"])
    assert not [r for r in data["risks"] if "off the prediction" in r]
    page = (ROOT / "docs" / "measurements.md").read_text(encoding="utf-8")
    for variant in DEMO:
        row = data["measured"][variant]
        assert abs(row["memory_error_pct"]) <= 25, variant
        line = re.search(rf"^\| {re.escape(variant)} \(.*?\) \| ([\d.]+) \| ([\d.]+) \| ([+-][\d.]+)% \|$", page,
                         re.MULTILINE)
        assert line, variant
        assert float(line[1]) == pytest.approx(row["peak_memory_gib"] * 1024, abs=0.05)
        assert float(line[2]) == pytest.approx(row["predicted_peak_memory_gib"] * 1024, abs=0.05)
        assert float(line[3]) == pytest.approx(row["memory_error_pct"], abs=0.05)


def test_as_recorded_shows_the_stored_predictions(tmp_path):
    """A record keeps the prediction made when it was measured: here q8_0's peak memory as an
    older CPU memory model predicted it (0.15 GiB, +246% off). Views show today's prediction unless
    asked for the stored one."""
    from cli import app

    stale = []
    for line in (RESULTS / "bench.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r.get("variant") == "q8_0" and r.get("metric") == "peak_memory_bytes":
            r["predicted"] = 0.15 * 2**30
            r["prediction_error_pct"] = (r["value"] / r["predicted"] - 1) * 100
        stale.append(json.dumps(r))
    (tmp_path / "stale.jsonl").write_text("\n".join(stale) + "\n")
    args = ["pareto", "--results", str(tmp_path / "stale.jsonl"), "--format", "json"]
    today = {r["variant"]: r for r in json.loads(CliRunner().invoke(app, args).stdout)}
    then = {r["variant"]: r for r in json.loads(CliRunner().invoke(app, [*args, "--as-recorded"]).stdout)}
    assert abs(today["q8_0"]["memory_error_pct"]) < 25 < abs(then["q8_0"]["memory_error_pct"])
    assert "mem GiB" in today["q8_0"]["prediction_changed"] and then["q8_0"]["prediction_changed"] == []


def test_bench_refuses_a_plan_made_for_another_model(tmp_path):
    from compress import sources
    from compress.errors import UserInputError
    from compress.measure import choose_variants
    from compress.planner import make_plan

    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(make_plan("llama-2-7b", gpu="t4").to_dict()))
    with pytest.raises(UserInputError, match="was made for llama-2-7b, not for --model"):
        choose_variants(sources.resolve("default"), "cpu", None, plan)
    mine = tmp_path / "mine.json"
    mine.write_text(json.dumps(make_plan("default", gpu="cpu").to_dict()))
    assert choose_variants(sources.resolve("default"), "cpu", None, mine)


def test_catalog_model_without_weights_says_where_they_come_from():
    from compress.review import review_data

    data = review_data("llama-2-7b", "t4", [])
    assert data["download"] == "hf download meta-llama/Llama-2-7b-hf --local-dir models/llama-2-7b"
    assert data["apply"].startswith("compress apply --model models/llama-2-7b --method ")
    assert data["serve"].split()[2].startswith(data["apply"].split("--out-dir ")[1])


@pytest.mark.integration
def test_the_printed_apply_line_writes_what_the_serve_line_names(tmp_path):
    """Runs the review's apply line for the default model (q8_0 on this CPU) and checks the
    llama-server line's file is what apply wrote."""
    from compress.review import review_data

    data = review_data("default", "cpu", [])
    chosen = data["plan"]["recommended"]
    assert data["download"] is None and data["apply"].startswith(f"compress apply --model default --method {chosen} ")
    apply = subprocess.run([sys.executable, str(ROOT / "cli.py"), *data["apply"].split()[1:]], cwd=tmp_path,
                           capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=900)
    assert apply.returncode == 0, apply.stderr[-2000:]
    served = data["serve"].split()
    if served[0] == "llama-server":
        assert (tmp_path / served[served.index("-m") + 1]).is_file()
    else:
        assert (tmp_path / served[2] / "manifest.json").is_file()


def test_plan_says_where_its_measured_column_comes_from(tmp_path):
    empty = _cli("plan", "--model", "default", "--gpu", "cpu", cwd=tmp_path, env={"COMPRESS_RESULTS": ""})
    assert empty.returncode == 0, empty.stderr
    assert "No bench records found" in " ".join(empty.stdout.split())
    both = _cli("plan", "--model", "default", "--gpu", "cpu", "--results", str(RESULTS / "quality-cpu.jsonl"),
                "--format", "json", cwd=tmp_path)
    measured = {c["variant"]: c["measured"]["setting"] for c in json.loads(both.stdout)["candidates"]
                if c.get("measured")}
    # The file holds two settings; the most recent run's is shown, and named.
    assert set(measured.values()) == {"ppl llama.cpp, 8192 tok"} and "q8_0" in measured


def test_the_pair_for_many_sequences_comes_with_its_own_build_line():
    from compress.review import review_data

    busy = review_data("llama-2-7b", "h100-sxm", [])["serve_busy"]
    assert busy["apply"].startswith(f"compress apply --model models/llama-2-7b --method {busy['variant']} ")
    assert busy["command"].split()[2] == busy["apply"].split("--out-dir ")[1]  # vllm serve <the folder apply wrote>
