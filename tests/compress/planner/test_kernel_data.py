"""The second speed model: NVIDIA AIConfigurator's measured-kernel estimates, precomputed into
profiles/kernel_data.toml by scripts/kernel_data.py, beside the roofline in a plan."""

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

import cli
from compress.planner import kernel_data, make_plan, profiles

ROOT = Path(__file__).resolve().parents[3]
runner = CliRunner()


def _h100_8b(**kw):
    args = {"model": "llama-3.1-8b", "gpu": "h100-sxm", "gpus": 1, "engine": "vllm", "method": "baseline",
            "config": {"dtype": "bfloat16"}, "batch": 1, "cache_tokens": 512, "prompt_tokens": 512}
    return kernel_data.lookup(**{**args, **kw})


def test_table_names_its_tool_and_data_versions():
    data = profiles.load("kernel_data.toml")
    assert data["meta"]["tool"].startswith("aiconfigurator ")
    assert data["entry"] and all(e["data_version"].startswith("vllm ") for e in data["entry"])
    # every row is a catalog model on a GPU profile the planner knows
    assert {e["gpu"] for e in data["entry"]} <= {p.stem for p in (ROOT / "profiles" / "gpus").glob("*.toml")}


def test_lookup_covers_its_grid_and_no_further():
    one = _h100_8b()
    assert one is not None and one["decode_tok_s"] > 0 and one["ttft_single_ms"] > 0
    # batch 8 lies between the table's 4 and 16: its summed speed lies between theirs
    four, eight, sixteen = (_h100_8b(batch=b)["decode_tok_s"] for b in (4, 8, 16))
    assert four < eight < sixteen
    # no extrapolation past the batches or the prompt lengths it holds
    assert _h100_8b(batch=4096) is None
    assert _h100_8b(cache_tokens=65536) is None
    # formats it does not model, and engines it has no data for
    assert _h100_8b(method="gguf", config={"qtype": "Q4_K_M"}) is None
    assert _h100_8b(engine="llama.cpp") is None


def test_plan_shows_both_models_and_ranks_by_the_roofline():
    plan = make_plan("llama-3.1-8b", "h100-sxm", engine="vllm")
    fp16 = plan.candidate("fp16")["predicted"]
    assert fp16["kernel_data"]["decode_tok_s"] > 0 and "aiconfigurator" in fp16["kernel_data"]["source"]
    assert "kernel_data" not in plan.candidate("awq-4-g128")["predicted"]  # AWQ is not in the table
    assert any(n.startswith("Ranked by the roofline") for n in plan.notes)
    wide = runner.invoke(cli.app, ["plan", "-m", "llama-3.1-8b", "-g", "h100-sxm", "--wide"],
                         env={"COLUMNS": "260"})
    assert wide.exit_code == 0 and "kernel-data tok/s" in wide.output


def test_no_kernel_data_where_the_table_has_nothing():
    plan = make_plan("llama-2-7b", "t4")
    assert not any("kernel_data" in c["predicted"] for c in plan.candidates)
    assert not any(n.startswith("Ranked by the roofline") for n in plan.notes)


def test_backtest_scores_the_measured_kernel_model():
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "speed_backtest.py"), "--json"],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    covered = [r for r in rows if "kernel_predicted" in r]
    assert covered and all(r["engine"] == "vllm" for r in covered)
