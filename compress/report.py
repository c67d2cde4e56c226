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
.note{color:#666;font-size:12px}svg{background:#fff;border:1px solid #eee;margin:.5em 1em .5em 0}
.plots{display:flex;flex-wrap:wrap}.fail{color:#a00}
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
    """Text or attribute-safe HTML of any value (quotes escaped too)."""
    return html.escape("" if value is None else str(value), quote=True)


def page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{esc(title)}</title>"
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

W, H, PAD = 460, 320, 52


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


def _pos(v: float, axis: tuple[float, float, bool], length: int, flip: bool) -> float:
    lo, hi, log = axis
    x = math.log10(v) if log else v
    frac = (x - lo) / (hi - lo)
    return PAD + (1 - frac if flip else frac) * (length - 2 * PAD)


def _axes(title: str, xlabel: str, ylabel: str, xa: tuple[float, float, bool], ya: tuple[float, float, bool]) -> str:
    parts = [f'<text x="{W / 2}" y="18" text-anchor="middle" font-weight="bold">{esc(title)}</text>',
             f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - PAD}" y2="{H - PAD}" stroke="#444"/>',
             f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{H - PAD}" stroke="#444"/>',
             f'<text x="{W / 2}" y="{H - 12}" text-anchor="middle">{esc(xlabel)}</text>',
             f'<text x="14" y="{H / 2}" text-anchor="middle" transform="rotate(-90 14 {H / 2})">{esc(ylabel)}</text>']
    for axis, horizontal in ((xa, True), (ya, False)):
        lo, hi, log = axis
        for i in range(5):
            raw = lo + (hi - lo) * i / 4
            value = 10**raw if log else raw
            if horizontal:
                x = _pos(value, axis, W, False)
                parts.append(f'<text x="{x:.1f}" y="{H - PAD + 14}" text-anchor="middle" font-size="10">{esc(cell(value))}</text>')
            else:
                y = _pos(value, axis, H, True)
                parts.append(f'<text x="{PAD - 4}" y="{y:.1f}" text-anchor="end" font-size="10">{esc(cell(value))}</text>')
    return "".join(parts)


def scatter_svg(points: Sequence[dict[str, Any]], title: str, xlabel: str, ylabel: str, log: bool = False,
                diagonal: bool = False, svg_id: str = "") -> str:
    """Points ``{"x", "y", "label", "r"?, "highlight"?}``; ``diagonal`` draws y = x (predicted = measured)."""
    pts = [p for p in points if p.get("x") is not None and p.get("y") is not None and (not log or (p["x"] > 0 and p["y"] > 0))]
    if not pts:
        return ""
    xs, ys = [p["x"] for p in pts], [p["y"] for p in pts]
    if diagonal:
        xs = ys = xs + ys
    xa, ya = _scale(xs, log), _scale(ys, log)
    parts = [_axes(title, xlabel, ylabel, xa, ya)]
    if diagonal:
        lo, hi = max(min(xs), 1e-12), max(xs)
        parts.append(f'<line x1="{_pos(lo, xa, W, False):.1f}" y1="{_pos(lo, ya, H, True):.1f}" '
                     f'x2="{_pos(hi, xa, W, False):.1f}" y2="{_pos(hi, ya, H, True):.1f}" stroke="#999" stroke-dasharray="4"/>')
    for p in pts:
        x, y = _pos(p["x"], xa, W, False), _pos(p["y"], ya, H, True)
        color = "#2a7" if p.get("highlight") else "#57a"
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{p.get("r", 5):.1f}" fill="{color}" fill-opacity="0.55" '
                     f'stroke="{color}"><title>{esc(p["label"])}</title></circle>'
                     f'<text x="{x + 6:.1f}" y="{y - 6:.1f}" font-size="10">{esc(p["label"])}</text>')
    ident = f' id="{esc(svg_id)}"' if svg_id else ""
    return f'<svg{ident} xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}">{"".join(parts)}</svg>'


