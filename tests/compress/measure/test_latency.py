"""Timing loops of the latency tests, run on a runtime whose steps take a known time."""

from __future__ import annotations

import time

import pytest

from compress.errors import UnsupportedError
from compress.measure.latency import batch_rows, measure_decode, measure_prefill


class SleepingRuntime:
    """The adapter interface of compress.measure.runtimes with steps of fixed length."""

    name, max_batch = "sleeping", 2
    prefill_s, step_s = 0.02, 0.005

    def __init__(self):
        self.calls: list[str] = []

    def prefill(self, rows):
        self.calls.append(f"prefill {len(rows)}x{len(rows[0])}")
        time.sleep(self.prefill_s)

    def decode_step(self):
        self.calls.append("step")
        time.sleep(self.step_s)

    def reset(self):
        self.calls.append("reset")


def test_prefill_keeps_the_timed_repetitions_only():
    runtime = SleepingRuntime()
    samples = measure_prefill(runtime, [1, 2, 3], reps=3, warmup=2)
    assert len(samples) == 3 and all(s >= runtime.prefill_s for s in samples)
    assert runtime.calls.count("prefill 1x3") == 5 and runtime.calls[-1] == "reset"


def test_decode_times_each_step_and_not_the_prefill():
    runtime = SleepingRuntime()
    out = measure_decode(runtime, [[1, 2], [3, 4]], tokens=4, reps=2, warmup=1)
    assert len(out["run_s"]) == 2 and len(out["step_s"]) == 8
    assert all(s >= runtime.step_s for s in out["step_s"])
    for run, i in zip(out["run_s"], (0, 4)):
        assert run == pytest.approx(sum(out["step_s"][i:i + 4]))
        assert run < 4 * runtime.step_s + runtime.prefill_s  # the prefill is left out
    assert runtime.calls.count("step") == 12


def test_decode_refuses_what_the_runtime_cannot_run():
    with pytest.raises(ValueError, match="at least one token"):
        measure_decode(SleepingRuntime(), [[1]], tokens=0, reps=1, warmup=0)
    with pytest.raises(UnsupportedError, match="at most 2 sequence"):
        measure_decode(SleepingRuntime(), [[1]] * 3, tokens=1, reps=1, warmup=0)


def test_batch_rows_cuts_different_prompts():
    assert batch_rows(list(range(10)), 2, 3) == [[0, 1, 2], [3, 4, 5]]
    with pytest.raises(ValueError, match="need 12 tokens"):
        batch_rows(list(range(10)), 3, 4)
