"""Harness-vs-bare comparisons: each side alone in its own process, rounds alternating the order."""

from __future__ import annotations

import os
import sys

import pytest

from compress.errors import RuntimeFailure
from compress.measure import childproc, overhead

# A side as the protocol wants it: its runs as one JSON line, then it waits to be told to go,
# leaving its pid in a file so the test can check it is gone afterwards.
SIDE = """
import json, os, sys
open(sys.argv[1], "a").write(f"{os.getpid()}\\n")
print("a library's chatter on stdout")
print(json.dumps({"tok_s": [float(x) for x in sys.argv[2:]]}), flush=True)
sys.stdin.readline()
"""


def _side(pids, *tok_s):
    return lambda: [sys.executable, "-c", SIDE, str(pids), *map(str, tok_s)]


def test_sides_alternate_one_at_a_time_and_leave_nothing_running(tmp_path):
    pids = tmp_path / "pids"
    runs = overhead.alternate({"harness": _side(pids, 9, 11), "bare": _side(pids, 10)}, rounds=3, log=lambda _: None)
    assert [(r.side, r.round_index, r.first) for r in runs] == [
        ("harness", 0, True), ("bare", 0, False), ("bare", 1, True), ("harness", 1, False),
        ("harness", 2, True), ("bare", 2, False)]
    assert runs[0].tok_s == (9.0, 11.0)
    assert all("on core" in r.binding for r in runs)  # read while the side still ran
    started = [int(x) for x in pids.read_text().split()]
    assert len(started) == 6 and not any(childproc.group_alive(pid) for pid in started)


def test_a_side_that_fails_says_why_in_one_line(tmp_path):
    crash = [sys.executable, "-c", "import sys; sys.exit('ImportError: no engine here')"]
    with pytest.raises(RuntimeFailure, match="exited .* before reporting its runs: ImportError: no engine here"):
        overhead.run_side(crash)


def test_the_difference_is_taken_per_order_and_over_all_rounds():
    c = overhead.Comparison("harness", "bare", [
        overhead.SideRun("harness", 0, True, (8.0, 8.0), "x"), overhead.SideRun("bare", 0, False, (10.0,), "y"),
        overhead.SideRun("bare", 1, True, (10.0,), "y"), overhead.SideRun("harness", 1, False, (9.0,), "x")])
    # harness first: median 8 against the bare loop's 10 when it ran second
    assert c.difference_pct(True) == pytest.approx(-20.0)
    assert c.difference_pct(False) == pytest.approx(-10.0)
    assert c.difference_pct(None) == pytest.approx(-20.0)  # median of 8, 8, 9 against 10
    assert c.round_differences_pct() == pytest.approx([-20.0, -10.0])
    lines = overhead.summary(c, {"harness": "compress bench", "bare": "a bare loop"})
    assert all(len(line) <= 80 for line in lines)
    assert "harness first -20.0%, harness second -10.0%, all runs pooled -20.0%" in lines
    assert "per round: -20.0%, -10.0%" in lines


def test_cpu_binding_names_the_cores_of_this_process():
    cores = sorted(os.sched_getaffinity(0))
    text = childproc.cpu_binding(os.getpid())
    assert "thread" in text and (f"core {cores[0]}" if len(cores) == 1 else f"cores {cores[0]}") in text
