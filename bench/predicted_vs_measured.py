"""The planner's predictions beside the measurements of every variant in the results.

    python bench/predicted_vs_measured.py [RESULTS ...]             # peak memory and decode tok/s
    python bench/predicted_vs_measured.py --markdown [RESULTS ...]  # writes docs/predicted-vs-measured.md
    python bench/predicted_vs_measured.py --check [RESULTS ...]     # fails where that file is stale

The plain table reads one results file (default results/bench.jsonl). The document reads every
``results/*.jsonl`` (or the files named): for each model and device, one row per variant (a KV
cache type bench was asked for, or a runtime every artifact was run in, makes a variant of its
own), with today's planner prediction for the record's settings
(:func:`compress.measure.predictions.with_current_predictions`), its band, the newest
measurement and the error, for the perplexity change, the KL divergence (where the planner
predicts one), the file size, the peak memory and the decode speed. A measurement outside its
band says why: from bench/prediction_misses.toml, where each explained miss is written down,
or from the record (a speed measured under load).
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import textwrap
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "predicted-vs-measured.md"
WHYS = ROOT / "bench" / "prediction_misses.toml"
GIB, MIB = 2**30, 2**20
#: A CPU speed is marked as measured on a shared machine when the 1-minute load average less the
#: run's own threads (the other work, in cores) was above this.
BUSY_LOAD = 1.0
FAILURE_CHARS = 100  # of a recorded error's first line, in the why column


@dataclass(frozen=True)
class Metric:
    """One predicted quantity: the record metric that measures it and how its table reads."""

    name: str  # the key a miss is explained under in prediction_misses.toml
    record_metric: str
    tests: tuple[str, ...]  # tests whose failure leaves it unmeasured
    title: str
    shown: Callable[[float], float]  # record value -> the unit of the table
    fmt: str
    relative: bool  # error in % of the prediction (else in the table's own unit: percentage points)


METRICS = (
    Metric("quality", "ln_ppl_ratio", ("ppl",), "Perplexity change against the float32 baseline, %",
           lambda x: 100 * math.expm1(x), "+.2f", relative=False),
    Metric("kld", "kld_mean", ("ppl",), "Mean KL divergence from the float32 baseline, nats", lambda x: x, ".4f",
           relative=True),
    Metric("size", "artifact_bytes", ("size",), "File size, MiB", lambda x: x / MIB, ".1f", relative=True),
    Metric("memory", "peak_memory_bytes", ("memory",), "Peak memory of the run, GiB", lambda x: x / GIB, ".3f",
           relative=True),
    Metric("decode", "decode_tok_s", ("tg",), "Decode speed, tok/s", lambda x: x, ".1f", relative=True),
)
WHOLE_VARIANT_TESTS = ("apply", "load")


@dataclass(frozen=True)
class Cell:
    """One variant's figure for one metric: prediction, band, measurement, or why there is none."""

    predicted: float | None = None
    band: tuple[float, float] | None = None
    measured: float | None = None
    failed: str | None = None
    load: float | None = None
    note: str | None = None  # why the planner made no prediction

    def error(self, relative: bool) -> float | None:
        from compress.measure.metrics import prediction_error_pct

        if self.predicted is None or self.measured is None:
            return None
        return prediction_error_pct(self.measured, self.predicted) if relative else self.measured - self.predicted

    def inside(self, tolerance_pct: float, fmt: str) -> bool | None:
        """Whether the measurement is within the band (a point prediction: within ``tolerance_pct``),
        as the table shows them (``fmt``): a difference the table cannot show is no miss."""
        if self.measured is None or self.predicted is None:
            return None
        spread = abs(self.predicted) * tolerance_pct / 100
        low, high = self.band or (self.predicted - spread, self.predicted + spread)
        shown = [float(format(x, fmt)) for x in (min(low, high), self.measured, max(low, high))]
        return shown[0] <= shown[1] <= shown[2]


