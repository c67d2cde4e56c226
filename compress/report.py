"""`compress report`: one self-contained HTML dashboard from bench records.

Inline CSS, a few lines of inline JavaScript (table sorting), and SVG plots drawn in Python
(:mod:`compress.plots`), so the file opens offline and can be mailed. Every string that comes
from a record (model and variant names, errors, devices) goes through :func:`esc`; no record
data is ever placed inside the script, only in escaped text and attributes.

Which figures the dashboard shows, in what unit and on which plot, is the metric specs'
(:mod:`compress.metrics`); a section with nothing to show says why and which bench run fills
it. The page takes the window's width; a wide table scrolls inside its own box, and on a
phone the failures become one card each.

The HTML helpers (:func:`page`, :func:`table_html`, :func:`esc`) are shared with
``compress review``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from compress import metrics
from compress.fsutil import atomic_write_text
from compress.output import cell
from compress.plots import Legend, esc, scatter_svg, strip_svg, tick_text

__all__ = ["esc", "figure", "page", "render_report", "table_html", "write_report"]

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;padding:1em 2em;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
p{overflow-wrap:break-word}
table{border-collapse:collapse;font-size:13px}
th,td{border:1px solid #ddd;padding:3px 7px;text-align:right;white-space:nowrap}
th{background:#f4f4f4;cursor:pointer;user-select:none}th.sorted-asc:after{content:" \\25B2"}
th.sorted-desc:after{content:" \\25BC"}td.text{text-align:left}tr.front td{background:#eef8ee}
td.prose{white-space:normal;min-width:18em;max-width:44em;overflow-wrap:break-word}
.note{color:#666;font-size:12px}.empty{color:#666;font-style:italic}
.scroll{overflow-x:auto;max-width:100%;margin:.5em 0}
svg{background:#fff;border:1px solid #eee;font-family:system-ui,sans-serif;display:block}
.plots{display:flex;flex-wrap:wrap;gap:1em}
figure{margin:.5em 0;flex:0 1 430px;min-width:0}figcaption{font-size:12px;color:#444;margin-top:.2em}
@media (max-width:600px){
 body{padding:.5em .75em}
 table.cards thead{display:none}
 table.cards,table.cards tbody,table.cards tr,table.cards td{display:block}
 table.cards tr{border:1px solid #ddd;margin:0 0 .6em;padding:.2em 0}
 table.cards td{border:0;text-align:left;white-space:normal;overflow-wrap:break-word;min-width:0}
 table.cards td:before{content:attr(data-label) ": ";color:#666}
}
"""

# Sort any table with class "sortable" by clicking a header; numbers sort numerically via
# the cell's data-v attribute. On load, tables with data-sort-col are sorted once, which is
# also what the headless-browser test checks for.
JS = """
function sortTable(t,col,dir){
  const body=t.tBodies[0],rows=Array.from(body.rows);
  const key=r=>{const c=r.cells[col];const v=c.getAttribute('data-v');
    return v===null||v===''?c.textContent:parseFloat(v)};
  rows.sort((a,b)=>{const x=key(a),y=key(b);
    if(typeof x==='number'&&typeof y==='number')return dir*(x-y);
    return dir*String(x).localeCompare(String(y))});
  rows.forEach(r=>body.appendChild(r));
  Array.from(t.tHead.rows[0].cells).forEach((h,i)=>{h.classList.remove('sorted-asc','sorted-desc');
    if(i===col)h.classList.add(dir>0?'sorted-asc':'sorted-desc')});
  t.setAttribute('data-sorted-by',String(col));
}
document.querySelectorAll('table.sortable').forEach(t=>{
  Array.from(t.tHead.rows[0].cells).forEach((h,i)=>h.addEventListener('click',()=>{
    const cur=h.classList.contains('sorted-asc')?1:-1;sortTable(t,i,-cur)}));
  const c=t.getAttribute('data-sort-col');if(c!==null)sortTable(t,parseInt(c),1);
});
"""


def page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" "
            f"content=\"width=device-width,initial-scale=1\"><title>{esc(title)}</title>"
            f"<style>{CSS}</style></head><body>\n{body}\n<script>{JS}</script></body></html>\n")


