"""`compress pareto`: one row per (model, variant, device) from bench records.

Each row takes the latest record of each metric (a re-measurement replaces an older
one), marks the rows no other row beats on quality x speed x memory (perplexity lower,
decode tok/s higher, peak memory lower; :func:`compress.pareto.pareto_front`), and sets
the planner's predictions beside the measurements with the error in percent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from compress.measure.metrics import prediction_error_pct
from compress.output import Table
from compress.pareto import pareto_front

GIB = 2**30
MIB = 2**20
OBJECTIVES = {"perplexity": "min", "decode_tok_s": "max", "peak_memory_gib": "min"}
COLUMNS = ["variant", "device", "runtime", "ppl", "tok/s", "TTFT ms", "mem GiB", "size MiB", "pareto",
           "pred tok/s", "tok/s err%", "pred GiB", "mem err%", "Δppl %", "pred Δppl %", "Δppl err%", "KLD",
           "pred KLD", "same top %", "status"]


def _row_key(r: dict[str, Any]) -> tuple[str, str, str, str]:
    return (r.get("model") or "?", r.get("model_fingerprint") or "?", r.get("variant") or "?", r.get("device") or "?")


def latest_by_test_and_metric(records: Sequence[dict[str, Any]]) -> dict[tuple[str, ...], dict[str, Any]]:
    """The newest record of each (row, test, metric); file order breaks timestamp ties (later wins)."""
    latest: dict[tuple[str, ...], tuple[tuple[str, int], dict[str, Any]]] = {}
    for order, r in enumerate(records):
        key = (*_row_key(r), r.get("test") or "?", r.get("metric") or "")
        stamp = (r.get("timestamp") or "", order)
        if key not in latest or stamp >= latest[key][0]:
            latest[key] = (stamp, r)
    return {k: v[1] for k, v in latest.items()}


def pareto_rows(records: Sequence[dict[str, Any]], model: str | None = None) -> list[dict[str, Any]]:
    """Plain dict rows (also what ``--format json`` prints), Pareto-marked and sorted by perplexity."""
    rows: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for key, r in latest_by_test_and_metric(records).items():
        if model and model not in (r.get("model"), r.get("model_fingerprint")):
            continue
        row = rows.setdefault(key[:4], {"model": key[0], "model_fingerprint": key[1], "variant": key[2],
                                        "device": key[3], "runtime": None, "failures": []})
        # The runtime that measured the variant names the row; a size record only names the
        # artifact's own runtime (a GPTQ checkpoint measured with --runtime vllm says transformers).
        if r.get("test") != "size" and r.get("runtime"):
            row["runtime"] = r["runtime"]
        row["runtime"] = row["runtime"] or r.get("runtime")
        if r.get("status") == "failed":
            row["failures"].append(f"{r.get('test')}: {r.get('error')}")
            continue
        if r.get("status") != "ok":
            continue
        metric, value = r.get("metric"), r.get("value")
        if metric == "perplexity":
            row["perplexity"] = value
        elif metric == "decode_tok_s":
            row["decode_tok_s"] = value
            row["predicted_decode_tok_s"] = r.get("predicted")
            row["decode_error_pct"] = r.get("prediction_error_pct")
        elif metric == "ttft_ms" and str(r.get("test", "")).startswith("pp"):
            row["ttft_ms"] = value  # the prefill test's; served tests' TTFT includes queueing under load
        elif metric == "peak_memory_bytes":
            row["peak_memory_gib"] = value / GIB
            row["predicted_peak_memory_gib"] = r["predicted"] / GIB if r.get("predicted") is not None else None
            row["memory_error_pct"] = r.get("prediction_error_pct")
        elif metric == "artifact_bytes":
            row["artifact_mib"] = value / MIB
        elif metric == "ln_ppl_ratio":
            # The perplexity change against the float32 baseline on the same tokens, and the planner's.
            row["ppl_delta_pct"] = 100 * math.expm1(value)
            predicted = r.get("predicted")
            row["predicted_ppl_delta_pct"] = None if predicted is None else 100 * math.expm1(predicted)
            row["ppl_delta_error_pct"] = prediction_error_pct(row["ppl_delta_pct"], row["predicted_ppl_delta_pct"])
        elif metric == "kld_mean":
            row["kld_mean"] = value
            row["predicted_kld_mean"] = r.get("predicted")
            row["kld_error_pct"] = r.get("prediction_error_pct")
        elif metric == "same_top_pct":
            row["same_top_pct"] = value
    out = sorted(rows.values(), key=lambda x: (x["model"], x["device"], x.get("perplexity") or float("inf"), x["variant"]))
    # The front is taken among the variants of one model on one device.
    for group in {(r["model_fingerprint"], r["device"]) for r in out}:
        members = [r for r in out if (r["model_fingerprint"], r["device"]) == group]
        for r, on_front in zip(members, pareto_front(members, OBJECTIVES)):
            r["pareto"] = on_front
    return out


def _ppl(value: float | None) -> str | None:
    return None if value is None else f"{value:.3f}"


def _signed(value: float | None) -> str | None:
    return None if value is None else f"{value:+.2f}"


def _kld(value: float | None) -> str | None:
    return None if value is None else f"{value:.4f}"


def pareto_table(records: Sequence[dict[str, Any]], model: str | None = None) -> Table:
    """The rows as a table; a ``model`` column is added when the records hold more than one model."""
    rows = pareto_rows(records, model)
    models = sorted({r["model"] for r in rows})

    def pct(x: float | None) -> str | None:
        return None if x is None else f"{x:+.0f}"

    # Perplexity differences between variants sit in the second decimal: show three.
    body = [[r["variant"], r["device"], r["runtime"], _ppl(r.get("perplexity")), r.get("decode_tok_s"), r.get("ttft_ms"),
             r.get("peak_memory_gib"), r.get("artifact_mib"), "*" if r.get("pareto") else "",
             r.get("predicted_decode_tok_s"), pct(r.get("decode_error_pct")), r.get("predicted_peak_memory_gib"),
             pct(r.get("memory_error_pct")), _signed(r.get("ppl_delta_pct")), _signed(r.get("predicted_ppl_delta_pct")),
             pct(r.get("ppl_delta_error_pct")), _kld(r.get("kld_mean")), _kld(r.get("predicted_kld_mean")),
             None if r.get("same_top_pct") is None else f"{r['same_top_pct']:.1f}",
             "failed: " + "; ".join(r["failures"]) if r["failures"] else "ok"]
            for r in rows]
    columns = list(COLUMNS)
    compact = ["variant", "device", "runtime", "ppl", "tok/s", "TTFT ms", "mem GiB", "size MiB", "pareto"]
    if len(models) > 1:
        columns.insert(0, "model")
        body = [[r["model"], *row] for r, row in zip(rows, body)]
        compact = ["model", *(c for c in compact if c not in ("runtime", "size MiB"))]
    return Table(
        title=f"Measured variants of {', '.join(models) or 'no model'} "
              "(Pareto: perplexity x decode tok/s x peak memory)",
        columns=columns,
        rows=body,
        notes=["pareto * = no other variant of the model on that device has lower perplexity, higher decode "
               "tok/s and lower peak memory at once.",
               "err% = (measured - predicted) / predicted; the prediction is the planner's for this device profile.",
               "Δppl % = 100 x (exp(ln PPL ratio) - 1) and KLD (nats, mean per token) against the float32 "
               "baseline on the same tokens; same top % = positions where both models' most probable token agree."],
        name="pareto",
        compact=compact,
    )
