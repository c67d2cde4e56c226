"""SVG plots drawn in Python for `compress report`: scatter plots and strip plots with legends.

Every plot is a self-contained ``<svg>`` with a viewBox, so it scales down to a phone's width.
Marks and their labels are clipped to the plot area, and the axes leave room inside for the
largest mark, so nothing is drawn over the axes or outside the frame. What colour and size
mean is said in a legend under the plot, not only in the caption. Every string from a record
goes through :func:`compress.report.esc`-style escaping (:func:`esc` here).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

W, H = 460, 300  # the plot's drawn size (CSS pixels before scaling); legends add height below
BOTTOM = 44  # room under the plot area for the tick labels and the x axis title
LEFT = 62  # room for the y tick labels and the y axis title
TOP = 30
RIGHT = 16
LABEL_W = 128  # the strip plot's label column: dots never cover a label
LOG_SPAN = 20.0  # a strip plot whose samples span more than this ratio is drawn on a log axis
PALETTE = ("#57a", "#d73", "#7a4", "#a5b", "#c9a227", "#4aa")  # one colour a model
FONT_W = 6.2  # about the width of one character of an 11 px label
LEGEND_ROW = 16


def esc(value: Any) -> str:
    from compress.output import printable

    return html.escape("" if value is None else printable(value), quote=True)


@dataclass(frozen=True)
class Axis:
    """A numeric axis: the value range (log10 of it on a log axis) drawn from ``start`` to ``stop`` pixels."""

    lo: float
    hi: float
    log: bool
    start: float
    stop: float

    def pos(self, value: float) -> float:
        x = math.log10(value) if self.log else value
        return self.start + (x - self.lo) / (self.hi - self.lo) * (self.stop - self.start)

    def ticks(self) -> list[float]:
        """Round tick values inside the axis: 1-2-5 steps, or 1-2-5 per decade on a log axis."""
        lo, hi = self.lo, self.hi
        if self.log:
            found = [m * 10.0**e for e in range(math.floor(lo), math.ceil(hi) + 1) for m in (1, 2, 5)
                     if lo <= math.log10(m * 10.0**e) <= hi]
            if len(found) > 7:
                found = [v for v in found if f"{v:e}".startswith("1")] or found
            return found if len(found) >= 2 else [10 ** (lo + (hi - lo) * i / 3) for i in range(4)]
        raw = (hi - lo) / 4
        magnitude = 10.0 ** math.floor(math.log10(raw))
        step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
        first = math.ceil(lo / step) * step
        return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def axis(values: Sequence[float], log: bool, start: float, stop: float) -> Axis:
    """An axis over ``values`` with 8% to spare at each end (none below 0 for times and sizes)."""
    vals = [math.log10(v) for v in values if v > 0] if log else list(values)
    lo, hi = (min(vals), max(vals)) if vals else (0.0, 1.0)
    if hi == lo:
        lo, hi = lo - 0.5, hi + 0.5
    margin = (hi - lo) * 0.08
    floor = lo - margin
    if not log and min(vals) >= 0:
        floor = max(floor, 0.0)
    return Axis(floor, hi + margin, log, start, stop)


def tick_text(value: float) -> str:
    """A tick as people write it: 5, 20, 1,000, 0.5, 2.5 (no trailing zeros)."""
    value = round(value, 10)
    return f"{value:,.0f}" if value == round(value) else f"{value:g}"


def axis_label(label: str, log: bool) -> str:
    return f"{label} (log scale)" if log else label


@dataclass(frozen=True)
class Legend:
    """One legend entry: a swatch (``dot``, ``ring``, ``size``: a circle; ``line``, ``dash``: a line),
    its colour and radius, and its text."""

    swatch: str
    text: str
    color: str = "#57a"
    r: float = 5.0


def legend_svg(entries: Sequence[Legend], top: float, width: float = W) -> tuple[str, float]:
    """Entries laid out left to right in rows under the plot; the SVG and the height it takes."""
    parts, x, y = [], 8.0, top + LEGEND_ROW / 2
    for e in entries:
        swatch_w = 22 if e.swatch in ("dash", "line") else max(2 * e.r, 10)
        item_w = swatch_w + 6 + FONT_W * len(e.text) + 14
        if x > 8 and x + item_w > width:
            x, y = 8.0, y + max(LEGEND_ROW, 2 * e.r + 4)
        cx = x + swatch_w / 2
        if e.swatch in ("dash", "line"):
            dashes = ' stroke-dasharray="4"' if e.swatch == "dash" else ' stroke-width="2"'
            parts.append(f'<line x1="{x:.1f}" y1="{y:.1f}" x2="{x + 22:.1f}" y2="{y:.1f}" stroke="{e.color}"{dashes}/>')
        else:
            fill = "none" if e.swatch in ("ring", "size") else e.color
            parts.append(f'<circle cx="{cx:.1f}" cy="{y:.1f}" r="{e.r:.1f}" fill="{fill}" fill-opacity="0.55" '
                         f'stroke="{e.color}"/>')
        parts.append(f'<text x="{x + swatch_w + 6:.1f}" y="{y + 4:.1f}" font-size="11">{esc(e.text)}</text>')
        x += item_w
    height = (y - top) + LEGEND_ROW / 2 + 4 if entries else 0
    return f'<g class="legend">{"".join(parts)}</g>', height


def frame(title: str, xlabel: str, ylabel: str, xa: Axis, ya: Axis) -> str:
    """The title, the grid at round ticks, both axes and their titles."""
    x0, x1, y0, y1 = LEFT, W - RIGHT, H - BOTTOM, TOP
    parts = [f'<text x="{W / 2}" y="18" text-anchor="middle" font-weight="bold">{esc(title)}</text>']
    for value in xa.ticks():
        x = xa.pos(value)
        parts.append(f'<line x1="{x:.1f}" y1="{y1}" x2="{x:.1f}" y2="{y0}" stroke="#eee"/>'
                     f'<text x="{x:.1f}" y="{y0 + 15}" text-anchor="middle" font-size="11">{esc(tick_text(value))}</text>')
    for value in ya.ticks():
        y = ya.pos(value)
        parts.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x1}" y2="{y:.1f}" stroke="#eee"/>'
                     f'<text x="{x0 - 5}" y="{y + 4:.1f}" text-anchor="end" font-size="11">{esc(tick_text(value))}</text>')
    parts += [f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="#444"/>',
              f'<line x1="{x0}" y1="{y1}" x2="{x0}" y2="{y0}" stroke="#444"/>',
              f'<text x="{(x0 + x1) / 2}" y="{H - 10}" text-anchor="middle">{esc(axis_label(xlabel, xa.log))}</text>',
              f'<text x="14" y="{(y0 + y1) / 2}" text-anchor="middle" '
              f'transform="rotate(-90 14 {(y0 + y1) / 2})">{esc(axis_label(ylabel, ya.log))}</text>']
    return "".join(parts)


def svg(body: str, width: float, height: float, svg_id: str) -> str:
    """An SVG that scales down to a narrow screen (viewBox) and never grows past its drawn size."""
    ident = f' id="{esc(svg_id)}"' if svg_id else ""
    return (f'<svg{ident} xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height:.0f}" '
            f'style="width:100%;max-width:{width}px;height:auto">{body}</svg>')


def group_colors(points: Sequence[dict[str, Any]]) -> dict[str, str]:
    """One colour a group (model), in name order."""
    groups = sorted({p.get("group") or "" for p in points})
    return {g: PALETTE[i % len(PALETTE)] for i, g in enumerate(groups)}


def _label_y(x_left: float, text_w: float, y: float, placed: list[tuple[float, float, float]]) -> float | None:
    """The first of a few heights near ``y``, inside the plot area, where a label overlaps no label
    placed so far; None where every one does (the point keeps its name as a tooltip)."""
    return next((y - 6 + dy for dy in (0, 12, -12, 24, -24) if TOP + 10 <= y - 6 + dy <= H - BOTTOM - 2 and not any(
        x_left < r and x_left + text_w > lft and abs(y - 6 + dy - base) < 11 for lft, r, base in placed)), None)


def scatter_svg(points: Sequence[dict[str, Any]], title: str, xlabel: str, ylabel: str, log: bool = False,
                diagonal: bool = False, svg_id: str = "", legend: Sequence[Legend] = ()) -> str:
    """Points ``{"x", "y", "label", "r"?, "front"?, "group"?}``: one colour a group (named in the legend),
    a point with ``front`` False drawn hollow; ``diagonal`` draws y = x (predicted = measured).
    ``legend``: entries for what else the marks mean (their size), after the colours'."""
    pts = [p for p in points if p.get("x") is not None and p.get("y") is not None
           and (not log or (p["x"] > 0 and p["y"] > 0))]
    if not pts:
        return ""
    inset = max(p.get("r", 5) for p in pts) + 3  # the largest mark stays inside the axes
    xs, ys = [p["x"] for p in pts], [p["y"] for p in pts]
    if diagonal:
        xs = ys = xs + ys
    xa, ya = axis(xs, log, LEFT + inset, W - RIGHT - inset), axis(ys, log, H - BOTTOM - inset, TOP + inset)
    colors = group_colors(pts)
    parts = [frame(title, xlabel, ylabel, xa, ya),
             f'<clipPath id="{esc(svg_id)}-area"><rect x="{LEFT}" y="{TOP}" width="{W - RIGHT - LEFT}" '
             f'height="{H - BOTTOM - TOP}"/></clipPath><g clip-path="url(#{esc(svg_id)}-area)">']
    if diagonal:
        lo, hi = max(min(xs), 1e-12), max(xs)
        parts.append(f'<line x1="{xa.pos(lo):.1f}" y1="{ya.pos(lo):.1f}" x2="{xa.pos(hi):.1f}" '
                     f'y2="{ya.pos(hi):.1f}" stroke="#999" stroke-dasharray="4"/>')
    placed: list[tuple[float, float, float]] = []  # label boxes drawn so far: left, right, baseline
    for p in sorted(pts, key=lambda p: -p["y"]):
        x, y, r = xa.pos(p["x"]), ya.pos(p["y"]), p.get("r", 5)
        color = colors[p.get("group") or ""]
        text_w = FONT_W * len(p["label"])
        anchor = "end" if x + r + 4 + text_w > W - RIGHT else "start"  # labels near the right edge go left
        dx = -(r + 3) if anchor == "end" else r + 3
        left = x + dx - (text_w if anchor == "end" else 0)
        fill = "none" if p.get("front") is False else color
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" fill="{fill}" fill-opacity="0.55" '
                     f'stroke="{color}" stroke-width="1.5"><title>{esc(p["label"])}</title></circle>')
        ly = _label_y(left, text_w, y, placed)
        if ly is not None:
            placed.append((left, left + text_w, ly))
            parts.append(f'<text x="{x + dx:.1f}" y="{ly:.1f}" font-size="11" text-anchor="{anchor}">'
                         f'{esc(p["label"])}</text>')
    parts.append("</g>")
    entries = [Legend("dot", g or "records", c) for g, c in colors.items()] + list(legend)
    if diagonal:
        entries.append(Legend("dash", "predicted = measured", "#999"))
    keys, height = legend_svg(entries, H)
    return svg("".join(parts) + keys, W, H + height, svg_id)


