"""`make demo` leaves the checkout clean: everything it writes is in a git-ignored place."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _demo_commands() -> list[str]:
    text = (ROOT / "Makefile").read_text()
    variables = dict(re.findall(r"^([A-Z_]+)\s*:?=\s*(.+)$", text, re.M))
    recipe = re.search(r"^demo:.*\n((?:\t.*\n)+)", text, re.M).group(1)
    lines = [line.strip() for line in recipe.splitlines()]
    return [re.sub(r"\$\(([A-Z_]+)\)", lambda m: variables.get(m.group(1), m.group(0)), line) for line in lines]


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="needs a git checkout")
def test_demo_writes_only_ignored_paths():
    commands = _demo_commands()
    written = []
    for command in commands:
        args = command.split()
        if "bench" in args:
            assert "--results" in args, f"bench in the demo must write outside the tracked results/: {command}"
        # bench appends to --results; report and others write -o/--output files, apply an --out-dir
        written += [args[i + 1] for i, a in enumerate(args) if a in ("--results", "-o", "--output", "--out-dir")]
    assert written, commands
    for path in written:
        ignored = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT).returncode == 0
        assert ignored, f"make demo writes {path}, which git would show as a change"
