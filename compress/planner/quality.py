"""Expected quality change of a variant: a perplexity delta from published tables.

Entries live in ``profiles/quality.toml``; for a variant the entry measured on the model
closest in parameter count (log scale) is used. Changes of steps in a recipe multiply
(``wanda-50+gptq-4``: ppl ratio of pruning times ratio of quantizing), an approximation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from compress import variants
from compress.planner import profiles
from compress.planner.spec import ModelSpec


@dataclass(frozen=True)
class QualityEstimate:
    ppl_delta_pct: float | None
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {"ppl_delta_pct": self.ppl_delta_pct, "quality_source": self.source}


def _closest(entries: list[dict[str, Any]], params: int) -> dict[str, Any] | None:
    if not entries:
        return None
    return min(entries, key=lambda e: abs(math.log(e["reference_params_b"] * 1e9 / params)))


def _entries(key: str) -> list[dict[str, Any]]:
    return [e for e in profiles.load("quality.toml").get("entry", []) if e["variant"] == key]


def _describe(e: dict[str, Any], note: str = "") -> str:
    return f"{e['source']} ({e['reference']}, {e['dataset']}: {e['baseline_ppl']} -> {e['ppl']}){note}"


def _step_estimate(step: variants.Step, spec: ModelSpec) -> tuple[float | None, str]:
    """(ppl ratio, source) for one step; ratio None when nothing is published."""
    c = step.config
    where = step.descriptor.quality_source(step.settings)
    if where.kind == "reference":
        return 1.0, "reference precision (no change)"
    if where.kind == "layerdrop":
        return _layerdrop_ratio(c["drop_layers"] / spec.layers, spec)
    if where.kind == "none":
        return None, where.note
    name = variants.step_name(step)
    for i, key in enumerate(where.keys):
        entry = _closest(_entries(key), spec.params)
        if entry:
            note = "" if i == 0 else f"; group size {c['group_size']} / act-order not tabulated, g128 figure used"
            return entry["ppl"] / entry["baseline_ppl"], _describe(entry, note)
    return None, f"no published perplexity for {name} in profiles/quality.toml"


def _layerdrop_ratio(fraction: float, spec: ModelSpec) -> tuple[float | None, str]:
    curves = profiles.load("quality.toml").get("layerdrop", [])
    curve = _closest(curves, spec.params)
    if curve is None:
        return None, "no layer-drop data in profiles/quality.toml"
    points = [(0.0, curve["baseline_ppl"]), *[(float(f), float(p)) for f, p in curve["points"]]]
    (f0, p0), (f1, p1) = points[-2], points[-1]
    for a, b in zip(points, points[1:]):
        if fraction <= b[0]:
            (f0, p0), (f1, p1) = a, b
            break
    ppl = p0 + (p1 - p0) * (fraction - f0) / (f1 - f0)
    note = "; extrapolated past 20% (optimistic)" if fraction > points[-1][0] else ""
    return ppl / curve["baseline_ppl"], (f"{curve['source']} ({curve['reference']}, {curve['dataset']}), "
                                         f"interpolated at {fraction:.0%} of layers dropped{note}")


def estimate(spec: ModelSpec, variant: variants.Variant | str) -> QualityEstimate:
    """Expected relative perplexity change (%) of ``variant`` on ``spec``, with its source."""
    v = variants.parse(variant) if isinstance(variant, str) else variant
    ratio, sources = 1.0, []
    for step in v.steps:
        r, source = _step_estimate(step, spec)
        sources.append(source)
        if r is None:
            return QualityEstimate(None, "; ".join(sources))
        ratio *= r
    return QualityEstimate(round(100 * (ratio - 1), 3), "; ".join(sources))
