"""`apply --plan` picks its variant from a plan file through the typed plan reader."""

from __future__ import annotations

import json

import pytest

from compress.commands.applying import _from_plan
from compress.errors import UserInputError
from compress.planner import make_plan


def test_plan_gives_the_recommended_or_the_nth_ranked_variant(tmp_path):
    # a plan for the default model: apply refuses a plan made for another model (test_cli_plan.py)
    data = make_plan("smollm2-135m", "cpu").to_dict()
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(data))
    ranked = sorted((c for c in data["candidates"] if c["rank"]), key=lambda c: c["rank"])
    assert _from_plan(path, None, "default") == ("default", data["recommended"])
    assert _from_plan(path, 2, "my-model") == ("my-model", ranked[1]["variant"])
    with pytest.raises(UserInputError, match=rf"--candidate must be between 1 and {len(ranked)}"):
        _from_plan(path, len(ranked) + 1, "default")
    data["recommended"] = None
    path.write_text(json.dumps(data))
    with pytest.raises(UserInputError, match="recommends nothing"):
        _from_plan(path, None, "default")
