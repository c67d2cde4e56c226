"""`compress report`: one self-contained HTML file from bench records.

Inline CSS, a few lines of inline JavaScript (table sorting), and SVG plots drawn here
in Python, so the file opens offline and can be mailed. Every string that comes from a
record (model and variant names, errors, devices) goes through :func:`esc`; no record
data is ever placed inside the script, only in escaped text and attributes.

The HTML helpers (:func:`page`, :func:`table_html`, :func:`esc`) are shared with
``compress review``.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from compress.fsutil import atomic_write_text
from compress.output import cell

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0;font-size:13px}
th,td{border:1px solid #ddd;padding:3px 7px;text-align:right}
th{background:#f4f4f4;cursor:pointer;user-select:none}th.sorted-asc:after{content:" \\25B2"}
th.sorted-desc:after{content:" \\25BC"}td.text{text-align:left}tr.front td{background:#eef8ee}
.note{color:#666;font-size:12px}svg{background:#fff;border:1px solid #eee;font-family:system-ui,sans-serif}
.plots{display:flex;flex-wrap:wrap;gap:1em}.fail{color:#a00}
figure{margin:.5em 0;max-width:460px}figcaption{font-size:12px;color:#444;margin-top:.2em}
.scroll{overflow-x:auto;max-width:100%}td.text:last-child{min-width:16em}
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


def esc(value: Any) -> str:
    """Text or attribute-safe HTML of any value (quotes escaped too, control characters made visible)."""
    from compress.output import printable

    return html.escape("" if value is None else printable(value), quote=True)


def page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{esc(title)}</title>"
            f"<style>{CSS}</style></head><body>\n{body}\n<script>{JS}</script></body></html>\n")


def table_html(columns: Sequence[str], rows: Sequence[Sequence[Any]], table_id: str = "", sort_col: int | None = None,
               row_classes: Sequence[str] | None = None) -> str:
    """A sortable table; numbers carry their raw value in ``data-v`` so sorting is numeric."""
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{esc(row_classes[i])}"' if row_classes and row_classes[i] else ""
        cells = []
        for v in row:
            number = _number(v)
            if number is not None:
                cells.append(f'<td data-v="{number!r}">{esc(cell(v))}</td>')
            else:
                cells.append(f'<td class="text">{esc(cell(v))}</td>')
        body.append(f"<tr{cls}>{''.join(cells)}</tr>")
    attrs = f' id="{esc(table_id)}"' if table_id else ""
    attrs += f' data-sort-col="{sort_col}"' if sort_col is not None else ""
    return f'<table class="sortable"{attrs}><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _number(value: Any) -> float | None:
    """The numeric value of a cell (numbers, and numbers pre-formatted as text), for sorting."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


# --- SVG plots -----------------------------------------------------------------------------------

W, H, PAD = 460, 330, 52
LEFT = 62  # room for the y tick labels and the y axis title
LABEL_W = 128  # the strip plot's label column: dots never cover a label
LOG_SPAN = 20.0  # a strip plot whose samples span more than this ratio is drawn on a log axis
PALETTE = ("#57a", "#d73", "#7a4", "#a5b", "#c9a227", "#4aa")  # one colour a model where a plot shows several


def _scale(values: Sequence[float], log: bool) -> tuple[float, float, bool]:
    vals = [math.log10(v) for v in values if v > 0] if log else list(values)
    lo, hi = (min(vals), max(vals)) if vals else (0.0, 1.0)
    if hi == lo:
        lo, hi = lo - 0.5, hi + 0.5
    margin = (hi - lo) * 0.08
    floor = lo - margin
    if not log and min(vals) >= 0:
        floor = max(floor, 0.0)  # times and sizes: no negative ticks
    return floor, hi + margin, log


def _ticks(axis: tuple[float, float, bool]) -> list[float]:
    """Round tick values inside the axis: 1-2-5 steps, or 1-2-5 per decade on a log axis."""
    lo, hi, log = axis
    if log:
        found = [m * 10.0**e for e in range(math.floor(lo), math.ceil(hi) + 1) for m in (1, 2, 5)
                 if lo <= math.log10(m * 10.0**e) <= hi]
        if len(found) > 7:
            found = [v for v in found if f"{v:e}".startswith("1")] or found
        if len(found) >= 2:
            return found
        return [10 ** (lo + (hi - lo) * i / 3) for i in range(4)]
    raw = (hi - lo) / 4
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def _pos(v: float, axis: tuple[float, float, bool], start: float, stop: float, flip: bool = False) -> float:
    lo, hi, log = axis
    x = math.log10(v) if log else v
    frac = (x - lo) / (hi - lo)
    return start + (1 - frac if flip else frac) * (stop - start)