def strip_svg(groups: dict[str, Sequence[float]], title: str, unit: str, svg_id: str = "") -> str:
    """Raw samples per label as jittered dots, with a bar at the median (a strip plot)."""
    groups = {k: list(v) for k, v in groups.items() if v}
    if not groups:
        return ""
    height = PAD + 28 * len(groups) + 30
    xa = _scale([v for vs in groups.values() for v in vs], False)
    parts = [f'<text x="{W / 2}" y="18" text-anchor="middle" font-weight="bold">{esc(title)}</text>']
    lo, hi, _ = xa
    for i in range(5):
        value = lo + (hi - lo) * i / 4
        parts.append(f'<text x="{_pos(value, xa, W, False):.1f}" y="{height - 8}" text-anchor="middle" '
                     f'font-size="10">{esc(cell(value))} {esc(unit)}</text>')
    for row, (label, values) in enumerate(sorted(groups.items())):
        y = PAD + 28 * row
        parts.append(f'<text x="4" y="{y + 4}" font-size="10">{esc(label[:18])}</text>')
        for j, v in enumerate(values):
            jitter = ((j * 7919) % 11 - 5) * 1.2  # deterministic spread so equal values stay visible
            parts.append(f'<circle cx="{_pos(v, xa, W, False):.1f}" cy="{y + jitter:.1f}" r="2" fill="#57a" fill-opacity="0.5"/>')
        median = sorted(values)[len(values) // 2]
        xm = _pos(median, xa, W, False)
        parts.append(f'<line x1="{xm:.1f}" y1="{y - 9}" x2="{xm:.1f}" y2="{y + 9}" stroke="#c33" stroke-width="2"/>')
    ident = f' id="{esc(svg_id)}"' if svg_id else ""
    return f'<svg{ident} xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}">{"".join(parts)}</svg>'


# --- the report --------------------------------------------------------------------------------

def render_report(records: Sequence[dict[str, Any]], model: str | None = None) -> str:
    from compress.measure.pareto_table import latest_by_test_and_metric, pareto_rows, pareto_table

    rows = pareto_rows(records, model)
    table = pareto_table(records, model)
    sections = ["<h1>compress bench report</h1>",
                f'<p class="note">{len(records)} records; {len(rows)} model/variant/device rows. '
                "Click a column header to sort.</p>"]
    sections.append("<h2>Measured variants</h2>")
    sections.append(table_html(table.columns, table.rows, "pareto-table", sort_col=table.columns.index("ppl"),
                               row_classes=["front" if r.get("pareto") else "" for r in rows]))
    sections += [f'<p class="note">{esc(n)}</p>' for n in table.notes]

    max_mem = max((r.get("peak_memory_gib") or 0 for r in rows), default=0) or 1
    pareto_points = [{"x": r.get("decode_tok_s"), "y": r.get("perplexity"), "highlight": r.get("pareto"),
                      "label": f"{r['variant']} ({r['device']})",
                      "r": 4 + 14 * math.sqrt((r.get("peak_memory_gib") or 0) / max_mem)} for r in rows]
    sections.append("<h2>Pareto front</h2><div class=\"plots\">"
                    + scatter_svg(pareto_points, "perplexity vs decode speed (bubble = peak memory)",
                                  "decode tok/s", "perplexity", svg_id="pareto-plot") + "</div>")

    predicted = []
    for metric, label, key, pkey in (("decode tok/s", "tok/s", "decode_tok_s", "predicted_decode_tok_s"),
                                     ("peak memory", "GiB", "peak_memory_gib", "predicted_peak_memory_gib")):
        points = [{"x": r.get(pkey), "y": r.get(key), "label": r["variant"]} for r in rows]
        predicted.append(scatter_svg(points, f"{metric}: predicted vs measured", f"predicted {label}",
                                     f"measured {label}", log=True, diagonal=True, svg_id=f"pred-{key}"))
    sections.append("<h2>Predicted vs measured</h2><div class=\"plots\">" + "".join(predicted) + "</div>"
                    '<p class="note">Dashed line: prediction = measurement. Points above it beat the planner.</p>')

    sections.append(quality_section(rows))

    latest = latest_by_test_and_metric(records)
    strips = []
    for metric, unit in (("ttft_ms", "ms"), ("itl_ms", "ms"), ("decode_tok_s", "tok/s")):
        groups = {f"{r['variant']} {r['device']}": r.get("samples") or [] for k, r in latest.items()
                  if r.get("metric") == metric and r.get("status") == "ok" and r.get("test", "").startswith(("pp", "tg"))
                  and (model is None or model in (r.get("model"), r.get("model_fingerprint")))}
        strips.append(strip_svg(groups, f"{metric} raw samples (red: median)", unit, svg_id=f"strip-{metric}"))
    sections.append("<h2>Latency distributions</h2><div class=\"plots\">" + "".join(strips) + "</div>")

    failed = [r for r in latest.values() if r.get("status") in ("failed", "skipped")]
    if failed:
        sections.append("<h2>Failed and skipped tests</h2>")
        sections.append(table_html(["model", "variant", "device", "test", "status", "reason"],
                                   [[r.get("model"), r.get("variant"), r.get("device"), r.get("test"), r.get("status"),
                                     r.get("error")] for r in failed], "failures"))
    return page("compress bench report", "\n".join(sections))


def quality_section(rows: Sequence[dict[str, Any]]) -> str:
    """Predicted vs measured quality per variant: perplexity change and KL divergence from the baseline."""
    plots = []
    for label, unit, key, pkey in (("perplexity change", "%", "ppl_delta_pct", "predicted_ppl_delta_pct"),
                                   ("KL divergence", "nats", "kld_mean", "predicted_kld_mean")):
        points = [{"x": r.get(pkey), "y": r.get(key), "label": r["variant"]} for r in rows]
        plots.append(scatter_svg(points, f"{label}: predicted vs measured", f"predicted {unit}", f"measured {unit}",
                                 log=True, diagonal=True, svg_id=f"pred-{key}"))
    if not any(plots):
        return ""
    return ("<h2>Predicted vs measured quality</h2><div class=\"plots\">" + "".join(plots) + "</div>"
            '<p class="note">How to read: each dot is a variant, against the float32 baseline on the same tokens; '
            "on the dashed line the planner predicted the loss exactly, above it the variant lost more than "
            "predicted (log scales; the baseline itself, at 0, is not drawn).</p>")


def write_report(records: Sequence[dict[str, Any]], out: Path, model: str | None = None) -> Path:
    from compress.errors import UserInputError

    if not records:
        raise UserInputError("no bench records to report: run `compress bench` first")
    atomic_write_text(Path(out), render_report(records, model))
    return Path(out)
