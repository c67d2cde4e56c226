"""The fleet plan: one model, every GPU profile, one row each."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cli import app
from compress.errors import UserInputError
from compress.planner import list_gpus, make_plan
from compress.planner.fleet import fleet_gpus, fleet_plan, fleet_row, fleet_table


def _plan(recommended, *candidates):
    return {"model": {"name": "m"}, "gpu": {"name": "g", "display_name": "G", "usable_memory_gib": 10.0},
            "recommended": recommended,
            "candidates": [{"variant": v, "method": v, "fits": margin >= 0, "margin_gib": margin,
                            "predicted": {"peak_memory_gib": 10.0 - margin, "decode_tok_s": tok_s}}
                           for v, margin, tok_s in candidates]}


def test_a_row_shows_the_recommended_candidate_or_the_closest_miss():
    row = fleet_row(_plan("q4", ("fp16", -2.0, 50.0), ("q4", 3.0, 90.0), ("q8", 1.0, 70.0)))
    assert (row["fits"], row["variant"], row["margin_gib"], row["decode_tok_s"], row["fitting_options"]) == \
        (True, "q4", 3.0, 90.0, 2)
    row = fleet_row(_plan(None, ("fp16", -6.0, 50.0), ("q4", -0.5, 90.0)))
    assert (row["fits"], row["variant"], row["margin_gib"], row["decode_tok_s"]) == (False, "q4", -0.5, None)


def test_every_profile_gets_a_row_and_the_smallest_fitting_gpu_is_named():
    fleet = fleet_plan("llama-3.1-8b", "all", context=4096)
    assert [r["gpu"] for r in fleet["rows"]] == [g.name for g in list_gpus()]  # smallest memory first
    for row in fleet["rows"]:  # a row that fits holds its peak in the GPU's usable memory
        assert not row["fits"] or 0 < row["peak_memory_gib"] <= row["usable_memory_gib"]
    # 8B parameters at 8 bits are about 8.5 GB: the smallest profile, a 15 GiB T4, holds them.
    assert fleet["smallest_fitting_gpu"] == "t4"


def test_a_model_too_large_for_one_gpu_says_so_on_each_row():
    fleet = fleet_plan("llama-3.1-70b", "l4,rtx-4090", context=131072, batch=64)
    assert [r["fits"] for r in fleet["rows"]] == [False, False] and fleet["smallest_fitting_gpu"] is None
    assert "fits on none" in fleet_table(fleet).notes[-1]


def test_gpu_lists_are_checked():
    assert fleet_gpus(" l4 , cpu ") == ["l4", "cpu"]
    with pytest.raises(UserInputError):
        fleet_gpus(",")
    with pytest.raises(UserInputError, match="GPU"):
        fleet_gpus("l4,h1000")


def test_plan_command_answers_for_a_fleet_in_one_table():
    shown = CliRunner().invoke(app, ["plan", "--model", "smollm2-135m", "--gpu", "all"], env={"COLUMNS": "80"})
    assert shown.exit_code == 0, shown.output
    assert "Fleet plan for smollm2-135m" in shown.output
    for gpu in list_gpus():
        assert gpu.name in shown.output
    assert max(len(line) for line in shown.output.splitlines()) <= 80
    as_json = CliRunner().invoke(app, ["plan", "--model", "smollm2-135m", "--gpu", "l4,cpu", "--format", "json"])
    data = json.loads(as_json.stdout)
    assert data["schema"] == "compress.fleet/1" and [r["gpu"] for r in data["rows"]] == ["l4", "cpu"]
    bad = CliRunner().invoke(app, ["plan", "--model", "smollm2-135m", "--gpu", "l4,nope"])
    assert bad.exit_code != 0