def _tick_text(value: float) -> str:
    """A tick as people write it: 5, 20, 1,000, 0.5, 2.5 (no trailing zeros)."""
    value = round(value, 10)
    return f"{value:,.0f}" if value == round(value) else f"{value:g}"


def axis_label(label: str, log: bool) -> str:
    return f"{label} (log scale)" if log else label


def _axes(title: str, xlabel: str, ylabel: str, xa: tuple[float, float, bool], ya: tuple[float, float, bool]) -> str:
    x0, x1, y0, y1 = LEFT, W - 16, H - PAD, 30
    parts = [f'<text x="{W / 2}" y="18" text-anchor="middle" font-weight="bold">{esc(title)}</text>']
    for value in _ticks(xa):
        x = _pos(value, xa, x0, x1)
        parts.append(f'<line x1="{x:.1f}" y1="{y1}" x2="{x:.1f}" y2="{y0}" stroke="#eee"/>'
                     f'<text x="{x:.1f}" y="{y0 + 15}" text-anchor="middle" font-size="11">{esc(_tick_text(value))}</text>')
    for value in _ticks(ya):
        y = _pos(value, ya, y0, y1)
        parts.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x1}" y2="{y:.1f}" stroke="#eee"/>'
                     f'<text x="{x0 - 5}" y="{y + 4:.1f}" text-anchor="end" font-size="11">{esc(_tick_text(value))}</text>')
    parts += [f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="#444"/>',
              f'<line x1="{x0}" y1="{y1}" x2="{x0}" y2="{y0}" stroke="#444"/>',
              f'<text x="{(x0 + x1) / 2}" y="{H - 12}" text-anchor="middle">{esc(axis_label(xlabel, xa[2]))}</text>',
              f'<text x="14" y="{(y0 + y1) / 2}" text-anchor="middle" '
              f'transform="rotate(-90 14 {(y0 + y1) / 2})">{esc(axis_label(ylabel, ya[2]))}</text>']
    return "".join(parts)


def _svg(body: str, width: int, height: float, svg_id: str) -> str:
    """An SVG that scales down to a narrow screen (viewBox) and never grows past its drawn size."""
    ident = f' id="{esc(svg_id)}"' if svg_id else ""
    return (f'<svg{ident} xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height:.0f}" '
            f'width="{width}" style="max-width:100%;height:auto">{body}</svg>')


def figure(svg: str, how_to_read: str) -> str:
    """A plot with its one-line reading guide underneath; nothing when there is no plot."""
    if not svg:
        return ""
    return f'<figure>{svg}<figcaption><b>How to read:</b> {esc(how_to_read)}</figcaption></figure>'