def table_html(columns: Sequence[str], rows: Sequence[Sequence[Any]], table_id: str = "", sort_col: int | None = None,
               row_classes: Sequence[str] | None = None, prose: Sequence[str] = (), cards: bool = False) -> str:
    """A sortable table in its own horizontally scrolling box; numbers carry their raw value in
    ``data-v`` so sorting is numeric. Cells of the ``prose`` columns wrap between words (every other
    cell stays on one line, so a name never breaks); ``cards``: one card a row on a phone."""
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{esc(row_classes[i])}"' if row_classes and row_classes[i] else ""
        cells = []
        for column, v in zip(columns, row):
            label = f' data-label="{esc(column)}"'
            number = _number(v)
            if number is not None:
                cells.append(f'<td{label} data-v="{number!r}">{esc(cell(v))}</td>')
            else:
                kind = "text prose" if column in prose else "text"
                cells.append(f'<td{label} class="{kind}">{esc(cell(v))}</td>')
        body.append(f"<tr{cls}>{''.join(cells)}</tr>")
    attrs = f' id="{esc(table_id)}"' if table_id else ""
    attrs += f' data-sort-col="{sort_col}"' if sort_col is not None else ""
    classes = "sortable cards" if cards else "sortable"
    return (f'<div class="scroll"><table class="{classes}"{attrs}><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def _number(value: Any) -> float | None:
    """The numeric value of a cell (numbers, and numbers pre-formatted as text), for sorting."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def figure(svg: str, how_to_read: str) -> str:
    """A plot with its one-line reading guide underneath; nothing when there is no plot."""
    if not svg:
        return ""
    return f'<figure>{svg}<figcaption><b>How to read:</b> {esc(how_to_read)}</figcaption></figure>'


def section(title: str, content: str, why_empty: str) -> str:
    """A heading and its content, or, where there is none, a line that says why and what fills it."""
    return f"<h2>{esc(title)}</h2>" + (content or f'<p class="empty">{esc(why_empty)}</p>')


def _plots(figures: Sequence[str]) -> str:
    return f'<div class="plots">{"".join(figures)}</div>' if any(figures) else ""


# --- the report --------------------------------------------------------------------------------

def render_report(records: Sequence[dict[str, Any]], model: str | None = None, as_recorded: bool = False) -> str:
    """The dashboard of ``records`` (predictions as the records carry them: today's where the caller
    re-predicted them, the stored ones with ``as_recorded``, which the notes say)."""
    from compress.measure.pareto_table import latest_by_test_and_metric, pareto_rows

    rows = pareto_rows(records, model)
    latest = [r for r in latest_by_test_and_metric(records).values()
              if model is None or model in (r.get("model"), r.get("model_fingerprint"))]
    name = _point_name(rows)
    files = sorted({r["results_file"] for r in records if r.get("results_file")})
    sections = ["<h1>compress bench report</h1>",
                f'<p class="note">{len(records)} records; {len(rows)} model/variant/device/setting rows'
                + (f" from {esc(', '.join(files))}" if files else "") + ". Click a column header to sort.</p>",
                _variants_section(records, rows, model, as_recorded),
                section("Pareto front", _pareto_plot(rows, name), _pareto_missing()),
                section("Predicted vs measured", _predicted_plots(rows, name, quality=False),
                        "no measured figure in these results has the planner's prediction beside it: bench sets one "
                        "where the planner knows the model and the device (run `compress bench`)."),
                quality_section(rows, name),
                section("Latency distributions", _strips(latest, rows), _strips_missing()),
                section("Served load", _serve_table(latest),
                        "no serve records in these results: run `compress bench --tests serve` (with --runtime vllm, "
                        "or --endpoint URL for a running server)."),
                section("Failed and skipped tests", _failures_table(latest),
                        "none: every test in these results ran.")]
    return page("compress bench report", "\n".join(sections))


def _point_name(rows: Sequence[dict[str, Any]]) -> Callable[[dict[str, Any]], str]:
    """A plot point's label: the variant, with the device where one model was measured on several,
    and the setting's letter (the table's) where the variant has rows of several settings."""
    from compress.measure.pareto_table import setting_letters

    letters = setting_letters(rows)

    def name(r: dict[str, Any]) -> str:
        several = len({x["device"] for x in rows if x["model"] == r["model"]}) > 1
        about = [r["device"]] if several else []
        about += [letters[r["setting"]]] if r.get("setting") else []
        return f"{r['variant']} ({', '.join(about)})" if about else r["variant"]

    return name


def _variants_section(records: Sequence[dict[str, Any]], rows: Sequence[dict[str, Any]], model: str | None,
                      as_recorded: bool) -> str:
    """The measured-variants table, the front's rows shaded, with its notes."""
    from compress.measure.pareto_table import pareto_table

    table = pareto_table(records, model, as_recorded=as_recorded)
    first = metrics.shown()[0].column.title
    content = (table_html(table.columns, table.rows, "pareto-table", sort_col=table.columns.index(first),
                          row_classes=["front" if r.get("pareto") else "" for r in rows], prose=("status",))
               + "".join(f'<p class="note">{esc(n)}</p>' for n in table.notes)) if rows else ""
    return section("Measured variants", content, f"no records of {model} in these results." if model else
                   "no OK or failed test records in these results.")