def variant_label(r: dict[str, Any]) -> str:
    """The variant, and what bench was asked to run it with that changes its figures."""
    settings = r.get("bench_settings") or {}
    label = r.get("variant") or "?"
    if settings.get("kv_dtype"):
        label += f" (KV {settings['kv_dtype']})"
    if settings.get("runtime"):
        label += f" (via {settings['runtime']})"
    return label


def _group(r: dict[str, Any]) -> tuple[str, str, str]:
    return (r.get("model") or "?", r.get("profile") or r.get("device") or "?", r.get("device_name") or "")


def latest_records(records: Sequence[dict[str, Any]]) -> dict[tuple[Any, ...], dict[str, Any]]:
    """(group, variant label, metric or failed test) -> the newest such record (results.newest)."""
    from compress import results

    wanted = {m.record_metric for m in METRICS}

    def key(r: dict[str, Any]) -> tuple[Any, ...] | None:
        if r.get("status") == "ok" and r.get("metric") in wanted:
            return (*_group(r), variant_label(r), r["metric"])
        if r.get("status") in ("failed", "skipped"):
            return (*_group(r), variant_label(r), f"failed:{_test_kind(r.get('test'))}")
        return None

    return results.newest(records, key)


def _test_kind(test: str | None) -> str:
    test = test or "?"
    return next((kind for kind in ("ppl", "pp", "tg", "batch", "serve") if test.startswith(kind)), test)


def cells(latest: dict[tuple[Any, ...], dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, dict[str, Cell]]]:
    """Group -> variant label -> metric name -> its cell."""
    out: dict[tuple[str, str, str], dict[str, dict[str, Cell]]] = {}
    for key in latest:
        out.setdefault(key[:3], {}).setdefault(key[3], {})
    for group, variants in out.items():
        for label, by_metric in variants.items():
            for m in METRICS:
                by_metric[m.name] = _cell(m, latest, (*group, label))
    return out


def _cell(m: Metric, latest: dict[tuple[Any, ...], dict[str, Any]], row: tuple[str, ...]) -> Cell:
    r = latest.get((*row, m.record_metric))
    failure = next((latest[k] for t in (*m.tests, *WHOLE_VARIANT_TESTS) if (k := (*row, f"failed:{t}")) in latest
                    and (r is None or latest[k].get("timestamp", "") > r.get("timestamp", ""))), None)
    if failure is not None:
        return Cell(failed=f"{failure.get('status')}: {failure_cause(failure.get('error'))}")
    if r is None:
        return Cell()
    band = r.get("predicted_band")
    # The load average speaks for a CPU's speed; a GPU's is not shared with what loads its host.
    # The run's own threads count in it: what is left is the other work the CPU was sharing.
    params = r.get("params") or {}
    load = params.get("load_avg_1m") if r.get("device") == "cpu" else None
    if load is not None:
        load = max(0.0, load - (params.get("threads") or 0))
    return Cell(predicted=None if r.get("predicted") is None else m.shown(r["predicted"]),
                band=None if not band else (m.shown(band[0]), m.shown(band[1])),
                measured=m.shown(r["value"]), load=load, note=r.get("prediction_note"))


def failure_cause(error: str | None, limit: int = FAILURE_CHARS) -> str:
    """The first line of a recorded error, without the exception class names, cut to ``limit``."""
    cause = (error or "no reason recorded").splitlines()[0]
    cause = re.sub(r"\b\w+(Error|Failure|Exception): ", "", cause).replace("|", "/")
    return cause if len(cause) <= limit else cause[: limit - 1] + "…"


def explained_misses(path: Path = WHYS) -> dict[tuple[str, str, str], str]:
    """(model, variant label, metric name) -> why its prediction misses, as written down. An entry
    names one ``variant`` or, where one cause covers several, a list of ``variants``."""
    if not path.is_file():
        return {}
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return {(e["model"], variant, e["metric"]): " ".join(e["why"].split())
            for e in data.get("miss", []) for variant in e.get("variants") or [e["variant"]]}


