"""Ranking candidates: utilities by hand, objectives, the Pareto front, structural recipes last."""

from __future__ import annotations

import pytest

from compress.planner.rank import quality_delta, quality_utility, rank


def _candidate(variant, tok_s, gib, ppl, fits=True, method="gguf", margin=1.0, measured=None):
    return {"variant": variant, "method": method, "fits": fits, "margin_gib": margin if fits else -margin,
            "predicted": {"decode_tok_s": tok_s, "peak_memory_gib": gib, "ppl_delta_pct": ppl},
            **({"measured": measured} if measured else {})}


def test_quality_utility_by_hand():
    assert quality_utility(None) == 0.0  # nothing published: no credit
    assert quality_utility(0.0) == 1.0 and quality_utility(-1.0) == 1.0  # a gain counts as no loss
    assert quality_utility(2.0) == pytest.approx(0.5) and quality_utility(6.0) == pytest.approx(0.25)


def test_a_measured_change_wins_over_the_prediction():
    assert quality_delta(_candidate("q4", 10, 4, 3.0)) == 3.0
    assert quality_delta(_candidate("q4", 10, 4, 3.0, measured={"ppl_delta_pct": 1.5})) == 1.5


def test_each_objective_puts_its_best_first_and_misses_go_last_by_margin():
    cands = [_candidate("fast", 100, 8, 4.0), _candidate("small", 40, 3, 6.0), _candidate("exact", 30, 14, 0.0),
             _candidate("worse", 20, 16, 8.0),  # slower, larger and worse than "fast": dominated
             _candidate("far", 90, 40, 1.0, fits=False, margin=20), _candidate("near", 90, 30, 1.0, fits=False)]
    first = {objective: rank(cands, objective)[0]["variant"] for objective in ("speed", "memory", "quality")}
    assert first == {"speed": "fast", "memory": "small", "quality": "exact"}
    ranked = rank(cands, "balanced")
    assert [c["rank"] for c in ranked] == [1, 2, 3, 4, None, None]
    assert [c["variant"] for c in ranked[-2:]] == ["near", "far"]  # closest to fitting first
    assert {c["variant"] for c in ranked if c["pareto"]} == {"fast", "small", "exact"}
    # balanced, by hand for "fast": 0.45 x 1/(1 + 4/2) + 0.35 x 100/100 + 0.20 x 3/8
    fast = next(c for c in ranked if c["variant"] == "fast")
    assert fast["score"] == pytest.approx(0.45 / 3 + 0.35 + 0.2 * 3 / 8, abs=1e-4)


def test_a_smaller_model_ranks_after_every_fitting_format_of_the_model_itself():
    cands = [_candidate("q2", 50, 3, 30.0), _candidate("layerdrop-8", 500, 1, 0.5, method="layerdrop")]
    assert [c["variant"] for c in rank(cands, "speed")] == ["q2", "layerdrop-8"]
    # alone, it is ranked like any other fitting candidate
    assert rank(cands[1:], "speed")[0]["rank"] == 1
