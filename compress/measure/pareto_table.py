"""`compress pareto`: one row per (model, variant, device, setting) from bench records.

Each row takes the latest record of each metric (a re-measurement replaces an older
one), marks the rows no other row beats on quality x speed x memory (perplexity lower,
decode tok/s higher, peak memory lower; :func:`compress.pareto.pareto_front`), and sets
the planner's predictions beside the measurements with the error in percent (the views
pass records through :func:`compress.measure.predictions.with_current_predictions` first,
so the predictions are today's unless asked for as recorded).

Settings are part of a row's identity: records of one variant measured from another version
of the model file, with another perplexity convention or token count, or with every artifact
run in one chosen runtime, are a row of their own, labelled by what differs (``setting``).
A test that failed shows ``failed: <cause>`` in its cells instead of a figure.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from compress import metrics, results
from compress.measure.metrics import prediction_error_pct
from compress.output import Table
from compress.pareto import pareto_front

FIXED_COLUMNS = ["variant", "device", "runtime"]
WHOLE_VARIANT_TESTS = ("apply", "load")
FAILED_CELL_CHARS = 18  # "failed: " and the start of the cause, within an 80-column view; --wide has it whole
FAILED_WORD_CHARS = 7


def _columns() -> list[str]:
    """The table's columns from the metric specs: the compact figures, the front mark, then each
    metric's other columns (its figure where not compact, the planner's, the error), and the status."""
    first = [m.column.title for m in metrics.shown() if m.column.compact]
    rest = [title for m in metrics.shown()
            for title in ([] if m.column.compact else [m.column.title]) + [m.column.predicted_title, m.column.error_title]
            if title]
    return [*FIXED_COLUMNS, *first, "pareto", *rest, "status"]


COLUMNS = _columns()


def front_metrics() -> list[metrics.Metric]:
    """The metrics the front is taken over, in spec order."""
    return [m for m in metrics.shown() if m.column.pareto]


def _front_means() -> str:
    """What being on the front means, in words."""
    better = [f"{'higher' if m.higher_is_better else 'lower'} {m.words}" for m in front_metrics()]
    return f"no other variant of the model on that device has {', '.join(better[:-1])} and {better[-1]} at once"


#: The keys of a row the front is taken over, and which way each is better.
OBJECTIVES = {m.column.key: m.direction for m in front_metrics()}
FRONT_MEANS = _front_means()


def _setting(r: dict[str, Any]) -> tuple[str, str, str, str]:
    """What a record was measured with that changes its figures: the perplexity convention,
    the tokens scored, the runtime chosen for every artifact (``bench --runtime``) and the
    KV-cache type asked for (``bench --kv-dtype``)."""
    s = r.get("bench_settings") or {}
    return (s.get("ppl_convention") or "compress", str(s.get("ppl_tokens") or ""), s.get("runtime") or "",
            s.get("kv_dtype") or "")


def row_key(r: dict[str, Any]) -> tuple[Any, ...]:
    """The row a record belongs to: model, file fingerprint, variant, device and setting."""
    return _row_key(r)


def _row_key(r: dict[str, Any]) -> tuple[Any, ...]:
    return (r.get("model") or "?", r.get("model_fingerprint") or "?", r.get("variant") or "?", r.get("device") or "?",
            _setting(r))


def latest_by_test_and_metric(records: Sequence[dict[str, Any]]) -> dict[tuple[Any, ...], dict[str, Any]]:
    """The newest record of each (row, test, metric) (results.newest)."""
    return results.newest(records, lambda r: (*_row_key(r), r.get("test") or "?", r.get("metric") or ""))


def measured_runtime(r: dict[str, Any]) -> str | None:
    """The runtime a record's test ran in: the one bench was told to run every artifact in
    (``bench --runtime``), else the record's own. A load that failed in vLLM is recorded with
    the artifact's runtime (a GPTQ checkpoint says transformers) and the run's setting says vllm."""
    return (r.get("bench_settings") or {}).get("runtime") or r.get("runtime")


def setting_letters(rows: Sequence[dict[str, Any]]) -> dict[str, str]:
    """A letter for each setting that tells rows of one variant apart (A, B, ...), in row order;
    the table and the report's plots name a setting by its letter, the notes spell it out."""
    settings = dict.fromkeys(r["setting"] for r in rows if r.get("setting"))
    return {text: chr(ord("A") + i) for i, text in enumerate(settings)}


def failure_text(reason: str | None, status: str = "failed", limit: int = FAILED_CELL_CHARS) -> str:
    """``failed: <cause>`` cut to ``limit`` characters, for a cell where a figure would be."""
    cause = (reason or "no reason recorded").splitlines()[0]
    cause = re.sub(r"^\w+(Error|Failure|Exception): ", "", cause)  # the exception's class says little here
    # A word no longer than "failed:", so that the cell wraps instead of widening its column.
    words = [w if len(w) <= FAILED_WORD_CHARS else w[: FAILED_WORD_CHARS - 1] + "…" for w in cause.split()]
    text = " ".join([f"{status}:", *words])
    return text if len(text) <= limit else text[: limit - 1] + "…"


