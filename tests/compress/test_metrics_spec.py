"""The metric specs: one entry a metric, and every writer and view follows it."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from compress import metrics, results
from compress.measure import pareto_table, predictions
from compress.measure.suite import figure

ROOT = Path(__file__).resolve().parents[2]


def test_every_metric_bench_writes_has_a_spec_and_a_paragraph():
    documented = (ROOT / "docs" / "metrics.md").read_text()
    missing = [name for name in metrics.METRICS if name not in documented]
    assert missing == [], f"docs/metrics.md does not describe {missing}"


def test_an_unknown_metric_is_refused_with_the_nearest_name():
    with pytest.raises(KeyError, match="did you mean 'decode_tok_s'"):
        metrics.spec("decode_toks")
    with pytest.raises(KeyError, match="unknown metric"):
        figure("decode_toks", [1.0])


def test_a_record_carries_its_specs_unit_and_direction():
    made = figure("peak_memory_bytes", value=3 * 2**30, predicted=2 * 2**30)
    assert (made["unit"], made["higher_is_better"]) == ("bytes", False)
    assert made["prediction_error_pct"] == pytest.approx(50.0)
    assert figure("same_top_pct", value=90.0)["higher_is_better"] is True


def test_specs_refuse_inconsistent_entries():
    with pytest.raises(ValueError, match="kind"):
        metrics.Metric("x", "s", False, "loudness", "how loud")
    with pytest.raises(ValueError, match="names the tests"):
        metrics.Metric("x", "s", False, "speed", "seconds", predicted=True)
    with pytest.raises(ValueError, match="the row key it shows"):
        metrics.Column("x", "x", "s", predicted_title="pred x", error_title="x err%")
    with pytest.raises(ValueError, match="the planner's figure"):
        metrics.Column("x", "x", "s", error_key="x_error_pct")


def test_the_table_columns_and_objectives_follow_the_specs():
    shown = metrics.shown()
    titles = [t for m in shown for t in (m.column.title, m.column.predicted_title, m.column.error_title) if t]
    assert sorted(titles) == sorted(c for c in pareto_table.COLUMNS if c not in (*pareto_table.FIXED_COLUMNS,
                                                                                  "pareto", "status"))
    assert pareto_table.OBJECTIVES == {"perplexity": "min", "decode_tok_s": "max", "peak_memory_gib": "min"}
    assert len({m.column.key for m in shown}) == len(shown)  # one row field a metric


def test_a_new_spec_entry_becomes_a_column_a_row_field_and_a_prediction(monkeypatch):
    # Adding a metric is one entry: the table, the row and the prediction check pick it up.
    extra = metrics.Metric("joules_per_prompt", "J", False, "efficiency", "joules / prompts", tests=("pp",),
                           predicted=True, column=metrics.Column("prompt_j", "J/prompt", "J", cell="{:.1f}",
                                                                 predicted_title="pred J", error_title="J err%",
                                                                 error_key="prompt_j_error_pct"))
    monkeypatch.setitem(metrics.METRICS, extra.name, extra)
    monkeypatch.setattr(pareto_table, "COLUMNS", pareto_table._columns())
    record = results.record(model="m", model_fingerprint="f", variant="q8_0", device="cpu", runtime="rt",
                            test="pp128", metric="joules_per_prompt", value=6.0, predicted=4.0, status="ok")
    assert predictions.is_predicted(record)
    row = pareto_table.pareto_rows([record])[0]
    assert (row["prompt_j"], row["predicted_prompt_j"], row["prompt_j_error_pct"]) == (6.0, 4.0, 50.0)
    cells = pareto_table.pareto_table([record]).records()[0]
    assert (cells["J/prompt"], cells["pred J"], cells["J err%"]) == ("6.0", "4.0", "+50")
    # A record of a test the metric is not read from stays out of the row.
    other = {**record, "test": "tg32"}
    assert "prompt_j" not in pareto_table.pareto_rows([other])[0]


def test_shown_values_are_in_the_columns_unit():
    memory = metrics.spec("peak_memory_bytes").column
    assert memory.shown(3 * 2**30) == 3.0 and memory.unit == "GiB"
    change = metrics.spec("ln_ppl_ratio").column
    assert change.shown(math.log(1.08)) == pytest.approx(8.0)  # ln(1.08) nats is an 8% perplexity change
    assert change.format(8.0) == "+8.00"


def test_plots_are_named_by_the_specs():
    predicted = [m.name for m, _ in metrics.plotted("predicted")]
    assert predicted == ["decode_tok_s", "peak_memory_bytes", "ln_ppl_ratio", "kld_mean"]
    assert all(m.column is not None and m.column.predicted_title for m, _ in metrics.plotted("predicted"))
    assert [m.name for m, _ in metrics.plotted("samples")] == ["decode_tok_s", "ttft_ms", "itl_ms"]


def test_the_pareto_plot_has_one_metric_on_each_axis():
    axes = [m.column.pareto for m in metrics.shown() if m.column.pareto]
    assert sorted(axes) == ["area", "x", "y"]
    with pytest.raises(ValueError, match="pareto axis"):
        metrics.Column("x", "x", "s", pareto="z")


def test_a_runaway_figure_does_not_squeeze_its_column():
    column = metrics.spec("perplexity").column
    assert column.format(25.8874) == "25.887"
    assert column.format(236509522435.274) == "2.4e+11"
