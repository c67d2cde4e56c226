"""`compress review`: a pre-deployment sizing review of one model on one GPU (or this CPU).

Markdown for a pull request or a ticket, and the same content as HTML through the report's
helpers. It states the plan (:func:`compress.planner.make_plan`), the measured evidence from
bench records of that model on that device profile, the risks, and the recommendation.
Risks flagged: a memory margin under 10% of usable memory, a context within 10% of the
model's maximum, kernels missing or slower on the device (the candidates' reason codes), and
predictions no measurement has checked yet, or checked and found off by more than 25%.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from compress import metrics
from compress.fsutil import atomic_write_text
from compress.measure.predictions import CHANGED_PCT
from compress.planner.document import Candidate
from compress.verdict import chosen_candidate, verdict_block

MARGIN_RISK_FRACTION = 0.10  # a peak within 10% of usable memory: fragmentation or a longer prompt tips it over
CONTEXT_RISK_FRACTION = 0.90  # serving near the trained maximum context: quality and memory at their edge
ERROR_RISK_PCT = 25.0  # a prediction this far off its measurement is not evidence of fit
QUALITY_FACTOR_RISK = 1.5  # a perplexity change this many times off its prediction
#: Concurrent sequences a review also sizes for when the plan is for fewer: the batch the
#: published W4A16-vs-fp16 and llama.cpp batched-decoding figures compare at (MARLIN paper,
#: llama.cpp PR #3776), where a single-stream choice and a serving choice part ways.
SERVING_BATCH = 16


def _model_keys(model: str) -> set[str]:
    """Names and the fingerprint that bench records of this model may carry."""
    from compress import sources
    from compress.errors import UserInputError

    keys = {model}
    try:
        source = sources.resolve(model)
        keys |= {source.name, source.fingerprint()}
    except UserInputError:
        pass  # a catalog name: matched by name only
    return keys


def _by_variant(rows: Sequence[dict[str, Any]], records: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """One row per variant. A variant may have several (records of an earlier version of the
    model file, or of random weights of its architecture): each figure is taken from the row
    whose newest record is the newest that has it."""
    newest: dict[tuple[Any, Any, Any], str] = {}
    for r in records:
        key = (r.get("model"), r.get("model_fingerprint"), r.get("variant"))
        newest[key] = max(newest.get(key, ""), r.get("timestamp") or "")
    out: dict[str, dict[str, Any]] = {}
    ordered = sorted(rows, key=lambda r: newest.get((r["model"], r["model_fingerprint"], r["variant"]), ""),
                     reverse=True)
    for row in ordered:
        merged = out.setdefault(row["variant"], {})
        for field, value in row.items():
            if merged.get(field) is None:
                merged[field] = value
    return out


def _planner_model(model: str) -> str:
    from compress import sources

    return sources.DEFAULT_CATALOG_NAME if model in ("", sources.DEFAULT_MODEL) else model


def review_data(model: str, gpu: str, records: Sequence[dict[str, Any]], **sizing: Any) -> dict[str, Any]:
    """The review of ``model`` on ``gpu``; ``sizing`` are :func:`~compress.planner.make_plan`'s keywords
    (context, batch, gpus, headroom, objective, KV-cache type, engine)."""
    from compress.measure.pareto_table import pareto_rows
    from compress.planner import make_plan

    plan = make_plan(_planner_model(model), gpu=gpu, records=list(records), **sizing).to_dict()
    batch = sizing.get("batch", 1)
    keys = _model_keys(model) | {plan["model"]["name"]}
    random_weights = f"{plan['model']['name']}-random"  # `--model random:NAME` records
    mine = [r for r in records if r.get("profile") == plan["gpu"]["name"] and (
        r.get("model") in keys or r.get("model_fingerprint") in keys
        # random weights of the same architecture: evidence of speed and memory, never of quality
        or (r.get("model") == random_weights and r.get("metric") != "perplexity"))]
    measured = _by_variant(pareto_rows(mine), mine)
    data = {"plan": plan, "measured": measured, "risks": risks(plan, measured), "serve": serve_line(plan),
            **build_lines(plan)}
    if plan["gpu"]["kind"] == "gpu" and batch < SERVING_BATCH and plan["recommended"]:
        # A pair chosen for one stream may not be the one to serve many users with.
        busy = make_plan(_planner_model(model), gpu=gpu, **{**sizing, "batch": SERVING_BATCH}).to_dict()
        chosen, other = chosen_candidate(plan), chosen_candidate(busy)
        if other is not None and (other["variant"], other["runtime"]) != (chosen["variant"], chosen["runtime"]):
            data["serve_busy"] = {"batch": SERVING_BATCH, "variant": other["variant"], "runtime": other["runtime"],
                                  "kernel": other["kernel"], "command": serve_line(busy),
                                  "apply": build_lines(busy)["apply"]}
    return data


def _changed_predictions(measured: dict[str, dict[str, Any]]) -> str:
    """The measured variants whose stored prediction has since moved, as a list in words ('' if none)."""
    return ", ".join(sorted(v for v, row in measured.items() if row.get("prediction_changed")))


def serve_line(plan: dict[str, Any]) -> str | None:
    """The command that serves the recommended (variant, engine) pair, or None."""
    from compress.planner.serving import model_source, serving_command

    chosen = chosen_candidate(plan)
    if chosen is None:
        return None
    o = plan["options"]
    return serving_command(model_source(plan["model"]).name, chosen, o["context"], o["batch"], o["gpus"],
                           on_gpu=plan["gpu"]["kind"] == "gpu")


def build_lines(plan: dict[str, Any]) -> dict[str, str | None]:
    """``apply``: the command that writes the recommended variant where :func:`serve_line` looks for
    it; ``download``: the one that fetches the model's weights first, where they are not here."""
    from compress.planner.serving import apply_command, model_source

    chosen = chosen_candidate(plan)
    source = model_source(plan["model"])
    return {"apply": None if chosen is None else apply_command(source, chosen), "download": source.download}


