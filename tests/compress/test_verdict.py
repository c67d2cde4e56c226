"""The verdict block: wrapped to the terminal, a number never parted from its unit or its name."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("gpu", ["t4", "rtx-4090", "cpu"])
@pytest.mark.parametrize("width", [64, 80])
def test_numbers_keep_their_units_when_the_verdict_wraps(gpu, width):
    run = subprocess.run([sys.executable, "cli.py", "plan", "--model", "llama-2-7b", "--gpu", gpu, "--brief"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "COLUMNS": str(width), "COMPRESS_AUTO_PROBE": "0"})
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith("Verdict") and all(len(line) <= width for line in lines[:2]), run.stdout
    for above, below in zip(lines, lines[1:]):
        parted = re.search(r"\d$", above) and re.match(r"\s+\(?(GiB|GB|ms|tok/s|tokens)\b", below)
        named = re.search(r"\b(batch|context)$", above) and re.match(r"\s+\d", below)
        assert not (parted or named), f"split between lines:\n{above}\n{below}"