def scatter_svg(points: Sequence[dict[str, Any]], title: str, xlabel: str, ylabel: str, log: bool = False,
                diagonal: bool = False, svg_id: str = "") -> str:
    """Points ``{"x", "y", "label", "r"?, "highlight"?, "group"?}``; ``diagonal`` draws y = x (predicted =
    measured). A log plot says so on both axis titles. Points of several groups (models) get one colour
    each and a legend."""
    pts = [p for p in points if p.get("x") is not None and p.get("y") is not None and (not log or (p["x"] > 0 and p["y"] > 0))]
    if not pts:
        return ""
    xs, ys = [p["x"] for p in pts], [p["y"] for p in pts]
    if diagonal:
        xs = ys = xs + ys
    xa, ya = _scale(xs, log), _scale(ys, log)
    x0, x1, y0, y1 = LEFT, W - 16, H - PAD, 30
    parts = [_axes(title, xlabel, ylabel, xa, ya)]
    groups = sorted({p["group"] for p in pts if p.get("group")})
    colors = {g: PALETTE[i % len(PALETTE)] for i, g in enumerate(groups)} if len(groups) > 1 else {}
    for i, g in enumerate(colors):
        parts.append(f'<circle cx="{x0 + 12}" cy="{y1 + 8 + 14 * i}" r="4" fill="{colors[g]}"/>'
                     f'<text x="{x0 + 20}" y="{y1 + 12 + 14 * i}" font-size="11">{esc(g)}</text>')
    if diagonal:
        lo, hi = max(min(xs), 1e-12), max(xs)
        parts.append(f'<line x1="{_pos(lo, xa, x0, x1):.1f}" y1="{_pos(lo, ya, y0, y1):.1f}" '
                     f'x2="{_pos(hi, xa, x0, x1):.1f}" y2="{_pos(hi, ya, y0, y1):.1f}" stroke="#999" stroke-dasharray="4"/>')
    placed: list[tuple[float, float, float]] = []  # label boxes drawn so far: left, right, baseline
    for p in sorted(pts, key=lambda p: -p["y"]):
        x, y = _pos(p["x"], xa, x0, x1), _pos(p["y"], ya, y0, y1)
        color = "#2a7" if p.get("highlight") else colors.get(p.get("group"), "#57a")
        anchor = "end" if x > x1 - 80 else "start"  # labels near the right edge go to the left of their point
        dx = -7 if anchor == "end" else 7
        text_w = 6.2 * len(p["label"])  # about the width of an 11 px label
        left = x + dx - (text_w if anchor == "end" else 0)
        # the first of a few heights where the label overlaps no other label
        ly = next((y - 6 + dy for dy in (0, 12, -12, 24, -24, 36) if not any(
            left < r and left + text_w > lft and abs(y - 6 + dy - base) < 11 for lft, r, base in placed)), y - 6)
        placed.append((left, left + text_w, ly))
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{p.get("r", 5):.1f}" fill="{color}" fill-opacity="0.55" '
                     f'stroke="{color}"><title>{esc(p["label"])}</title></circle>'
                     f'<text x="{x + dx:.1f}" y="{ly:.1f}" font-size="11" text-anchor="{anchor}">{esc(p["label"])}</text>')
    return _svg("".join(parts), W, H, svg_id)