def _bench_line(plan: dict[str, Any], variant: str, tests: str = "") -> str:
    """The ``compress bench`` line that measures ``variant`` of the plan's model."""
    from compress.planner.serving import model_source

    return f"compress bench --model {shlex.quote(model_source(plan['model']).model_arg)} --methods {variant}{tests}"


def _busy_commands(busy: dict[str, Any]) -> list[str]:
    """The lines that build and serve the pair for many sequences (the download, if any, is said above)."""
    return [c for c in (busy.get("apply"), busy["command"]) if c]


def _busy_text(busy: dict[str, Any]) -> str:
    return (f"Serving {busy['batch']} sequences at once, the plan picks {busy['variant']} with {busy['runtime']} "
            f"(kernel {busy['kernel']}) instead:")


def _serve_text(data: dict[str, Any]) -> tuple[str, list[str]]:
    """A sentence introducing the commands that build and serve the recommendation, and the commands."""
    from compress import packaged
    from compress.planner.serving import model_source

    plan = data["plan"]
    chosen = chosen_candidate(plan)
    if chosen is None:
        return "Nothing to serve: no candidate fits.", []
    source = model_source(plan["model"])
    fetch = [data["download"]] if data.get("download") else []
    if fetch:
        where = (f"The weights of {plan['model']['name']} are not on this machine: download them "
                 f"({plan['model'].get('hf_id') or plan['model']['name']}, Hugging Face) into {source.model_arg}; "
                 "then build")
    elif (plan["model"].get("origin") == "catalog" and source.model_arg != "default"
          and packaged.by_name(source.model_arg) is None):  # the default and packaged models need no folder
        where = f"Put a Hugging Face folder of {plan['model']['name']} at {source.model_arg}; then build"
    else:
        where = "Build"
    built = [data["apply"]] if data.get("apply") else []
    if data.get("serve"):
        return (f"{where} it, then serve it with {chosen['runtime']} (kernel {chosen['kernel']}):",
                [*fetch, *built, data["serve"]])
    return (f"{where} it; {chosen['runtime']} has no server of its own: load the artifact with its Python API "
            "(or re-plan with `--engine vllm` for a served deployment):"), [*fetch, *built]