def strip_svg(groups: dict[Any, Sequence[float]], title: str, unit: str, svg_id: str = "") -> str:
    """Raw samples per label as jittered dots, with the median (red bar), the range (grey line)
    and the number of samples; labels sit in their own column left of the plot area.

    A key may be ``(heading, label)``: rows are then listed under their heading (a model)."""
    groups = {(k if isinstance(k, tuple) else ("", k)): list(v) for k, v in groups.items() if v}
    if not groups:
        return ""
    headings = sorted({h for h, _ in groups})
    lines: list[tuple[str, list[float] | None]] = []
    for heading in headings:
        if len(headings) > 1:
            lines.append((heading, None))
        lines += [(label, vals) for (h, label), vals in sorted(groups.items()) if h == heading]
    row_h, top = 30, 40
    bottom = top + row_h * len(lines)
    values = [v for vs in groups.values() for v in vs]
    positive = [v for v in values if v > 0]
    log = bool(positive) and len(positive) == len(values) and max(values) / min(values) > LOG_SPAN
    xa = axis(values, log, LABEL_W + 4, W - 40)
    parts = [f'<text x="{W / 2}" y="18" text-anchor="middle" font-weight="bold">{esc(title)}</text>']
    for value in xa.ticks():
        x = xa.pos(value)
        parts.append(f'<line x1="{x:.1f}" y1="30" x2="{x:.1f}" y2="{bottom}" stroke="#eee"/>'
                     f'<text x="{x:.1f}" y="{bottom + 15}" text-anchor="middle" font-size="11">{esc(tick_text(value))}</text>')
    parts.append(f'<text x="{(LABEL_W + W - 40) / 2}" y="{bottom + 36}" text-anchor="middle">'
                 f'{esc(axis_label(unit, log))}</text>'
                 f'<text x="{W - 6}" y="34" text-anchor="end" font-size="10" fill="#666">n</text>')
    for row, (label, vals) in enumerate(lines):
        parts.append(_strip_row(label, vals, 50 + row_h * row, xa, unit))
    keys, height = legend_svg([Legend("dot", "one sample", r=2.5), Legend("line", "median", "#c33"),
                               Legend("line", "smallest to largest", "#bbb")], bottom + 44)
    return svg("".join(parts) + keys, W, bottom + 44 + height, svg_id)


