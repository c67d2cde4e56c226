"""A fleet plan: one model planned for many GPU profiles at once, one row per GPU.

``compress plan --gpu all`` (or ``--gpu l4,a100-80gb-sxm,cpu``) answers a sizing review's
first question, "which of our GPUs can serve this, and how well", in one table: for each
profile the variant :func:`compress.planner.plan.make_plan` recommends (the best fitting
option by the objective), its peak memory and predicted decode speed, or how far the
smallest option falls short. Torch-free like the rest of the planner.
"""

from __future__ import annotations

from typing import Any

from compress.errors import UserInputError
from compress.output import Table
from compress.planner.hardware import list_gpus, load_gpu
from compress.planner.plan import STRUCTURAL, make_plan

SCHEMA = "compress.fleet/1"


def fleet_gpus(text: str) -> list[str]:
    """``all`` → every GPU profile, smallest memory first; else the listed names in the given order."""
    if text.strip().lower() == "all":
        return [g.name for g in list_gpus()]
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise UserInputError(f"--gpu takes a profile name, 'all' or a comma-separated list, got {text!r}")
    for name in names:
        load_gpu(name)  # an unknown name fails here with the list of known ones
    return names


def fleet_plan(model: str, profiles: str, **plan_options: Any) -> dict[str, Any]:
    """Plan ``model`` for every profile in ``profiles`` (``all`` or a comma list); ``plan_options`` are
    :func:`make_plan`'s keywords."""
    rows = []
    for name in fleet_gpus(profiles):
        plan = make_plan(model, name, **plan_options).to_dict()
        rows.append(fleet_row(plan))
    # Serving the model itself beats serving a shrunk one: those rows count only when nothing else fits.
    fitting = [r for r in rows if r["fits"] and r["method"] not in STRUCTURAL] or [r for r in rows if r["fits"]]
    smallest = min(fitting, key=lambda r: r["usable_memory_gib"], default=None)
    return {"schema": SCHEMA, "model": rows[0]["model"] if rows else model, "options": plan_options,
            "rows": rows, "smallest_fitting_gpu": smallest["gpu"] if smallest else None}


def fleet_row(plan: dict[str, Any]) -> dict[str, Any]:
    """One GPU's answer from its plan: the recommended candidate, or the closest one when nothing fits."""
    gpu, cands = plan["gpu"], plan["candidates"]
    best = next((c for c in cands if c["variant"] == plan["recommended"]), None)
    shown = best or max(cands, key=lambda c: c["margin_gib"], default=None)
    p = shown["predicted"] if shown else {}
    return {"model": plan["model"]["name"], "gpu": gpu["name"], "display_name": gpu["display_name"],
            "usable_memory_gib": gpu["usable_memory_gib"], "fits": best is not None,
            "variant": shown["variant"] if shown else None, "method": shown["method"] if shown else None,
            "peak_memory_gib": p.get("peak_memory_gib"), "margin_gib": shown["margin_gib"] if shown else None,
            "decode_tok_s": p.get("decode_tok_s") if best else None,
            "decode_tok_s_band": p.get("decode_tok_s_band") if best else None,
            "ppl_delta_pct": p.get("ppl_delta_pct"), "fitting_options": sum(1 for c in cands if c["fits"])}


def fleet_table(fleet: dict[str, Any]) -> Table:
    """The fleet plan as one table that reads at 80 columns."""
    rows = [[r["gpu"], r["usable_memory_gib"], r["fits"], r["variant"] if r["fits"] else f"({r['variant']})",
             r["peak_memory_gib"], r["margin_gib"], r["decode_tok_s"], r["ppl_delta_pct"]] for r in fleet["rows"]]
    notes = ["GiB: usable memory; variant: the recommended option on that GPU; in brackets, the closest option "
             "when none fits (margin < 0: GiB short).",
             "tok/s: roofline prediction of decode speed; ppl %: published perplexity change of the method."]
    if any(r["fits"] and r["method"] in STRUCTURAL for r in fleet["rows"]):
        notes.append("layerdrop-/distill- rows fit only by shrinking the model (fewer layers): check their "
                     "quality before choosing that GPU.")
    if fleet["smallest_fitting_gpu"]:
        notes.append(f"Smallest GPU that fits {fleet['model']}: {fleet['smallest_fitting_gpu']}.")
    else:
        notes.append(f"{fleet['model']} fits on none of these GPUs: try --gpus N, a shorter --context, "
                     "or plan one GPU for the alternatives.")
    return Table(title=f"Fleet plan for {fleet['model']} (GiB = 2^30 bytes)",
                 columns=["gpu", "GiB", "fits", "variant", "peak GiB", "margin", "tok/s", "ppl %"],
                 rows=rows, notes=notes)
