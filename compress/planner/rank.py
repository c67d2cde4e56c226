"""Ranking candidates by an objective and marking the quality x speed x memory Pareto front."""

from __future__ import annotations

from typing import Any

from compress import methods
from compress.pareto import pareto_front

OBJECTIVES = ("balanced", "quality", "speed", "memory")
#: Methods whose result is a different (smaller) model rather than a format of the same one.
STRUCTURAL = tuple(d.name for d in methods.descriptors() if not d.stores_weights)
#: Pareto objectives over a candidate's "predicted" figures.
PARETO = {"ppl_delta_pct": "min", "decode_tok_s": "max", "peak_memory_gib": "min"}
#: Weights of the balanced score: quality first, then speed, then memory left.
BALANCED_WEIGHTS = {"quality": 0.45, "speed": 0.35, "memory": 0.20}
#: Perplexity increase (%) at which the quality utility halves: 1 / (1 + delta / 2).
QUALITY_HALF_PCT = 2.0


def quality_utility(ppl_delta_pct: float | None) -> float:
    """1 for no loss, 0.5 at +2% perplexity, 0 when the loss is unknown (nothing published)."""
    if ppl_delta_pct is None:
        return 0.0
    return 1.0 / (1.0 + max(ppl_delta_pct, 0.0) / QUALITY_HALF_PCT)


def score(candidate: dict[str, Any], best_tok_s: float, least_memory_gib: float, objective: str) -> float:
    """Higher is better. quality: -ppl delta; speed: tok/s; memory: -GiB; balanced: weighted utilities."""
    p = candidate["predicted"]
    delta = p["ppl_delta_pct"]
    if objective == "quality":
        return -(delta if delta is not None else 1e6) + 1e-6 * p["decode_tok_s"]
    if objective == "speed":
        return p["decode_tok_s"]
    if objective == "memory":
        return -p["peak_memory_gib"]
    w = BALANCED_WEIGHTS
    return (w["quality"] * quality_utility(delta) + w["speed"] * p["decode_tok_s"] / best_tok_s
            + w["memory"] * least_memory_gib / p["peak_memory_gib"])


def rank(candidates: list[dict[str, Any]], objective: str) -> list[dict[str, Any]]:
    """Candidates with "pareto", "rank" and "score" set; those that do not fit get rank/score None.

    Returned in rank order (fitting ones first), the rest by how close they came to fitting.
    """
    fitting = [c for c in candidates if c["fits"]]
    front = pareto_front([c["predicted"] for c in fitting], PARETO)
    on_front = {id(c) for c, f in zip(fitting, front) if f}
    best_tok_s = max((c["predicted"]["decode_tok_s"] for c in fitting), default=1.0)
    least_gib = min((c["predicted"]["peak_memory_gib"] for c in fitting), default=1.0)
    # Recipes that swap the model for a smaller one (layer drop, distillation) rank after every
    # fitting format of the model itself: they need a training run and change what is served.
    direct_fits = any(c["method"] not in STRUCTURAL for c in fitting)
    scored = sorted(fitting, key=lambda c: (not (direct_fits and c["method"] in STRUCTURAL),
                                            score(c, best_tok_s, least_gib, objective)), reverse=True)
    out = [{**c, "pareto": id(c) in on_front, "rank": i + 1,
            "score": round(score(c, best_tok_s, least_gib, objective), 4)} for i, c in enumerate(scored)]
    rest = sorted((c for c in candidates if not c["fits"]), key=lambda c: -c["margin_gib"])
    return out + [{**c, "pareto": False, "rank": None, "score": None} for c in rest]
