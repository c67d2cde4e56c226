"""`compress plan`, `gpus`, `models` through the real CLI."""

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

import cli

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def test_plan_table_shows_seed_breakdown_and_ranking():
    result = runner.invoke(cli.app, ["plan", "--model", "llama-2-7b", "--gpu", "t4"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    # 16.8 and 8.40 decimal GB (Substratus' rule for 7B params at 16 and 8 bits) shown as GiB
    assert "Seed formula" in result.output and "15.6" in result.output and "7.82" in result.output
    assert "Memory breakdown" in result.output and "KV cache GiB" in result.output
    assert "Candidates ranked by balanced" in result.output and "Recommended:" in result.output


def test_plan_json_is_the_plan_file(tmp_path):
    out = tmp_path / "plan.json"
    result = runner.invoke(cli.app, ["plan", "-m", "llama-2-7b", "-g", "t4", "--format", "json", "-o", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["schema"] == "compress.plan/1" and data == json.loads(out.read_text())


def test_plan_md_and_csv():
    md = runner.invoke(cli.app, ["plan", "-m", "smollm2-135m", "-g", "l4", "-f", "md", "--headroom", "10%"])
    assert md.exit_code == 0 and "| rank | variant |" in md.output
    assert md.output.startswith("- **Verdict** smollm2-135m")  # Markdown from the first line
    assert "- **Model** smollm2-135m" in md.output and "\n- \n" not in md.output
    csv = runner.invoke(cli.app, ["plan", "-m", "smollm2-135m", "-g", "l4", "-f", "csv"])
    assert csv.exit_code == 0 and csv.output.startswith("rank,variant,")
    seed = runner.invoke(cli.app, ["plan", "-m", "smollm2-135m", "-g", "l4", "-f", "csv", "--table", "seed"])
    assert seed.exit_code == 0 and seed.output.startswith("Q (bits),")
    bad = runner.invoke(cli.app, ["plan", "-m", "smollm2-135m", "-g", "l4", "-f", "csv", "--table", "memroy"])
    assert "did you mean 'memory'" in str(bad.exception)  # main() turns it into one line and exit 2


def test_plan_csv_is_one_rectangular_table():
    """Piped into any CSV reader, the plan is one table: every row as wide as the header."""
    for table in (None, "seed", "memory", "candidates"):
        args = ["plan", "-m", "llama-2-7b", "-g", "cpu", "-f", "csv"] + (["--table", table] if table else [])
        result = _run(*args)
        assert result.returncode == 0, result.stderr
        rows = list(csv.reader(io.StringIO(result.stdout)))
        assert len(rows) > 2 and {len(r) for r in rows} == {len(rows[0])}, (table, rows)


def test_gpus_carry_their_sources():
    table = runner.invoke(cli.app, ["gpus", "-f", "csv"])
    rows = list(csv.DictReader(io.StringIO(table.output)))
    t4 = next(r for r in rows if r["name"] == "t4")
    assert "datasheet" in t4["source"] and "https://" in t4["references"]
    data = {g["name"]: g for g in json.loads(runner.invoke(cli.app, ["gpus", "-f", "json"]).output)}
    assert data["t4"]["references"]["ds"].startswith("NVIDIA T4 Tensor Core GPU datasheet, https://")
    assert all(g["source"] for g in data.values())


def test_gpus_and_models_commands():
    gpus = runner.invoke(cli.app, ["gpus", "-f", "json"])
    assert gpus.exit_code == 0 and {"t4", "h100-sxm", "cpu"} <= {g["name"] for g in json.loads(gpus.output)}
    models = runner.invoke(cli.app, ["models", "-f", "json"])
    assert models.exit_code == 0 and len(json.loads(models.output)) >= 20


def _run(*args, env_extra=None):
    import os

    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], capture_output=True, text=True, cwd=ROOT,
                          env=env)


def test_errors_are_one_line_exit_2():
    for args, text in [(["--model", "lama-2-7b"], "did you mean 'llama-2-7b'"), (["--gpu", "t5"], "did you mean 't4'"),
                       (["--context", "100000"], "maximum context"), (["--batch", "-1"], "--batch"),
                       (["--gpus", "0"], "--gpus")]:
        base = {"--model": "llama-2-7b", "--gpu": "t4"}
        base.update(dict(zip(args[::2], args[1::2])))
        result = _run("plan", *[x for kv in base.items() for x in kv])
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.startswith("error: ") and text in result.stderr and result.stderr.count("\n") == 1


def test_planning_never_imports_torch():
    code = ("import sys, cli\n"
            "sys.argv = ['compress', 'plan', '--model', 'llama-2-7b', '--gpu', 't4', '--format', 'json']\n"
            "try:\n    cli.main()\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n"
            "print('TORCH_FREE')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("TORCH_FREE")


def test_plan_default_custom_device_and_sweep():
    result = runner.invoke(cli.app, ["plan", "--model", "default", "--gpu", "cpu", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["model"]["name"] == "smollm2-135m"
    result = runner.invoke(cli.app, ["plan", "-m", "llama-3.1-70b", "--gpu-memory", "24GiB", "--bandwidth", "1000",
                                     "--format", "json"])
    assert result.exit_code == 0, result.output
    d = json.loads(result.output)
    assert d["gpu"]["usable_memory_gib"] == 24 and d["gpu"]["memory_bandwidth_gbs"] == 1000
    assert all(c["predicted"]["ttft_ms"] is None for c in d["candidates"])  # no --tflops: no prefill figure
    result = runner.invoke(cli.app, ["plan", "-m", "llama-3.2-1b", "-g", "b200", "--sweep-context", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert [r["context"] for r in json.loads(result.output)["context_sweep"]][-1] == 131072
    for gpu in ("mi300x", "rtx-5090", "m4-max"):
        assert runner.invoke(cli.app, ["plan", "-m", "llama-3.1-70b", "-g", gpu]).exit_code == 0


def test_gpus_lists_the_new_profiles():
    result = runner.invoke(cli.app, ["gpus", "--format", "json"])
    names = {g["name"]: g for g in json.loads(result.output)}
    assert {"b200", "gb200", "rtx-5090", "mi300x", "mi325x", "m3-max"} <= set(names)
    assert "data sheet" in names["mi300x"]["source"] and names["mi300x"]["arch_id"] == "gfx942"


def test_apply_refuses_a_plan_for_another_model(tmp_path):
    plan = tmp_path / "plan.json"
    assert runner.invoke(cli.app, ["plan", "-m", "llama-2-7b", "-g", "t4", "-o", str(plan), "-f", "json"]).exit_code == 0
    result = _run("apply", "--plan", str(plan), "--model", "default")
    assert result.returncode == 2 and "was made for llama-2-7b, not for --model default" in result.stderr
    assert result.stderr.count("\n") == 1
    result = _run("apply", "--plan", str(plan))
    assert result.returncode == 2 and "not on this machine" in result.stderr


def test_a_plan_for_the_default_model_applies_to_it(tmp_path):
    from compress.commands.applying import _plan_model

    plan = json.loads(runner.invoke(cli.app, ["plan", "-m", "default", "-g", "cpu", "-f", "json"]).output)
    assert _plan_model(plan["model"], tmp_path / "p.json", None) == "default"
    assert _plan_model(plan["model"], tmp_path / "p.json", "default") == "default"


def test_plan_engine_option():
    result = runner.invoke(cli.app, ["plan", "-m", "llama-2-7b", "-g", "h100-sxm", "--engine", "vllm", "-f", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["options"]["engine"] == "vllm" and {c["runtime"] for c in data["candidates"]} == {"vllm"}
    bad = runner.invoke(cli.app, ["plan", "-m", "llama-2-7b", "-g", "h100-sxm", "--engine", "tgi"])
    assert bad.exit_code != 0 and "unknown engine 'tgi'" in str(bad.exception)


def test_apply_refuses_planned_only_formats(tmp_path):
    result = _run("apply", "--method", "nvfp4", "--out-dir", str(tmp_path / "out"))
    assert result.returncode == 2 and "nvfp4 is planned only" in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_the_verdict_leads_and_brief_prints_only_it():
    """At 80 columns the first 15 lines say whether it fits, what to use, how fast and at what quality."""
    full = _run("plan", "--model", "llama-2-7b", "--gpu", "t4", env_extra={"COLUMNS": "80"})
    assert full.returncode == 0, full.stderr
    head = "\n".join(full.stdout.splitlines()[:15])
    for said in ("Fits:     yes, q5_k_m", "Use:      q5_k_m in llama.cpp", "tok/s (", "decode", "% perplexity"):
        assert said in head, head
    assert all(len(line) <= 80 for line in full.stdout.splitlines())
    brief = _run("plan", "--model", "llama-2-7b", "--gpu", "t4", "--brief", env_extra={"COLUMNS": "80"})
    assert brief.returncode == 0 and brief.stdout.startswith("Verdict")
    assert len(brief.stdout.splitlines()) <= 15 and "Memory breakdown" not in brief.stdout
    # a catalog name has no weights here: they are fetched first, then built where serve looks
    assert "Get:      hf download meta-llama/Llama-2-7b-hf --local-dir models/llama-2-7b" in brief.stdout
    assert "--out-dir artifacts/llama-2-7b-q5_k_m" in " ".join(brief.stdout.split())


def test_the_readme_shows_the_verdict_the_planner_gives_today():
    import re

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    shown = re.search(r"```\n(Verdict   llama-2-7b on NVIDIA T4.*?)```", readme, flags=re.S).group(1)
    brief = _run("plan", "--model", "llama-2-7b", "--gpu", "t4", "--brief", env_extra={"COLUMNS": "80"})
    assert shown == brief.stdout