def pareto_rows(records: Sequence[dict[str, Any]], model: str | None = None) -> list[dict[str, Any]]:
    """Plain dict rows (also what ``--format json`` prints), Pareto-marked and sorted by perplexity."""
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    newest_ok: dict[tuple[Any, ...], str] = {}  # (row, test kind) → newest OK record's timestamp
    for key, r in latest_by_test_and_metric(records).items():
        if model and model not in (r.get("model"), r.get("model_fingerprint")):
            continue
        row = rows.setdefault(key[:5], {"model": key[0], "model_fingerprint": key[1], "variant": key[2],
                                        "device": key[3], "runtime": None, "failures": [], "failed": {},
                                        "prediction_changed": [], "prediction_notes": [],
                                        "results_files": [], "_setting": key[4], "key": key[:5]})
        if r.get("results_file") and r["results_file"] not in row["results_files"]:
            row["results_files"].append(r["results_file"])
        # The runtime that measured the variant names the row; a size record only names the
        # artifact's own runtime (a GPTQ checkpoint measured with --runtime vllm says transformers).
        if r.get("test") != "size" and measured_runtime(r):
            row["runtime"] = measured_runtime(r)
        row["runtime"] = row["runtime"] or r.get("runtime")
        if r.get("status") in ("failed", "skipped"):
            row["failed"].setdefault(r.get("test") or "?", (r.get("timestamp") or "", r.get("status"), r.get("error")))
            if r.get("status") == "failed":
                row["failures"].append(f"{r.get('test')}: {r.get('error')}")
            continue
        if r.get("status") != "ok":
            continue
        test_kind = _test_kind(r.get("test"))
        for kind in (test_kind, "*"):
            newest_ok[(*key[:5], kind)] = max(newest_ok.get((*key[:5], kind), ""), r.get("timestamp") or "")
        if r.get("prediction_changed"):
            row["prediction_changed"].append(_short_name(r["metric"]))
        if r.get("prediction_note") and r["prediction_note"] not in row["prediction_notes"]:
            row["prediction_notes"].append(r["prediction_note"])
        _take(row, r)
    for key, row in rows.items():
        # A failure a later measurement of the same test superseded is history, not the row's state.
        row["failed"] = {test: (status, error) for test, (stamp, status, error) in row["failed"].items()
                         if stamp >= newest_ok.get((*key, _test_kind(test)), "")}
        row["failures"] = [f"{test}: {error}" for test, (status, error) in row["failed"].items() if status == "failed"]
    out = sorted(rows.values(), key=lambda x: (x["model"], x["device"], x.get("perplexity") or float("inf"),
                                               x["variant"]))
    _label_settings(out)
    # The front is taken among the variants of one model on one device.
    for group in {(r["model_fingerprint"], r["device"]) for r in out}:
        members = [r for r in out if (r["model_fingerprint"], r["device"]) == group]
        for r, on_front in zip(members, pareto_front(members, OBJECTIVES)):
            r["pareto"] = on_front
    return out


def _test_kind(test: str | None) -> str:
    """``pp128`` → ``pp``, ``tg32`` → ``tg``, ``ppl`` and the rest as they are."""
    test = test or "?"
    for kind in ("ppl", "pp", "tg", "batch", "serve"):
        if test.startswith(kind):
            return kind
    return test


def _take(row: dict[str, Any], r: dict[str, Any]) -> None:
    """Put an OK record's figure, in its shown unit, into its row, with the planner's figure and the
    error beside it where the metric's column has them."""
    metric = metrics.METRICS.get(r.get("metric") or "")
    if metric is None or metric.column is None or not metric.read_from(r.get("test")) or r.get("value") is None:
        return
    column = metric.column
    row[column.key] = column.shown(r["value"])
    if column.predicted_title:
        predicted = None if r.get("predicted") is None else column.shown(r["predicted"])
        row[column.predicted_key] = predicted
        if column.error_key:
            row[column.error_key] = prediction_error_pct(row[column.key], predicted)