def strip_svg(groups: dict[Any, Sequence[float]], title: str, unit: str, svg_id: str = "") -> str:
    """Raw samples per label as jittered dots, with the median (red bar), the range (grey line)
    and the number of samples; labels sit in their own column left of the plot area.

    A key may be ``(heading, label)``: rows are then listed under their heading (a model)."""
    groups = {(k if isinstance(k, tuple) else ("", k)): list(v) for k, v in groups.items() if v}
    if not groups:
        return ""
    headings = sorted({h for h, _ in groups})
    lines: list[tuple[str, str, list[float] | None]] = []
    for heading in headings:
        if len(headings) > 1:
            lines.append((heading, heading, None))
        lines += [(heading, label, vals) for (h, label), vals in sorted(groups.items()) if h == heading]
    row_h = 30
    height = 40 + row_h * len(lines) + 44
    values = [v for vs in groups.values() for v in vs]
    positive = [v for v in values if v > 0]
    log = bool(positive) and len(positive) == len(values) and max(values) / min(values) > LOG_SPAN
    xa = _scale(values, log)
    x0, x1 = LABEL_W, W - 44
    parts = [f'<text x="{W / 2}" y="18" text-anchor="middle" font-weight="bold">{esc(title)}</text>']
    bottom = 40 + row_h * len(lines)
    for value in _ticks(xa):
        x = _pos(value, xa, x0, x1)
        parts.append(f'<line x1="{x:.1f}" y1="30" x2="{x:.1f}" y2="{bottom}" stroke="#eee"/>'
                     f'<text x="{x:.1f}" y="{bottom + 15}" text-anchor="middle" font-size="11">{esc(_tick_text(value))}</text>')
    parts.append(f'<text x="{(x0 + x1) / 2}" y="{height - 8}" text-anchor="middle">{esc(axis_label(unit, log))}</text>')
    parts.append(f'<text x="{W - 4}" y="34" text-anchor="end" font-size="10" fill="#666">n</text>')
    for row, (_, label, vals) in enumerate(lines):
        y = 50 + row_h * row
        if vals is None:  # a heading row
            parts.append(f'<text x="4" y="{y + 8}" font-size="11" font-weight="bold">{esc(label)}</text>')
            continue
        parts.append(f'<text x="4" y="{y + 4}" font-size="11"><title>{esc(label)}</title>{esc(label[:20])}</text>')
        lo, hi = _pos(min(vals), xa, x0, x1), _pos(max(vals), xa, x0, x1)
        parts.append(f'<line x1="{lo:.1f}" y1="{y}" x2="{hi:.1f}" y2="{y}" stroke="#bbb"/>')
        for j, v in enumerate(vals):
            jitter = ((j * 7919) % 11 - 5) * 1.2  # deterministic spread so equal values stay visible
            parts.append(f'<circle cx="{_pos(v, xa, x0, x1):.1f}" cy="{y + jitter:.1f}" r="2.2" fill="#57a" '
                         f'fill-opacity="0.5"/>')
        median = sorted(vals)[len(vals) // 2]
        xm = _pos(median, xa, x0, x1)
        parts.append(f'<line x1="{xm:.1f}" y1="{y - 10}" x2="{xm:.1f}" y2="{y + 10}" stroke="#c33" stroke-width="2">'
                     f'<title>median {esc(_tick_text(median))} {esc(unit)}</title></line>'
                     f'<text x="{W - 4}" y="{y + 4}" text-anchor="end" font-size="10" fill="#666">{len(vals)}</text>')
    return _svg("".join(parts), W, height, svg_id)


# --- the report --------------------------------------------------------------------------------

def render_report(records: Sequence[dict[str, Any]], model: str | None = None, as_recorded: bool = False) -> str:
    """The report of ``records`` (predictions as the records carry them: today's where the caller
    re-predicted them, the stored ones with ``as_recorded``, which the notes say)."""
    from compress.measure.pareto_table import latest_by_test_and_metric, pareto_rows, pareto_table, row_key

    rows = pareto_rows(records, model)
    table = pareto_table(records, model, as_recorded=as_recorded)
    files = sorted({r["results_file"] for r in records if r.get("results_file")})
    sections = ["<h1>compress bench report</h1>",
                f'<p class="note">{len(records)} records; {len(rows)} model/variant/device/setting rows'
                + (f" from {esc(', '.join(files))}" if files else "") + ". Click a column header to sort.</p>"]
    sections.append("<h2>Measured variants</h2>")
    sections.append('<div class="scroll">' + table_html(table.columns, table.rows, "pareto-table",
                                                         sort_col=table.columns.index("ppl"),
                                                         row_classes=["front" if r.get("pareto") else "" for r in rows])
                    + "</div>")
    sections += [f'<p class="note">{esc(n)}</p>' for n in table.notes]

    max_mem = max((r.get("peak_memory_gib") or 0 for r in rows), default=0) or 1
    def name(r: dict[str, Any]) -> str:
        """A point's label: the variant, with the device where one model was measured on several, and the
        setting where the variant has rows of several settings."""
        several = len({x["device"] for x in rows if x["model"] == r["model"]}) > 1
        about = [r["device"]] if several else []
        about += [r["setting"]] if r.get("setting") else []
        return f"{r['variant']} ({', '.join(about)})" if about else r["variant"]

    pareto_points = [{"x": r.get("decode_tok_s"), "y": r.get("perplexity"), "highlight": r.get("pareto"),
                      "label": name(r), "group": r["model"], "r": 4 + 14 * math.sqrt((r.get("peak_memory_gib") or 0) / max_mem)} for r in rows]
    sections.append("<h2>Pareto front</h2><div class=\"plots\">" + figure(
        scatter_svg(pareto_points, "Perplexity vs decode speed", "decode tok/s", "perplexity", svg_id="pareto-plot"),
        "lower is better quality, further right is faster; the bubble's area grows with peak memory; green "
        "bubbles are on the Pareto front (no other variant has lower perplexity, higher speed and lower memory "
        "at once).") + "</div>")

    predicted = []
    for metric, label, key, pkey, how in (
            ("Decode speed", "tok/s", "decode_tok_s", "predicted_decode_tok_s",
             "each point is a variant; on the dashed line the measurement equals the planner's prediction. "
             "Above it the variant decoded faster than predicted (the planner was pessimistic), below it slower "
             "(optimistic). Log axes: equal distances are equal ratios."),
            ("Peak memory", "GiB", "peak_memory_gib", "predicted_peak_memory_gib",
             "each point is a variant; on the dashed line the measurement equals the planner's prediction. "
             "Above it the variant took more memory than predicted (the planner was optimistic: a plan may not "
             "fit), below it less (pessimistic: memory left unused). Log axes: equal distances are equal ratios.")):
        points = [{"x": r.get(pkey), "y": r.get(key), "label": name(r), "group": r["model"]} for r in rows]
        predicted.append(figure(scatter_svg(points, f"{metric}: predicted vs measured", f"predicted {label}",
                                            f"measured {label}", log=True, diagonal=True, svg_id=f"pred-{key}"), how))
    sections.append("<h2>Predicted vs measured</h2><div class=\"plots\">" + "".join(predicted) + "</div>")
    sections.append(quality_section(rows, name))

    latest = latest_by_test_and_metric(records)
    labels = {r["key"]: r.get("setting") for r in rows}

    def strip_label(r: dict[str, Any]) -> str:
        """A strip's label: variant and device, and the row's setting where its variant has several."""
        setting = labels.get(row_key(r))
        return f"{r['variant']} {r['device']}" + (f" ({setting})" if setting else "")

    strips = []
    for metric, title, unit, how in (
            ("ttft_ms", "Time to first token, every repetition", "ms",
             "one row per variant; each dot is one timed repetition of the prompt, the red bar is the median, the "
             "grey line spans fastest to slowest, n counts repetitions. Left is faster; a wide spread means noisy timings."),
            ("itl_ms", "Inter-token latency, every generated token", "ms",
             "one row per variant; each dot is the time of one generated token (all repetitions), the red bar is "
             "the median, the grey line the range, n the tokens timed. Left is faster; dots far right are stalls."),
            ("decode_tok_s", "Decode speed, every repetition", "tok/s",
             "one row per variant; each dot is one timed repetition of the decode test, the red bar is the "
             "median, the grey line the range, n the repetitions. Right is faster.")):
        groups = {(r.get("model") or "?", strip_label(r)): r.get("samples") or []
                  for r in latest.values()
                  if r.get("metric") == metric and r.get("status") == "ok" and r.get("test", "").startswith(("pp", "tg"))
                  and (model is None or model in (r.get("model"), r.get("model_fingerprint")))}
        strips.append(figure(strip_svg(groups, title, unit, svg_id=f"strip-{metric}"), how))
    sections.append("<h2>Latency distributions</h2><div class=\"plots\">" + "".join(strips) + "</div>")

    failed = [r for r in latest.values() if r.get("status") in ("failed", "skipped")]
    if failed:
        sections.append("<h2>Failed and skipped tests</h2>")
        sections.append('<div class="scroll">' + table_html(
            ["model", "variant", "device", "test", "status", "reason"],
            [[r.get("model"), r.get("variant"), r.get("device"), r.get("test"), r.get("status"), r.get("error")]
             for r in failed], "failures") + "</div>")
    return page("compress bench report", "\n".join(sections))


def quality_section(rows: Sequence[dict[str, Any]], name: Any = None) -> str:
    """Predicted vs measured quality per variant: perplexity change and KL divergence from the baseline.
    ``name`` labels a row's point (default: its variant, and its setting where it has one)."""
    name = name or (lambda r: f"{r['variant']} ({r['setting']})" if r.get("setting") else r["variant"])
    plots = []
    for label, unit, key, pkey in (("Perplexity change", "%", "ppl_delta_pct", "predicted_ppl_delta_pct"),
                                   ("KL divergence", "nats", "kld_mean", "predicted_kld_mean")):
        points = [{"x": r.get(pkey), "y": r.get(key), "label": name(r), "group": r["model"]} for r in rows]
        plots.append(figure(scatter_svg(points, f"{label}: predicted vs measured", f"predicted {unit}",
                                        f"measured {unit}", log=True, diagonal=True, svg_id=f"pred-{key}"),
                            "each point is a variant, compared with the float32 baseline on the same tokens; on the "
                            "dashed line the planner predicted the loss exactly, above it the variant lost more "
                            "than predicted, below it less. Log axes; the baseline itself (0) is not drawn."))
    if not any(plots):
        return ""
    return "<h2>Predicted vs measured quality</h2><div class=\"plots\">" + "".join(plots) + "</div>"


def write_report(records: Sequence[dict[str, Any]], out: Path, model: str | None = None,
                 as_recorded: bool = False) -> Path:
    from compress.errors import UserInputError

    if not records:
        raise UserInputError("no bench records to report: run `compress bench` first")
    atomic_write_text(Path(out), render_report(records, model, as_recorded=as_recorded))
    return Path(out)
