"""Which test names a bench runs: the closed-loop and open-loop served tests are chosen apart."""

from __future__ import annotations

import pytest

from compress.errors import UserInputError
from compress.measure.settings import BenchSettings, plan_tests


def _names(**overrides) -> list[str]:
    return [t for t in plan_tests(BenchSettings(**overrides), threads=2) if t not in ("size", "memory")]


def test_serve_is_the_closed_loop_sweep_alone():
    assert _names(tests=("serve",), serve_concurrency=(1, 4)) == ["serve-c1", "serve-c4"]


def test_serve_rate_is_the_open_loop_run_alone():
    assert _names(tests=("serve-rate",), serve_rate_per_s=3.0) == ["serve-rate3"]


def test_both_served_kinds_run_together_in_order():
    assert _names(tests=("serve", "serve-rate"), serve_concurrency=(2,)) == ["serve-c2", "serve-rate2"]


def test_a_served_test_keeps_its_key_whichever_other_kind_runs_beside_it():
    """A closed-loop record measured beside the open-loop run is reused by --resume without it."""
    alone = plan_tests(BenchSettings(tests=("serve",)), threads=2)
    both = plan_tests(BenchSettings(tests=("serve", "serve-rate")), threads=2)
    assert alone["serve-c1"]["settings_key"] == both["serve-c1"]["settings_key"]


def test_an_unknown_test_name_lists_the_valid_ones():
    with pytest.raises(UserInputError, match="serve, serve-rate"):
        BenchSettings(tests=("serve-open",))
