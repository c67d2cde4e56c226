"""What each measured metric is: one frozen spec a metric, read by every writer and view.

A bench record names its figure by ``metric``. This module says, for each name, the unit it
is counted in, whether higher is better, how the figure is computed, which tests' records the
views take it from, whether the planner predicts it, and how the views show it: the key and
title of its column in `compress pareto` (and the row of ``--format json``), the axis of the
Pareto plot it is drawn on, and the plots of `compress report`. The record writer
(:func:`compress.measure.suite.figure`), the prediction check
(:mod:`compress.measure.predictions`), the pareto table, the report and the review iterate
over :data:`METRICS`; none of them names a metric. Adding a metric is one entry here plus
the bench test that produces it (and its paragraph in docs/metrics.md).

The formulas themselves are pure functions in :mod:`compress.measure.metrics` and
:mod:`compress.formulas`. Imports nothing but the standard library.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from difflib import get_close_matches

GIB = 2**30
MIB = 2**20
KINDS = ("quality", "speed", "memory", "size", "efficiency")
PARETO_AXES = ("", "x", "y", "area")


def _same(value: float) -> float:
    return value


def _gib(value_bytes: float) -> float:
    return value_bytes / GIB


def _mib(value_bytes: float) -> float:
    return value_bytes / MIB


def _ppl_change_pct(ln_ratio: float) -> float:
    """The perplexity change in percent from ln(PPL / PPL baseline): 100 x (exp(r) - 1)."""
    return 100 * math.expm1(ln_ratio)


#: The widest cell a column's format may write before it falls back to two significant digits.
CELL_CHARS = 10


@dataclass(frozen=True)
class Column:
    """How a metric shows in a pareto row (``key``) and table (``title``).

    ``shown`` turns the record's value (and the planner's) into the shown unit ``unit``;
    ``cell`` formats it (None: the number as the table's own formatting writes it).
    A predicted metric whose ``predicted_title`` is set gets a column for the planner's figure
    (row key ``predicted_<key>``); with ``error_key`` the row has the error in percent, and with
    ``error_title`` a column shows it. ``compact``: shown in the 80-column view. ``pareto``: the axis of the
    Pareto plot it is drawn on (``x``, ``y`` or ``area``); a non-empty axis makes it an
    objective of the front."""

    key: str
    title: str
    unit: str
    shown: Callable[[float], float] = _same
    cell: str | None = None
    predicted_title: str | None = None
    error_title: str | None = None
    error_key: str | None = None
    compact: bool = False
    pareto: str = ""

    def __post_init__(self) -> None:
        if self.pareto not in PARETO_AXES:
            raise ValueError(f"column {self.key!r}: pareto axis must be one of {PARETO_AXES}, got {self.pareto!r}")
        if self.error_title and not self.error_key:
            raise ValueError(f"column {self.key!r}: an error column needs the row key it shows")
        if self.error_key and not self.predicted_title:
            raise ValueError(f"column {self.key!r}: an error needs the planner's figure beside the measurement")

    @property
    def predicted_key(self) -> str:
        return f"predicted_{self.key}"

    def format(self, value: float | None) -> float | str | None:
        """The cell of a shown value; a runaway one (a broken model's perplexity of 2e11) in two
        significant digits, so that one cell does not squeeze the table."""
        if value is None or self.cell is None:
            return value
        text = self.cell.format(value)
        return text if len(text) <= CELL_CHARS else f"{value:.2g}"


@dataclass(frozen=True)
class Plot:
    """A plot of the report. ``predicted``: the planner's figure (x) against the measured one (y),
    on log axes with the diagonal; ``samples``: every raw sample of every variant as a strip."""

    kind: str
    title: str
    how_to_read: str

    def __post_init__(self) -> None:
        if self.kind not in ("predicted", "samples"):
            raise ValueError(f"plot {self.title!r}: kind must be 'predicted' or 'samples', got {self.kind!r}")


@dataclass(frozen=True)
class Metric:
    """One measured metric: the record's ``metric`` and everything the views need to show it.

    ``tests``: the test kinds (``ppl``, ``pp``, ``tg``, ``memory``, ``size``; empty: every test)
    whose records the views read it from; a failure of one of them blanks the metric's cell.
    ``predicted``: the planner predicts it (its figures are keyed by the metric's name), and
    bench sets the prediction beside the records of ``tests``. ``words``: the metric in a
    sentence ("decode speed"). ``title``: its heading in a table where it has no pareto column."""

    name: str
    unit: str
    higher_is_better: bool
    kind: str
    computed: str
    words: str = ""
    tests: tuple[str, ...] = ()
    predicted: bool = False
    column: Column | None = None
    plots: tuple[Plot, ...] = field(default_factory=tuple)
    title: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"metric {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.predicted and not self.tests:
            raise ValueError(f"metric {self.name!r}: a predicted metric names the tests that carry the prediction")

    @property
    def heading(self) -> str:
        """The metric's title in any table: its pareto column's, else its own, else its name and unit."""
        if self.column:
            return self.column.title
        return self.title or f"{self.name} ({self.unit})"

    @property
    def direction(self) -> str:
        """``max`` or ``min``, as :func:`compress.pareto.pareto_front` takes an objective."""
        return "max" if self.higher_is_better else "min"

    def read_from(self, test: str | None) -> bool:
        """Whether the views take this metric from a record of ``test`` (``pp128`` is a ``pp`` test)."""
        return not self.tests or str(test or "").startswith(self.tests)


_PREDICTED_READING = ("each point is a variant; on the dashed line the measurement equals the planner's "
                      "prediction. ")
_QUALITY_READING = ("each point is a variant, compared with the float32 baseline on the same tokens; on the "
                    "dashed line the planner predicted the loss exactly, above it the variant lost more than "
                    "predicted, below it less. Log axes; the baseline itself (0) is not drawn.")


def _samples_reading(what: str, better: str) -> str:
    return (f"one row per variant; each dot is {what}, the red bar is the median, the grey line spans the "
            f"smallest to the largest, n counts the dots. {better}")


_ENTRIES = (
    Metric("perplexity", "ppl", False, "quality",
           "exp(total negative log-likelihood / scored tokens) over held-out text; samples are per-window "
           "perplexities (compress/measure/perplexity.py)", words="perplexity", tests=("ppl",), predicted=True,
           column=Column("perplexity", "ppl", "ppl", cell="{:.3f}", compact=True, pareto="y")),
    Metric("decode_tok_s", "tok/s", True, "speed",
           "generated tokens / wall seconds of each timed repetition of the decode test; the value is the "
           "median", words="decode speed", tests=("tg",), predicted=True,
           column=Column("decode_tok_s", "tok/s", "tok/s", predicted_title="pred tok/s", error_title="tok/s err%",
                         error_key="decode_error_pct", compact=True, pareto="x"),
           plots=(Plot("predicted", "Decode speed: predicted vs measured",
                       _PREDICTED_READING + "Above it the variant decoded faster than predicted (the planner was "
                       "pessimistic), below it slower (optimistic). Log axes: equal distances are equal ratios."),
                  Plot("samples", "Decode speed, every repetition",
                       _samples_reading("one timed repetition of the decode test", "Right is faster.")))),
    Metric("ttft_ms", "ms", False, "speed",
           "wall milliseconds from a prompt's submission to its first generated token, each timed repetition "
           "of the prefill test (served tests' TTFT, which includes queueing under load, is its own record)",
           words="time to first token", tests=("pp",), predicted=True,
           column=Column("ttft_ms", "TTFT ms", "ms", compact=True),
           plots=(Plot("samples", "Time to first token, every repetition",
                       _samples_reading("one timed repetition of the prompt",
                                        "Left is faster; a wide spread means noisy timings.")),)),
    Metric("peak_memory_bytes", "bytes", False, "memory",
           "the largest device memory (CPU: resident set above the one before loading) the variant held over "
           "the run's tests", words="peak memory", tests=("memory",), predicted=True,
           column=Column("peak_memory_gib", "mem GiB", "GiB", shown=_gib, predicted_title="pred GiB",
                         error_title="mem err%", error_key="memory_error_pct", compact=True, pareto="area"),
           plots=(Plot("predicted", "Peak memory: predicted vs measured",
                       _PREDICTED_READING + "Above it the variant took more memory than predicted (the planner was "
                       "optimistic: a plan may not fit), below it less (pessimistic: memory left unused). Log axes: "
                       "equal distances are equal ratios."),)),
    Metric("artifact_bytes", "bytes", False, "size", "bytes of the variant's files on disk",
           words="size on disk", tests=("size",), predicted=True,
           column=Column("artifact_mib", "size MiB", "MiB", shown=_mib, compact=True)),
    Metric("ln_ppl_ratio", "nats", False, "quality",
           "ln(PPL / PPL of the float32 baseline) on the same tokens; shown as the change in percent, "
           "100 x (exp(ratio) - 1)", words="perplexity change", tests=("ppl",), predicted=True,
           column=Column("ppl_delta_pct", "Δppl %", "%", shown=_ppl_change_pct, cell="{:+.2f}",
                         predicted_title="pred Δppl %", error_title="Δppl err%", error_key="ppl_delta_error_pct"),
           plots=(Plot("predicted", "Perplexity change: predicted vs measured", _QUALITY_READING),)),
    Metric("kld_mean", "nats", False, "quality",
           "mean over scored tokens of KL(baseline || variant) of the next-token distributions, against the "
           "float32 baseline on the same tokens (compress/measure/kld.py)", words="KL divergence", tests=("ppl",),
           predicted=True,
           column=Column("kld_mean", "KLD", "nats", cell="{:.4f}", predicted_title="pred KLD",
                         error_key="kld_error_pct"),
           plots=(Plot("predicted", "KL divergence: predicted vs measured", _QUALITY_READING),)),
    Metric("same_top_pct", "%", True, "quality",
           "positions where the variant's most probable next token is the baseline's, in percent",
           words="same top token", tests=("ppl",), column=Column("same_top_pct", "same top %", "%", cell="{:.1f}")),
    Metric("kld_p99", "nats", False, "quality", "99th percentile over scored tokens of the KL divergence",
           tests=("ppl",)),
    Metric("kld_max", "nats", False, "quality", "largest KL divergence of any scored token", tests=("ppl",)),
    Metric("delta_p_rms_pct", "%", False, "quality",
           "root mean square over tokens of the change in the probability of the correct token, in points",
           tests=("ppl",)),
    Metric("prefill_tok_s", "tok/s", True, "speed", "prompt tokens / wall seconds of each prefill repetition"),
    Metric("tpot_ms", "ms", False, "speed", "wall milliseconds per output token after the first", title="TPOT ms"),
    Metric("itl_ms", "ms", False, "speed", "wall milliseconds between consecutive generated tokens",
           words="inter-token latency", tests=("tg",),
           plots=(Plot("samples", "Inter-token latency, every generated token",
                       _samples_reading("the time of one generated token (all repetitions)",
                                        "Left is faster; dots far right are stalls.")),), title="ITL ms"),
    Metric("throughput_tok_s", "tok/s", True, "speed", "tokens generated by all sequences / wall seconds",
           title="throughput tok/s"),
    Metric("e2e_ms", "ms", False, "speed", "wall milliseconds from a request's submission to its last token",
           title="e2e ms"),
    Metric("request_throughput_req_s", "req/s", True, "speed", "completed requests / wall seconds of the run",
           title="requests/s"),
    Metric("goodput_req_s", "req/s", True, "speed",
           "completed requests that met the TTFT and TPOT objectives / wall seconds of the run", title="goodput req/s"),
    Metric("mfu_pct", "%", True, "efficiency", "model FLOP/s over the device profile's peak, in percent"),
    Metric("mfu_probe_pct", "%", True, "efficiency", "model FLOP/s over `compress probe`'s measured peak"),
    Metric("mbu_pct", "%", True, "efficiency",
           "bytes a decode step reads x tokens/s over the device profile's peak bandwidth, in percent"),
    Metric("mbu_probe_pct", "%", True, "efficiency",
           "bytes a decode step reads x tokens/s over `compress probe`'s measured bandwidth"),
    Metric("energy_j_per_token", "J/token", False, "efficiency",
           "joules the device drew over the decode test (warm-up included) / tokens generated"),
)

#: Every measured metric by its record name, in the order the views show them.
METRICS: dict[str, Metric] = {m.name: m for m in _ENTRIES}


def spec(name: str) -> Metric:
    """The spec of metric ``name``; an unknown name is an error that lists the known ones."""
    try:
        return METRICS[name]
    except KeyError:
        close = get_close_matches(name, METRICS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise KeyError(f"unknown metric {name!r}{hint}; known: {', '.join(METRICS)}") from None


def shown() -> list[Metric]:
    """The metrics with a pareto column, in column order."""
    return [m for m in METRICS.values() if m.column is not None]


def plotted(kind: str) -> list[tuple[Metric, Plot]]:
    """The report's plots of ``kind`` with their metric, in spec order."""
    return [(m, p) for m in METRICS.values() for p in m.plots if p.kind == kind]
