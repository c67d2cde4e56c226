"""Pareto front over plain records: which items no other item beats on every objective.

Generic and pure, shared by the planner (quality x speed x memory of candidates) and by
``bench`` (measured records). Objectives map a key to ``"min"`` or ``"max"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DIRECTIONS = ("min", "max")


def dominates(a: Mapping[str, Any], b: Mapping[str, Any], objectives: Mapping[str, str]) -> bool:
    """True when ``a`` is at least as good as ``b`` on every objective and better on one."""
    better = False
    for key, direction in objectives.items():
        x, y = (a[key], b[key]) if direction == "max" else (-a[key], -b[key])
        if x < y:
            return False
        better = better or x > y
    return better


def pareto_front(items: list[dict[str, Any]], objectives: dict[str, str]) -> list[bool]:
    """For each item, whether it is on the Pareto front of ``objectives``.

    ``objectives`` maps a key to "min" (lower is better) or "max" (higher is better). Items
    with a missing or None value for any objective are never on the front and never dominate.
    Equal items are all on the front.
    """
    for key, direction in objectives.items():
        if direction not in DIRECTIONS:
            raise ValueError(f"objective {key!r} must be 'min' or 'max', got {direction!r}")
    complete = [all(item.get(k) is not None for k in objectives) for item in items]
    candidates = [item for item, ok in zip(items, complete) if ok]
    return [ok and not any(dominates(other, item, objectives) for other in candidates if other is not item)
            for item, ok in zip(items, complete)]