def _label_settings(rows: list[dict[str, Any]]) -> None:
    """``setting``: what tells a row from the other rows of its variant (None where every variant of
    the model on the device has one row): the model file's fingerprint, the perplexity convention,
    the tokens scored, the chosen runtime, the KV-cache type; the same parts for every row of the model, so that one
    label means one setting."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["model"], r["device"]), []).append(r)
    for members in groups.values():
        variants = [m["variant"] for m in members]
        if len(set(variants)) == len(variants):
            for m in members:
                m["setting"] = None
            continue
        differs = [len({m["model_fingerprint"] for m in members}) > 1,
                   *(len({m["_setting"][i] for m in members}) > 1 for i in range(4))]
        for m in members:
            convention, tokens, runtime, kv = m["_setting"]
            parts = [f"file {m['model_fingerprint'][:6]}" if differs[0] else "",
                     f"ppl {convention}" if differs[1] else "", f"{tokens} tok" if differs[2] and tokens else "",
                     f"via {runtime or 'own runtime'}" if differs[3] else "",
                     f"KV {kv or 'default'}" if differs[4] else ""]
            m["setting"] = ", ".join(p for p in parts if p) or None
    for r in rows:
        del r["_setting"]


def _short_name(metric: str) -> str:
    """A metric as the status column names it: its column title, else its record name."""
    spec = metrics.METRICS.get(metric)
    return spec.column.title if spec is not None and spec.column is not None else metric


def _metric_cells(r: dict[str, Any]) -> dict[str, Any]:
    """A row's figure cells by column title: each shown metric's figure, the planner's and the error."""
    cells: dict[str, Any] = {}
    for m in metrics.shown():
        c = m.column
        cells[c.title] = c.format(r.get(c.key))
        if c.predicted_title:
            cells[c.predicted_title] = c.format(r.get(c.predicted_key))
        if c.error_title:
            error = r.get(c.error_key)
            cells[c.error_title] = None if error is None else f"{error:+.0f}"
    return cells


def _failed_columns(test: str) -> tuple[str, ...]:
    """The figure columns a failure of ``test`` leaves without a figure (a whole-variant test: the first)."""
    if test in WHOLE_VARIANT_TESTS:
        return (metrics.shown()[0].column.title,)
    return tuple(m.column.title for m in metrics.shown() if m.tests and m.read_from(test))


def _cells(r: dict[str, Any]) -> dict[str, Any]:
    """A row's table cells by column, failed tests' cells saying why."""
    cells = {"variant": r["variant"], "device": r["device"], "runtime": r["runtime"], **_metric_cells(r),
             "pareto": "*" if r.get("pareto") else "", "status": _status(r)}
    compact = [m.column.title for m in metrics.shown() if m.column.compact]
    for test, (status, error) in (r.get("failed") or {}).items():
        for column in _failed_columns(test):
            if cells[column] is None:
                cells[column] = failure_text(error, status)
        if test in WHOLE_VARIANT_TESTS:  # the cause once, the other figures blank rather than "-" (nothing was measured)
            for column in compact[1:]:
                cells[column] = "" if cells[column] is None else cells[column]
    return cells


def _status(r: dict[str, Any]) -> str:
    parts = ["failed: " + "; ".join(r["failures"])] if r.get("failures") else []
    if r.get("prediction_changed"):
        parts.append("prediction changed: " + ", ".join(sorted(set(r["prediction_changed"]))))
    parts += r.get("prediction_notes") or []
    return "; ".join(parts) or "ok"


def pareto_table(records: Sequence[dict[str, Any]], model: str | None = None, as_recorded: bool = False) -> Table:
    """The rows as a table; a ``model`` column is added when the records hold more than one model,
    a ``setting`` column when a variant has rows of several settings. ``as_recorded``: the
    records carry the predictions made when they were measured (said in the notes)."""
    rows = pareto_rows(records, model)
    models = sorted({r["model"] for r in rows})
    columns = list(COLUMNS)
    body = [[_cells(r)[c] for c in COLUMNS] for r in rows]
    compact = [*FIXED_COLUMNS, *(m.column.title for m in metrics.shown() if m.column.compact), "pareto"]
    # A setting is a letter in the table (the notes spell it out), so the view still fits 80 columns.
    letters = setting_letters(rows)
    if letters:
        columns.insert(1, "setting")
        body = [[row[0], letters.get(r.get("setting"), ""), *row[1:]] for r, row in zip(rows, body)]
        compact = [c for c in compact if c != "device"]
        compact.insert(1, "setting")
    if len(models) > 1:
        columns.insert(0, "model")
        body = [[r["model"], *row] for r, row in zip(rows, body)]
        compact = ["model", *(c for c in compact if c not in ("runtime", "size MiB", "device"))]
    changed = sum(bool(r.get("prediction_changed")) for r in rows)
    whose = ("the prediction stored in each record when it was measured (--as-recorded)" if as_recorded else
             "today's planner's prediction for the record's model, device profile, runtime and settings"
             + (f"; {changed} row(s) were predicted differently when measured (see status, or --as-recorded)"
                if changed else ""))
    return Table(
        title=f"Measured variants of {', '.join(models) or 'no model'} "
              f"(Pareto: {' x '.join(m.words for m in front_metrics())})",
        columns=columns,
        rows=body,
        notes=[f"pareto * = {FRONT_MEANS}.",
               f"err% = (measured - predicted) / predicted; the prediction is {whose}.",
               "Δppl % = 100 x (exp(ln PPL ratio) - 1) and KLD (nats, mean per token) against the float32 "
               "baseline on the same tokens; same top % = positions where both models' most probable token agree."]
              + ([f"setting = what tells rows of one variant apart (model file, perplexity convention, tokens "
                  f"scored, runtime, KV cache): {'; '.join(f'{letter} = {text}' for text, letter in letters.items())}."]
                 if letters else []),
        name="pareto",
        compact=compact,
    )
