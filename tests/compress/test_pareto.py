"""The generic Pareto front."""

import pytest

from compress.pareto import pareto_front

OBJ = {"ppl": "min", "speed": "max"}


def test_front_with_dominated_item():
    items = [{"ppl": 1.0, "speed": 10}, {"ppl": 2.0, "speed": 20}, {"ppl": 2.5, "speed": 15}]
    assert pareto_front(items, OBJ) == [True, True, False]


def test_none_is_never_on_the_front_and_never_dominates():
    items = [{"ppl": None, "speed": 100}, {"ppl": 3.0, "speed": 5}, {"speed": 1000}]
    assert pareto_front(items, OBJ) == [False, True, False]


def test_equal_items_are_both_on_the_front():
    items = [{"ppl": 1.0, "speed": 10}, {"ppl": 1.0, "speed": 10}]
    assert pareto_front(items, OBJ) == [True, True]


def test_bad_direction():
    with pytest.raises(ValueError):
        pareto_front([{"a": 1}], {"a": "up"})
