"""The answer first: a plan's verdict in a dozen lines, above every table.

A user asks four things before a deployment: does it fit, with which compression, how fast,
and at what cost in quality. The verdict answers them from a plan's own figures (nothing is
computed here), then names the commands that build and serve the choice and the one
alternative per objective. ``compress plan`` and ``compress review`` print it first;
``--brief`` prints only it.
"""

from __future__ import annotations

import re
from typing import Any


def _pct(value: float | None) -> str:
    if value is None:
        return "?"
    return f"{value:+.2g}%" if abs(value) < 10 else f"{value:+,.0f}%"


def _num(value: float | None, unit: str) -> str:
    """Three significant digits and the unit, or '?' where the plan has no figure."""
    if value is None:
        return "?"
    return f"{value:,.0f} {unit}" if abs(value) >= 1000 else f"{value:.3g} {unit}"


def _band(band: list[float] | None) -> str:
    """' (23-38)': a speed's band, as published measurements of its engine spread around it."""
    if not band:
        return ""
    low, high = (f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}" for v in band)
    return f" ({low}-{high})"


def chosen_candidate(plan: dict[str, Any]) -> dict[str, Any] | None:
    """The plan's recommended candidate (None where nothing fits)."""
    return next((c for c in plan["candidates"] if c["variant"] == plan["recommended"]), None)


def build_lines(plan: dict[str, Any], chosen: dict[str, Any]) -> list[str]:
    """The commands that build the chosen variant where the serving command looks for it, the
    download of a catalog model's weights first where they are not here
    (:mod:`compress.planner.serving`, which the review uses too)."""
    from compress.planner.serving import apply_command, model_source

    source = model_source(plan["model"])
    return ([f"Get:      {source.download}"] if source.download else []) + [
        f"Build:    {apply_command(source, chosen)}"]


def _by_objective(plan: dict[str, Any], chosen: dict[str, Any]) -> list[str]:
    """The best other fitting candidate for quality, speed and memory, where it differs."""
    fitting = [c for c in plan["candidates"] if c["fits"] and c["variant"] != chosen["variant"]]
    if not fitting:
        return []

    def quality(c: dict[str, Any]) -> float:
        measured = (c.get("measured") or {}).get("ppl_delta_pct")
        delta = measured if measured is not None else c["predicted"].get("ppl_delta_pct")
        return float("inf") if delta is None else delta

    out = []
    best_quality = min(fitting, key=quality)
    if quality(best_quality) < quality(chosen):
        out.append(f"quality {best_quality['variant']} ({_pct(quality(best_quality))})")
    fastest = max(fitting, key=lambda c: c["predicted"]["decode_tok_s"] or 0)
    if (fastest["predicted"]["decode_tok_s"] or 0) > (chosen["predicted"]["decode_tok_s"] or 0):
        out.append(f"speed {fastest['variant']} ({fastest['predicted']['decode_tok_s']:.3g} tok/s)")
    smallest = min(fitting, key=lambda c: c["predicted"]["peak_memory_gib"])
    if smallest["predicted"]["peak_memory_gib"] < chosen["predicted"]["peak_memory_gib"]:
        out.append(f"memory {smallest['variant']} ({smallest['predicted']['peak_memory_gib']:.3g} GiB)")
    return out


def verdict_lines(plan: dict[str, Any], serve: str | None = None) -> list[str]:
    """At most about a dozen short lines: fit, choice, speed, quality, build, serve, alternatives."""
    gpu, opt, model = plan["gpu"], plan["options"], plan["model"]
    devices = f" x{opt['gpus']}" if opt["gpus"] > 1 else ""
    usable = gpu["usable_memory_gib"] * opt["gpus"] if gpu.get("kind") != "cpu" else gpu["usable_memory_gib"]
    head = (f"{model['name']} on {gpu['display_name']}{devices}, {usable:.3g} GiB usable, "
            f"context {opt['context']}, batch {opt['batch']}")
    chosen = chosen_candidate(plan)
    if chosen is None:
        closest = min(plan["candidates"], key=lambda c: -c["margin_gib"], default=None)
        lines = [head, "Fits:     no: no candidate fits" + (
            f"; the closest, {closest['variant']}, is {-closest['margin_gib']:.3g} GiB short" if closest else "")]
        lines += [f"Try:      {a['text']}" for a in plan.get("alternatives", [])[:3]]
        return lines
    p = chosen["predicted"]
    uncompressed = [c for c in plan["candidates"] if c["variant"] in ("fp16", "bf16", "fp32")]
    base = ""
    if uncompressed:
        first = min(uncompressed, key=lambda c: c["predicted"]["peak_memory_gib"])
        base = f"; {first['variant']} {'fits too' if first['fits'] else 'does not'} ({first['predicted']['peak_memory_gib']:.3g} GiB)"
    band = p.get("ppl_delta_band_pct")
    measured = (chosen.get("measured") or {}).get("ppl_delta_pct")
    quality = f"{_pct(p.get('ppl_delta_pct'))} perplexity"
    if band:
        quality += f" (band {_pct(band[0])} to {_pct(band[1])})"
    quality += f", measured {_pct(measured)}" if measured is not None else ", not measured yet"
    lines = [
        head,
        f"Fits:     yes, {chosen['variant']} peaks at {_num(p.get('peak_memory_gib'), 'GiB')}, "
        f"{chosen['margin_gib']:.3g} GiB to spare{base}",
        f"Use:      {chosen['variant']} in {chosen['runtime']} (kernel {chosen['kernel']})",
        f"Speed:    {_num(p.get('decode_tok_s'), 'tok/s')}{_band(p.get('decode_tok_s_band'))} decode, "
        f"{_num(p.get('ttft_ms'), 'ms')}{_band(p.get('ttft_ms_band'))} to first token "
        f"({p.get('prompt_tokens')}-token prompt)",
        f"Quality:  {quality}",
        *build_lines(plan, chosen),
    ]
    if serve:
        lines.append(f"Serve:    {serve}")
    others = _by_objective(plan, chosen)
    if others:
        lines.append(f"Others:   {'; '.join(others)}")
    return lines


def verdict_block(plan: dict[str, Any], serve: str | None = None, width: int = 80, title: str = "Verdict") -> str:
    """The verdict as printed: labels in their column, each line wrapped to ``width`` with its
    continuation under the text, never cut."""
    import textwrap

    from compress.output import printable

    # Names come from files (a GGUF's general.name): control characters are shown, never sent.
    lines = [printable(line) for line in verdict_lines(plan, serve)]
    labelled = [f"{title:<9} {lines[0]}", *(f"  {line}" for line in lines[1:])]
    glued = (_GLUE.sub(lambda m: m[0].replace(" ", "\0"), line) for line in labelled)
    wrapped = (textwrap.fill(line, width=width, subsequent_indent=" " * 12, break_on_hyphens=False,
                             break_long_words=False) for line in glued)
    return "\n".join(wrapped).replace("\0", " ")


#: A number and its unit ("2 GiB", "884 ms") or its name ("batch 1"), kept on one line when the verdict wraps.
_GLUE = re.compile(r"\d (GiB|GB|MB|ms|s|tok/s|tokens)\b|\b(batch|context) \d")