def _strip_row(label: str, vals: list[float] | None, y: float, xa: Axis, unit: str) -> str:
    """One label's dots, range and median; a heading row (a model) where ``vals`` is None."""
    if vals is None:
        return f'<text x="4" y="{y + 8}" font-size="11" font-weight="bold">{esc(label)}</text>'
    shown = label if len(label) <= LABEL_W // FONT_W else label[: int(LABEL_W // FONT_W) - 1] + "…"
    parts = [f'<text x="4" y="{y + 4}" font-size="11"><title>{esc(label)}</title>{esc(shown)}</text>',
             f'<line x1="{xa.pos(min(vals)):.1f}" y1="{y}" x2="{xa.pos(max(vals)):.1f}" y2="{y}" stroke="#bbb"/>']
    for j, v in enumerate(vals):
        jitter = ((j * 7919) % 11 - 5) * 1.2  # deterministic spread so equal values stay visible
        parts.append(f'<circle cx="{xa.pos(v):.1f}" cy="{y + jitter:.1f}" r="2.2" fill="#57a" fill-opacity="0.5"/>')
    median = sorted(vals)[len(vals) // 2]
    xm = xa.pos(median)
    parts.append(f'<line x1="{xm:.1f}" y1="{y - 10}" x2="{xm:.1f}" y2="{y + 10}" stroke="#c33" stroke-width="2">'
                 f'<title>median {esc(tick_text(median))} {esc(unit)}</title></line>'
                 f'<text x="{W - 6}" y="{y + 4}" text-anchor="end" font-size="10" fill="#666">{len(vals)}</text>')
    return "".join(parts)
