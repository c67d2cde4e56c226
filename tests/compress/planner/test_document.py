"""Plans read back from JSON: typed, checked once, and round-tripping keys they do not know."""

from __future__ import annotations

import json

import pytest

from compress.errors import UserInputError
from compress.planner import make_plan
from compress.planner.document import PlanDocument, read_plan


def test_a_written_plan_reads_back_and_round_trips(tmp_path):
    data = json.loads(json.dumps(make_plan("llama-2-7b", "t4").to_dict()))
    data["candidates"][0]["added_by_a_newer_version"] = {"x": 1}
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(data))
    plan = read_plan(path)
    assert plan.to_dict() == data
    assert plan.recommended == data["recommended"] == plan.ranked()[0].variant
    ranks = [c.rank for c in plan.ranked()]
    assert ranks == list(range(1, len(ranks) + 1))
    assert all(c.pareto and c.fits and c.supported for c in plan.pareto())
    assert {c.variant for c in plan.pareto()} == {c["variant"] for c in data["candidates"]
                                                 if c["pareto"] and c["fits"] and c["supported"]}


@pytest.mark.parametrize("text, match", [
    ("{", "plan.json is not valid JSON .*expected the output of `compress plan --format json`"),
    ('{"schema": "other"}', "is not a plan: expected schema 'compress.plan/1', got 'other'"),
    ("[1]", "is not a plan: expected schema 'compress.plan/1', got 'list'"),
    ('{"schema": "compress.plan/1", "candidates": [{"rank": 1}]}', "a plan candidate lacks 'variant'"),
])
def test_bad_plans_are_one_line(tmp_path, text, match):
    path = tmp_path / "plan.json"
    path.write_text(text)
    with pytest.raises(UserInputError, match=match):
        read_plan(path)


def test_dict_and_document_give_the_same_pareto_variants():
    from compress.measure import pareto_candidates

    data = make_plan("llama-2-7b", "a100-80gb-sxm").to_dict()
    assert pareto_candidates(data) == pareto_candidates(PlanDocument.from_dict(data))


def test_predictions_are_typed():
    data = make_plan("llama-2-7b", "t4").to_dict()
    first = data["candidates"][0]
    # Figures written by hand into the JSON come back under the typed fields' names.
    first["predicted"].update(decode_tok_s=12.5, peak_memory_gib=3.25, ttft_ms=None)
    first["predicted"].pop("artifact_gib")
    typed = next(c for c in PlanDocument.from_dict(data).candidates if c.variant == first["variant"]).prediction
    assert (typed.decode_tok_s, typed.peak_memory_gib, typed.ttft_ms, typed.artifact_gib) == (12.5, 3.25, None, None)
    plan = PlanDocument.from_dict(make_plan("llama-2-7b", "t4").to_dict())
    assert all(r.code != "note" for c in plan.candidates for r in c.typed_reasons())
