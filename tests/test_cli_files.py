"""Files the commands write get the mode an ordinary program would give them: 0666 less the umask."""

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

import cli

RESULTS = Path(__file__).resolve().parents[1] / "results" / "bench.jsonl"


@pytest.mark.parametrize("umask", [0o022, 0o007])
def test_plan_review_and_report_files_follow_the_umask(tmp_path, umask):
    runs = {
        "plan.json": ["plan", "-m", "smollm2-135m", "-g", "t4", "-o"],
        "review.md": ["review", "-m", "smollm2-135m", "-g", "t4", "--results", str(RESULTS), "-o"],
        "report.html": ["report", "--results", str(RESULTS), "-o"],
    }
    old = os.umask(umask)
    try:
        for name, args in runs.items():
            result = CliRunner().invoke(cli.app, [*args, str(tmp_path / name)])
            assert result.exit_code == 0, result.output
    finally:
        os.umask(old)
    modes = {name: (tmp_path / name).stat().st_mode & 0o777 for name in runs}
    assert modes == dict.fromkeys(runs, 0o666 & ~umask)
