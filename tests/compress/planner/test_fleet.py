"""The fleet plan: one model, every GPU profile, one row each."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cli import app
from compress.errors import UserInputError
from compress.planner import list_gpus, make_plan
from compress.planner.fleet import fleet_gpus, fleet_plan, fleet_table


def test_every_profile_gets_the_row_its_own_plan_gives():
    fleet = fleet_plan("llama-3.1-8b", "all", context=4096)
    assert [r["gpu"] for r in fleet["rows"]] == [g.name for g in list_gpus()]  # smallest memory first
    for row in fleet["rows"]:
        plan = make_plan("llama-3.1-8b", row["gpu"], context=4096)
        assert row["fits"] == (plan.recommended is not None)
        if row["fits"]:
            best = plan.candidate(plan.recommended)
            assert row["variant"] == plan.recommended and row["margin_gib"] >= 0
            assert row["decode_tok_s"] == best["predicted"]["decode_tok_s"]
        else:
            assert row["margin_gib"] < 0 and row["decode_tok_s"] is None
    fitting = [r for r in fleet["rows"] if r["fits"]]
    assert fleet["smallest_fitting_gpu"] == min(fitting, key=lambda r: r["usable_memory_gib"])["gpu"]


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
