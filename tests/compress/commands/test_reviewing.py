"""`compress review` sizes the deployment with the same options as `compress plan`."""

import json

from typer.testing import CliRunner

import cli

SIZING = ["-m", "llama-2-7b", "-g", "t4", "--objective", "speed", "--headroom", "10%", "--kv-dtype", "fp8",
          "--context", "2048", "--batch", "2", "--engine", "llama.cpp"]


def _json(args: list[str]) -> dict:
    result = CliRunner().invoke(cli.app, [*args, "-f", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_review_plans_with_the_options_plan_takes():
    reviewed = _json(["review", *SIZING])["plan"]
    planned = _json(["plan", *SIZING])
    assert reviewed["options"]["objective"] == "speed" and reviewed["options"]["kv_dtype"] == "fp8"
    assert reviewed["options"] == planned["options"]
    assert reviewed["recommended"] == planned["recommended"]
    assert {c["runtime"] for c in reviewed["candidates"]} == {"llama.cpp"}