def risks(plan: dict[str, Any], measured: dict[str, dict[str, Any]]) -> list[str]:
    out = []
    usable = plan["gpu"]["usable_memory_gib"]
    chosen = next((c for c in plan["candidates"] if c["variant"] == plan["recommended"]), None)
    if chosen is None:
        out.append("nothing fits: no candidate leaves memory to spare on this device")
    elif chosen["margin_gib"] < MARGIN_RISK_FRACTION * usable:
        out.append(f"memory margin {chosen['margin_gib']:.2f} GiB is under 10% of the usable {usable:.1f} GiB")
    context, max_context = plan["options"]["context"], plan["model"]["max_context"]
    if context >= CONTEXT_RISK_FRACTION * max_context:
        out.append(f"context {context} is within 10% of the model's maximum {max_context}")
    for c in plan["candidates"]:
        reasons = Candidate.from_dict(c).typed_reasons()
        if not c["supported"] or any(r.kernel_risk for r in reasons):
            why = "; ".join(c["reasons"]) or "no kernel for this device"
            out.append(f"{c['variant']}: {why}")
    if chosen is not None:
        row = measured.get(chosen["variant"])
        if row is None or row.get("decode_tok_s") is None:
            out.append(f"{chosen['variant']}: the predictions are not yet validated by measurement "
                       f"(run `{_bench_line(plan, chosen['variant'])}` on this device)")
        else:
            out += [f"{chosen['variant']}: measured {m.words} is {row[m.column.error_key]:+.0f}% off the prediction"
                    for m in _checked_by_error(row)]
        out += quality_risks(chosen, unmeasured_said=row is None or row.get("decode_tok_s") is None,
                             bench=_bench_line(plan, chosen["variant"], " --tests ppl"))
    return out


def _checked_by_error(row: dict[str, Any]) -> list[metrics.Metric]:
    """The measured metrics of ``row`` whose prediction is off by more than :data:`ERROR_RISK_PCT`
    (quality is judged apart, by :func:`quality_risks`)."""
    return [m for m in metrics.shown() if m.kind != "quality" and m.column.error_key
            and row.get(m.column.error_key) is not None and abs(row[m.column.error_key]) > ERROR_RISK_PCT]


def quality_risks(candidate: dict[str, Any], unmeasured_said: bool = False, bench: str | None = None) -> list[str]:
    """A perplexity change measured outside the predicted band, or more than 1.5x off the prediction.
    ``bench``: the command that measures it (default: the default model's)."""
    p, m = candidate.get("predicted") or {}, candidate.get("measured") or {}
    predicted, measured, band = p.get("ppl_delta_pct"), m.get("ppl_delta_pct"), p.get("ppl_delta_band_pct")
    if measured is None:
        bench = bench or f"compress bench --methods {candidate['variant']} --tests ppl"
        return [] if unmeasured_said else [f"{candidate['variant']}: its perplexity change is predicted only "
                                           f"(run `{bench}`)"]
    if predicted is None:
        return []
    out = []
    off = quality_error_factor(predicted, measured)
    if off is not None and off > QUALITY_FACTOR_RISK:
        out.append(f"{candidate['variant']}: measured perplexity change {measured:+.2f}% is {off:.1f}x the "
                   f"predicted {predicted:+.2f}% (the ranking uses the measurement)")
    if band and not band[0] <= measured <= band[1]:
        out.append(f"{candidate['variant']}: measured perplexity change {measured:+.2f}% is outside the "
                   f"predicted band {band[0]:+.2f}% to {band[1]:+.2f}%")
    return out