def _pareto_plot(rows: Sequence[dict[str, Any]], name: Callable[[dict[str, Any]], str]) -> str:
    """Quality against speed, the bubble's area growing with memory (the axes are the front's metrics)."""
    from compress.measure.pareto_table import FRONT_MEANS, front_metrics

    on = {m.column.pareto: m for m in front_metrics()}
    x, y, area = on["x"].column, on["y"].column, on.get("area")
    largest = max((r.get(area.column.key) or 0 for r in rows), default=0) if area else 0

    def radius(value: float | None) -> float:
        return 4 + 14 * math.sqrt((value or 0) / largest) if largest else 5

    points = [{"x": r.get(x.key), "y": r.get(y.key), "front": bool(r.get("pareto")), "label": name(r),
               "group": r["model"], "r": radius(r.get(area.column.key) if area else None)} for r in rows]
    legend = [Legend("dot", "on the front", "#777"), Legend("ring", "not on the front", "#777")]
    if area and largest:
        legend += [Legend("size", f"{tick_text(v)} {area.column.unit} {area.words}", "#777", radius(v))
                   for v in _round_sizes(largest)]
    svg = scatter_svg(points, f"{on['y'].words.capitalize()} vs {on['x'].words}", f"{on['x'].words} ({x.unit})",
                      on["y"].words, svg_id="pareto-plot", legend=legend)
    how = (f"{'higher' if on['y'].higher_is_better else 'lower'} is better {on['y'].words}, further "
           f"{'right' if on['x'].higher_is_better else 'left'} is better {on['x'].words}"
           + (f"; the bubble's area grows with {area.words}" if area else "")
           + f"; filled bubbles are on the Pareto front ({FRONT_MEANS})."
           + (" A letter in brackets is the row's setting in the table." if any(r.get("setting") for r in rows) else ""))
    return _plots([figure(svg, how)])


def _round_sizes(largest: float) -> list[float]:
    """Two round reference values for the size legend: the largest, rounded down, and about a quarter of it."""
    def round_down(v: float) -> float:
        magnitude = 10.0 ** math.floor(math.log10(v))
        return next(m * magnitude for m in (5, 2, 1) if m * magnitude <= v)

    big = round_down(largest)
    small = round_down(largest / 4)
    return [small, big] if small < big else [big]


def _pareto_missing() -> str:
    from compress.measure.pareto_table import front_metrics

    drawn = [m for m in front_metrics() if m.column.pareto in ("x", "y")]
    tests = ",".join(dict.fromkeys(t for m in drawn for t in m.tests))
    return (f"no variant in these results has both its {' and its '.join(m.words for m in drawn)} measured: "
            f"run `compress bench --tests {tests}`.")


def _predicted_plots(rows: Sequence[dict[str, Any]], name: Callable[[dict[str, Any]], str], quality: bool) -> str:
    """Predicted against measured, one plot a metric with such a plot (quality ones, or the others)."""
    figures = []
    for m, plot in metrics.plotted("predicted"):
        if (m.kind == "quality") != quality:
            continue
        c = m.column
        points = [{"x": r.get(c.predicted_key), "y": r.get(c.key), "label": name(r), "group": r["model"]}
                  for r in rows]
        figures.append(figure(scatter_svg(points, plot.title, f"predicted {c.unit}", f"measured {c.unit}", log=True,
                                          diagonal=True, svg_id=f"pred-{c.key}"), plot.how_to_read))
    return _plots(figures)