def why(m: Metric, cell: Cell, model: str, label: str, whys: dict[tuple[str, str, str], str],
        tolerance_pct: float) -> str:
    """What the row says beside its figures: the failure, the missing prediction, or why it misses."""
    if cell.failed:
        return cell.failed
    if cell.predicted is None and cell.measured is not None:
        return cell.note or "no prediction"
    inside = cell.inside(tolerance_pct, m.fmt)
    busy = m.name == "decode" and cell.load is not None and cell.load > BUSY_LOAD
    if inside is not False:
        return f"load {cell.load:.2f}" if busy else ""
    written = whys.get((model, label, m.name)) or whys.get((model, label.split(" (")[0], m.name))
    if written:
        return written
    if busy:
        return f"measured under load {cell.load:.2f} on a shared CPU"
    return "not yet explained"


def _num(x: float | None, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def metric_table(m: Metric, model: str, variants: dict[str, dict[str, Cell]],
                 whys: dict[tuple[str, str, str], str], tolerance_pct: float) -> list[str]:
    """One metric's table, a row for each variant measured (or failed); none where no variant was."""
    unit = "pp" if not m.relative else "%"
    rows = []
    for label in sorted(variants, key=lambda v: _order(variants[v], v)):
        c = variants[label][m.name]
        if c.measured is None and c.failed is None:
            continue
        band = (f"{_num(c.band[0], m.fmt)} .. {_num(c.band[1], m.fmt)}" if c.band
                else f"±{tolerance_pct:g}%" if c.predicted is not None else "-")
        measured = "failed" if c.failed else _num(c.measured, m.fmt)
        rows.append(f"| {label} | {_num(c.predicted, m.fmt)} | {band} | {measured} | "
                    f"{_num(c.error(m.relative), '+.1f')} | {why(m, c, model, label, whys, tolerance_pct)} |")
    if not rows:
        return []
    return [f"#### {m.title}", "", f"| variant | predicted | band | measured | error {unit} | why |",
            "|---|---:|---:|---:|---:|---|", *rows, ""]


def _order(row: dict[str, Cell], label: str) -> tuple[float, str]:
    """Variants by their measured perplexity change (unmeasured last), then by name."""
    quality = row["quality"].measured
    return (math.inf if quality is None else quality, label)


def markdown(records: Sequence[dict[str, Any]], files: Sequence[str], whys: dict[tuple[str, str, str], str]) -> str:
    from compress.measure.predictions import with_current_predictions
    from compress.review import ERROR_RISK_PCT

    table = cells(latest_records(with_current_predictions(records)))
    intro = ("Generated by `python bench/predicted_vs_measured.py --markdown` from "
             + ", ".join(f"`{f}`" for f in files) + "; `--check` fails when this file and the records disagree. "
             "Each figure is the newest measurement of the variant; the prediction is today's planner's for the "
             "record's model, device, runtime and bench settings. The band is the planner's (perplexity and "
             "KLD: the spread of the published figures it carries; decode: the engine's measured spread, "
             "profiles/runtimes.toml `[speed_band]`); size and memory are point predictions, held to "
             f"±{ERROR_RISK_PCT:g}% (`compress review` flags a larger error). Error: measured minus predicted, in "
             "percentage points for the perplexity change, in % of the prediction otherwise. `load` marks a "
             "CPU speed measured while other work shared the CPU: the 1-minute load average less the run's own "
             f"threads above {BUSY_LOAD:g} (a shared machine). "
             "A miss says why (bench/prediction_misses.toml).")
    out = ["# Predicted vs measured", "", *textwrap.wrap(intro, 80, break_on_hyphens=False), ""]
    for (model, profile, device), variants in sorted(table.items()):
        out += [f"## {model} on {profile}" + (f" ({device})" if device else ""), ""]
        for m in METRICS:
            out += metric_table(m, model, variants, whys, ERROR_RISK_PCT)
        # Random-weight runs measure speed and memory only: their coverage is not the point.
        if any(row["quality"].measured is not None for row in variants.values()):
            out += unmeasured_table(model, unmeasured_candidates(model, profile, variants), whys)
    return "\n".join(out).rstrip("\n") + "\n"


def unmeasured_candidates(model: str, profile: str, measured: Sequence[str]) -> list[str]:
    """The variants the planner proposes for the model on the device that no record measured
    (in any setting); none where the planner knows neither."""
    from compress.measure.predictions import planner_model
    from compress.planner.candidates import default_candidates
    from compress.planner.hardware import load_gpu
    from compress.planner.spec import load_model_spec

    try:
        spec, gpu = load_model_spec(planner_model(model)), load_gpu(profile)
    except Exception:  # a model or device the planner does not know proposes nothing
        return []
    done = {label.split(" (")[0] for label in measured}
    return [v for v in default_candidates(spec, gpu) if v not in done]


def unmeasured_table(model: str, names: Sequence[str], whys: dict[tuple[str, str, str], str]) -> list[str]:
    if not names:
        return []
    rows = [f"| {name} | {whys.get((model, name, 'unmeasured'), 'not measured yet')} |" for name in names]
    return ["#### Candidates of `compress plan` with no measurement", "", "| variant | why |", "|---|---|",
            *rows, ""]


def plain(path: Path) -> None:
    from compress import results
    from compress.measure.pareto_table import pareto_rows

    rows = pareto_rows(results.load(path))
    if not rows:
        raise SystemExit(f"no bench records in {path}: run `compress bench` first")
    print(f"{'model':24} {'variant':14} {'device':6} {'pred tok/s':>10} {'meas tok/s':>10} {'err %':>7} "
          f"{'pred GiB':>9} {'meas GiB':>9} {'err %':>7}")
    for r in rows:
        print(f"{r['model'][:24]:24} {r['variant'][:14]:14} {r['device']:6} "
              f"{_num(r.get('predicted_decode_tok_s'), '10.2f')} {_num(r.get('decode_tok_s'), '10.2f')} "
              f"{_num(r.get('decode_error_pct'), '+7.0f')} {_num(r.get('predicted_peak_memory_gib'), '9.3f')} "
              f"{_num(r.get('peak_memory_gib'), '9.3f')} {_num(r.get('memory_error_pct'), '+7.0f')}")


def _document(paths: Sequence[str]) -> str:
    from compress import results

    files = sorted(paths) if paths else sorted(str(p.relative_to(ROOT)) for p in (ROOT / "results").glob("*.jsonl"))
    records = []
    for f in files:
        path = Path(f) if Path(f).is_absolute() else ROOT / f
        if not path.is_file():
            raise SystemExit(f"no results file {f}")
        records += results.load(path)
    return markdown(records, files, explained_misses())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--markdown", action="store_true", help=f"write {DOC.relative_to(ROOT)} from the results")
    mode.add_argument("--check", action="store_true", help=f"fail where {DOC.relative_to(ROOT)} is stale")
    parser.add_argument("results", nargs="*", help="results files (JSON Lines)")
    args = parser.parse_args(argv)
    if not (args.markdown or args.check):
        plain(Path(args.results[0] if args.results else "results/bench.jsonl"))
        return 0
    text = _document(args.results)
    if args.markdown:
        DOC.write_text(text, encoding="utf-8")
        print(f"wrote {DOC.relative_to(ROOT)}")
        return 0
    if not DOC.is_file() or DOC.read_text(encoding="utf-8") != text:
        print(f"{DOC.relative_to(ROOT)} does not match the records: run "
              "`python bench/predicted_vs_measured.py --markdown`", file=sys.stderr)
        return 1
    print(f"{DOC.relative_to(ROOT)} matches the records")
    return 0


if __name__ == "__main__":
    sys.exit(main())