def quality_error_factor(predicted: float, measured: float) -> float | None:
    """How many times larger the larger of the two perplexity changes is (None when either is ~0)."""
    if min(abs(predicted), abs(measured)) < 1e-3 or (predicted > 0) != (measured > 0):
        return None
    return max(predicted / measured, measured / predicted)


def _candidate_rows(plan: dict[str, Any], measured: dict[str, dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    columns = ["variant", "rank", "pareto", "fits", "margin GiB", "pred mem GiB", "pred tok/s", "pred TTFT ms",
               "pred ppl +%", "pred ppl +% band", "measured tok/s", "measured mem GiB", "measured ppl",
               "measured ppl +%", "ppl +% off (x)", "pred KLD", "measured KLD"]
    rows = []
    for c in plan["candidates"]:
        p, m, q = c["predicted"], measured.get(c["variant"], {}), c.get("measured") or {}
        band = p.get("ppl_delta_band_pct")
        pred = None if p.get("ppl_delta_pct") is None else f"{p['ppl_delta_pct']:+.2f}"
        got = q.get("ppl_delta_pct")
        off = None if got is None or p.get("ppl_delta_pct") is None else quality_error_factor(p["ppl_delta_pct"], got)
        rows.append([c["variant"], c.get("rank"), bool(c.get("pareto")), c["fits"], c["margin_gib"],
                     p["peak_memory_gib"], p["decode_tok_s"], p["ttft_ms"], pred,
                     None if not band else f"{band[0]:+.2f} to {band[1]:+.2f}",
                     m.get("decode_tok_s"), m.get("peak_memory_gib"), m.get("perplexity"),
                     None if got is None else f"{got:+.2f}", None if off is None else f"{off:.2f}",
                     p.get("kld_mean"), q.get("kld_mean")])
    return columns, rows


def _parts(data: dict[str, Any], text: Any = None, code: Any = str, width: int = 10_000,
           block: Any = None) -> list[Any]:
    """The review as paragraphs (str) and tables, for Markdown and for the terminal alike.

    ``text`` renders every string that may carry a name from a file or the command line
    (``md_escape`` for Markdown; control characters made visible for the terminal); ``code`` renders
    the serving command; ``block`` renders the verdict (as it is for the terminal; a Markdown list,
    escaped, where a name from a file could otherwise close a code fence); ``width`` wraps the
    verdict (the terminal's; Markdown keeps its lines whole)."""
    from compress.output import Table, printable
    from compress.planner.serving import wrapped

    text = text or printable
    plan = data["plan"]
    columns, rows = _candidate_rows(plan, data["measured"])
    verdict = verdict_block(plan, serve_line(plan), width)
    parts: list[Any] = [f"# Sizing review: {text(plan['model']['name'])} on {text(plan['gpu']['display_name'])}",
                        (block or str)(verdict),
                        "## Recommendation", text(plan["recommendation"])]
    intro, commands = _serve_text(data)
    parts += ["## Serving", text(intro)] + ([code("\n".join(wrapped(printable(c)) for c in commands))] if commands else [])
    if busy := data.get("serve_busy"):
        parts += [text(_busy_text(busy))] + ([code("\n".join(wrapped(printable(c)) for c in _busy_commands(busy)))]
                                             if busy["command"] else [])
    parts += ["## Risks",
              "\n".join(f"- {text(r)}" for r in data["risks"]) or "- none found",
              "## Plan and measured evidence",
              Table("Candidates", columns, rows, name="candidates",
                    compact=["variant", "fits", "pred mem GiB", "measured mem GiB", "pred tok/s",
                             "measured tok/s", "pred ppl +%", "measured ppl +%"])]
    if not data["measured"]:
        parts.append("No bench records of this model on this device profile: every figure above is a prediction.")
    elif changed := _changed_predictions(data["measured"]):
        parts.append(text(f"Measured errors are against today's planner; the predictions stored when {changed} were "
                          f"measured differ from today's by more than {CHANGED_PCT:g}% (`--as-recorded` shows those)."))
    parts += ["## Planner notes", "\n".join(f"- {text(n)}" for n in plan["notes"])]
    return parts


def _code_block(command: str) -> str:
    """``command`` as a fenced Markdown code block that nothing in it can close: the fence is longer
    than any run of backticks inside, and control characters (a newline in a folder name) are shown
    as escapes, so a name cannot end the block and start Markdown or HTML of its own."""
    import re

    from compress.output import printable_lines

    text = printable_lines(command)
    fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", text)), default=0))
    return f"{fence}\n{text}\n{fence}"


def render_markdown(data: dict[str, Any]) -> str:
    from compress.output import md_escape, table_md, text_md

    fence = _code_block  # the build and serving commands, as a reader copies them
    blocks = [p if isinstance(p, str) else table_md(p).rstrip("\n")
              for p in _parts(data, md_escape, fence, block=lambda verdict: text_md(verdict).rstrip("\n")) if p]
    return "\n\n".join(blocks) + "\n"


def print_review(data: dict[str, Any], fmt: str = "table", wide: bool = False) -> None:
    """Print the review: ``md`` (Markdown), ``json`` (the data), or ``table`` (the terminal: text wrapped
    between words, the candidates table in its 80-column view unless ``wide``)."""
    from compress.output import console, print_table, to_json

    if fmt == "md":
        print(render_markdown(data), end="")
        return
    if fmt == "json":
        print(to_json(data))
        return
    out = console()
    for part in _parts(data, width=out.width):
        if isinstance(part, str):
            if part.startswith("## "):
                out.print()
            out.print(part, markup=False)
        else:
            print_table(part if wide else part.narrowed(), out)


def render_html(data: dict[str, Any]) -> str:
    from compress.planner.serving import wrapped
    from compress.report import esc, page, table_html

    plan = data["plan"]
    columns, rows = _candidate_rows(plan, data["measured"])
    title = f"Sizing review: {plan['model']['name']} on {plan['gpu']['display_name']}"
    verdict = verdict_block(plan, serve_line(plan), width=100)
    body = [f"<h1>{esc(title)}</h1>", f"<pre>{esc(verdict)}</pre>",
            "<h2>Recommendation</h2>", f"<p>{esc(plan['recommendation'])}</p>",
            "<h2>Serving</h2>", f"<p>{esc(_serve_text(data)[0])}</p>",
            *([f"<pre>{esc(chr(10).join(wrapped(c) for c in commands))}</pre>"]
              if (commands := _serve_text(data)[1]) else []),
            *([f"<p>{esc(_busy_text(busy))}</p>"]
              + ([f"<pre>{esc(chr(10).join(wrapped(c) for c in _busy_commands(busy)))}</pre>"]
                 if busy["command"] else [])
              if (busy := data.get("serve_busy")) else []),
            "<h2>Risks</h2><ul>",
            *[f"<li>{esc(r)}</li>" for r in data["risks"] or ["none found"]], "</ul>",
            "<h2>Plan and measured evidence</h2>", table_html(columns, rows, "candidates"),
            "<h2>Planner notes</h2><ul>", *[f"<li>{esc(n)}</li>" for n in plan["notes"]], "</ul>"]
    return page(title, "\n".join(body))


def review(model: str, gpu: str, records: Sequence[dict[str, Any]], out: Path | None = None, **sizing: Any) -> str:
    """The review as Markdown; also written to ``out`` (HTML when it ends in .html)."""
    data = review_data(model, gpu, records, **sizing)
    markdown = render_markdown(data)
    if out is not None:
        atomic_write_text(Path(out), render_html(data) if Path(out).suffix == ".html" else markdown)
    return markdown


def review_to(model: str, gpu: str, records: Sequence[dict[str, Any]], out: Path | None = None,
              **sizing: Any) -> dict[str, Any]:
    """Like :func:`review`, returning the data (for :func:`print_review`)."""
    data = review_data(model, gpu, records, **sizing)
    if out is not None:
        atomic_write_text(Path(out), render_html(data) if Path(out).suffix == ".html" else render_markdown(data))
    return data