def quality_section(rows: Sequence[dict[str, Any]], name: Callable[[dict[str, Any]], str] | None = None) -> str:
    """Predicted vs measured quality per variant: the quality metrics with a predicted-vs-measured plot.
    ``name`` labels a row's point (default: its variant, and its setting's letter where it has one)."""
    return section("Predicted vs measured quality", _predicted_plots(rows, name or _point_name(rows), quality=True),
                   "no quality change against the float32 baseline in these results: run "
                   "`compress bench --tests ppl` (the baseline is scored on the same tokens).")


def _strips(latest: Sequence[dict[str, Any]], rows: Sequence[dict[str, Any]]) -> str:
    """Every sample of the metrics drawn as strips, one row a variant and device (and setting letter)."""
    from compress.measure.pareto_table import row_key, setting_letters

    letters = setting_letters(rows)
    settings = {r["key"]: r.get("setting") for r in rows}

    def label(r: dict[str, Any]) -> str:
        setting = settings.get(row_key(r))
        return f"{r['variant']} {r['device']}" + (f" ({letters[setting]})" if setting else "")

    figures = []
    for m, plot in metrics.plotted("samples"):
        groups = {(r.get("model") or "?", label(r)): r.get("samples") or [] for r in latest
                  if r.get("metric") == m.name and r.get("status") == "ok" and m.read_from(r.get("test"))}
        figures.append(figure(strip_svg(groups, plot.title, m.unit, svg_id=f"strip-{m.name}"), plot.how_to_read))
    return _plots(figures)


def _strips_missing() -> str:
    tests = ",".join(dict.fromkeys(t for m, _ in metrics.plotted("samples") for t in m.tests))
    return f"no timed repetitions in these results: run `compress bench --tests {tests}`."


def _serve_table(latest: Sequence[dict[str, Any]]) -> str:
    """One row a served test (``serve-c4``, ``serve-rate2``) of a variant: its figures by metric, in spec order."""
    from compress.measure.pareto_table import measured_runtime

    served = [r for r in latest if str(r.get("test") or "").startswith("serve") and r.get("status") == "ok"]
    names = [m for m in metrics.METRICS if any(r.get("metric") == m for r in served)]
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in served:
        key = (r.get("model"), r.get("variant"), r.get("device"), measured_runtime(r), r.get("test"))
        rows.setdefault(key, {})[r["metric"]] = r.get("value")
    if not rows:
        return ""
    body = [[*key, *(figures.get(m) for m in names)] for key, figures in sorted(rows.items(), key=lambda kv: str(kv[0]))]
    columns = ["model", "variant", "device", "runtime", "test", *(metrics.spec(m).heading for m in names)]
    return table_html(columns, body, "serve") + ('<p class="note">Each figure is the median over the test\'s '
                                                 "requests; serve-c<i>N</i>: <i>N</i> requests at a time, "
                                                 "serve-rate<i>R</i>: <i>R</i> requests a second.</p>")


def failure_cause(error: str | None) -> str:
    """A failed test's cause as recorded, and where the record lacks the root cause the engine's log
    named (older records of a failed vLLM start say only "See root cause above"), that it does."""
    cause = error or "no reason recorded"
    if "root cause above" in cause and "(root cause:" not in cause:
        cause += (" [the root cause was in the engine's own log, which this record did not keep: "
                  "run the test again, bench now records it]")
    return cause


def _failures_table(latest: Sequence[dict[str, Any]]) -> str:
    """Every failed or skipped test with its whole cause and the runtime it ran in; a card a test on a phone."""
    from compress.measure.pareto_table import measured_runtime

    failed = [r for r in latest if r.get("status") in ("failed", "skipped")]
    if not failed:
        return ""
    return table_html(["model", "variant", "device", "runtime", "test", "status", "reason"],
                      [[r.get("model"), r.get("variant"), r.get("device"), measured_runtime(r), r.get("test"),
                        r.get("status"), failure_cause(r.get("error"))] for r in failed],
                      "failures", prose=("reason",), cards=True)


def write_report(records: Sequence[dict[str, Any]], out: Path, model: str | None = None,
                 as_recorded: bool = False) -> Path:
    from compress.errors import UserInputError

    if not records:
        raise UserInputError("no bench records to report: run `compress bench` first")
    atomic_write_text(Path(out), render_report(records, model, as_recorded=as_recorded))
    return Path(out)
