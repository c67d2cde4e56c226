"""How well the planner's speed model predicts published, measured speeds.

Every figure of ``bench/speed_figures.toml`` (llama-bench tables for consumer, workstation,
datacenter and Apple GPUs; vLLM serving runs; this project's H100 runs), each with its
source, is predicted with the planner's roofline at the figure's engine, batch, GPUs and
cache depth, and set beside the published value: the error in %, and whether the value lies
in the prediction's band. The summary gives the median absolute error and the count within
15%, for the figures that informed the planner's constants ("fit") and for those held out.

    python bench/speed_backtest.py            # the table and the summary (80 columns)
    python bench/speed_backtest.py --wide     # with each prediction's band
    python bench/speed_backtest.py --json     # one record a figure
    python bench/speed_backtest.py --bands    # the speed bands the "fit" figures give
"""

from __future__ import annotations

import json
import math
import statistics
import sys
import tomllib
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FIGURES = Path(__file__).with_name("speed_figures.toml")
WITHIN_PCT = 15.0
ENGINE_SHORT = {"llama.cpp": "lcpp", "vllm": "vllm", "transformers": "hf", "onnxruntime": "ort", "mlx": "mlx"}


def load_figures(path: Path = FIGURES) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The sources and one flat record a figure (each row with its block's source, split, engine)."""
    data = tomllib.loads(path.read_text())
    rows = []
    for block in data["figure"]:
        shared = {k: v for k, v in block.items() if k != "rows"}
        rows += [{"gpus": 1, "batch": 1, **shared, **row} for row in block["rows"]]
    return data["source"], rows


def predict(row: dict[str, Any]) -> dict[str, Any]:
    """The planner's prediction of one figure: value and band, in the figure's own unit."""
    from compress.planner import load_gpu, load_model_spec, predict_variant

    spec, gpu = load_model_spec(row["model"]), load_gpu(row["gpu"])
    depth = row.get("cache_tokens") or row.get("prompt_tokens")
    got = predict_variant(spec, gpu, row["variant"], context=max(depth, 1), batch=row["batch"], gpus=row["gpus"],
                          runtime=row["engine"], prompt_tokens=depth)["predicted"]
    if row["metric"] == "decode_tok_s":
        return {"predicted": got["decode_tok_s"], "band": got.get("decode_tok_s_band")}
    # prefill tok/s of one prompt = prompt tokens / its time to first token
    tokens = row["prompt_tokens"]
    band = got.get("ttft_single_ms_band")
    return {"predicted": 1e3 * tokens / got["ttft_single_ms"],
            "band": [1e3 * tokens / band[1], 1e3 * tokens / band[0]] if band else None}


def predict_kernels(row: dict[str, Any]) -> float | None:
    """The measured-kernel model's prediction of one figure (profiles/kernel_data.toml,
    NVIDIA AIConfigurator's data), or None where it does not cover the figure."""
    from compress import dtypes
    from compress.planner import kernel_data

    depth = row.get("cache_tokens") or row.get("prompt_tokens")
    config = {"dtype": dtypes.TORCH_NAMES.get(row["variant"])}
    method = "baseline" if config["dtype"] else row["variant"]
    got = kernel_data.lookup(row["model"], row["gpu"], row["gpus"], row["engine"], method, config, row["batch"],
                             depth, depth)
    if got is None:
        return None
    if row["metric"] == "decode_tok_s":
        return got["decode_tok_s"]
    return 1e3 * row["prompt_tokens"] / got["ttft_single_ms"] if got["ttft_single_ms"] else None


def score(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        kernels = predict_kernels(row)
        if kernels is not None:
            row = {**row, "kernel_predicted": round(kernels, 2),
                   "kernel_error_pct": round(100 * (kernels - row["measured"]) / row["measured"], 1)}
        p = predict(row)
        error = 100 * (p["predicted"] - row["measured"]) / row["measured"]
        band = p["band"]
        out.append({**row, "predicted": round(p["predicted"], 2), "error_pct": round(error, 1),
                    "band": [round(b, 2) for b in band] if band else None,
                    "in_band": bool(band and band[0] <= row["measured"] <= band[1])})
    return out


def summary(scored: list[dict[str, Any]], label: str) -> str:
    if not scored:
        return f"{label}: no figures"
    errors = [abs(r["error_pct"]) for r in scored]
    within = sum(1 for e in errors if e <= WITHIN_PCT)
    in_band = sum(1 for r in scored if r["in_band"])
    return (f"{label}: {len(scored)} figures, median |error| {statistics.median(errors):.1f}%, "
            f"within {WITHIN_PCT:.0f}%: {within}, in band: {in_band}")


def fitted_bands(scored: list[dict[str, Any]]) -> dict[str, dict[str, list[float]]]:
    """measured / predicted of the "fit" figures, per engine and speed (decode, prefill): the
    10th and 90th percentiles where an engine has 5 figures or more, else the lowest and
    highest, widened to hold 1. These are the ratios profiles/runtimes.toml [speed_band] holds."""
    bands: dict[str, dict[str, list[float]]] = {}
    for r in scored:
        if r["split"] == "fit":
            speed = "decode" if r["metric"] == "decode_tok_s" else "prefill"
            bands.setdefault(r["engine"], {}).setdefault(speed, []).append(r["measured"] / r["predicted"])
    out: dict[str, dict[str, list[float]]] = {}
    for engine, speeds in bands.items():
        for speed, ratios in speeds.items():
            if len(ratios) >= 5:
                deciles = statistics.quantiles(ratios, n=10, method="inclusive")
                low, high = deciles[0], deciles[-1]
            else:
                low, high = min(ratios), max(ratios)
            # rounded outwards, so that the figures at the ends stay inside; and the point
            # prediction lies in its own band
            out.setdefault(engine, {})[speed] = [math.floor(100 * min(low, 1.0)) / 100,
                                                 math.ceil(100 * max(high, 1.0)) / 100, len(ratios)]
    return out


def ranking_check(scored: list[dict[str, Any]]) -> list[str]:
    """Where one source measured several variants of a model on the same GPU(s) and test: is
    the variant the planner predicts fastest the one measured fastest? One line a group, with
    both speeds when they differ (what a plan ranked by speed would have picked, and why)."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in scored:
        key = (r["source"], r["gpu"], r["gpus"], r["model"], r["metric"], r["batch"], r.get("cache_tokens"),
               r.get("prompt_tokens"))
        groups.setdefault(key, []).append(r)
    lines = []
    for (_, gpu, gpus, model, metric, batch, depth, _prompt), rows in groups.items():
        if len(rows) < 2:
            continue
        measured = max(rows, key=lambda r: r["measured"])
        predicted = max(rows, key=lambda r: r["predicted"])
        test = _short(metric) + (f"{batch}" if batch > 1 else "") + (f" at {depth}" if depth else "")
        where = f"{gpu}{f' x{gpus}' if gpus > 1 else ''} {model} {test}"
        if measured is predicted:
            lines.append(f"  agree  {where}: {measured['variant']}")
            continue
        lines.append(f"  differ {where}: measured {measured['variant']} {_num(measured['measured'])} > "
                     f"{predicted['variant']} {_num(predicted['measured'])}")
        tie = abs(predicted["predicted"] - measured["predicted"]) <= 0.01 * predicted["predicted"]
        lines.append(f"         predicted {_num(predicted['predicted'])} and {_num(measured['predicted'])}"
                     + (": a tie, both compute bound in the roofline" if tie else ""))
    return lines


def _num(value: float) -> str:
    """Whole numbers from 100 up (14,083), three significant digits below (75.0, 4.81)."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _short(metric: str) -> str:
    return {"decode_tok_s": "tg", "prefill_tok_s": "pp"}[metric]


def main(argv: list[str]) -> int:
    sources, rows = load_figures()
    scored = score(rows)
    if "--json" in argv:
        for r in scored:
            print(json.dumps(r))
        return 0
    if "--bands" in argv:
        for engine, speeds in fitted_bands(scored).items():
            for speed, (low, high, n) in speeds.items():
                print(f'"{engine}".{speed} = [{low}, {high}]    # {n} fit figures')
        return 0
    wide = "--wide" in argv
    band_width = 13 if wide else 4
    print(f"{'gpu':>14} {'model':12} {'variant':8} {'eng':5} {'test':4} {'meas':>7} {'pred':>7} {'err%':>6} "
          f"{'band':>{band_width}} {'set':4}")
    for r in scored:
        gpu = r["gpu"] + (f" x{r['gpus']}" if r["gpus"] > 1 else "")
        test = _short(r["metric"]) + (f"{r['batch']}" if r["batch"] > 1 else "")
        band = (f"{_num(r['band'][0])}-{_num(r['band'][1])}" if r["band"] else "-") if wide else \
            ("in" if r["in_band"] else "out")
        print(f"{gpu:>14} {r['model']:12} {r['variant'].replace('gguf-', ''):8} {ENGINE_SHORT[r['engine']]:5} "
              f"{test:4} {_num(r['measured']):>7} {_num(r['predicted']):>7} {r['error_pct']:+6.1f} "
              f"{band:>{band_width}} {r['split'][:4]}")
    print()
    print(summary(scored, "all"))
    for split in ("fit", "holdout"):
        print(summary([r for r in scored if r["split"] == split], split))
    for engine in dict.fromkeys(r["engine"] for r in scored):
        print(summary([r for r in scored if r["engine"] == engine], f"  {engine}"))
    covered = [r for r in scored if "kernel_predicted" in r]
    print(f"\nMeasured-kernel model (profiles/kernel_data.toml, NVIDIA AIConfigurator) where it covers")
    print(f"the figure ({len(covered)} of {len(scored)}), beside the roofline:")
    print(f"{'gpu':>14} {'model':12} {'variant':8} {'test':4} {'meas':>7} {'kernels':>7} {'err%':>6} "
          f"{'roofline':>8} {'err%':>6}")
    for r in covered:
        test = _short(r["metric"]) + (f"{r['batch']}" if r["batch"] > 1 else "")
        print(f"{r['gpu']:>14} {r['model']:12} {r['variant']:8} {test:4} {_num(r['measured']):>7} "
              f"{_num(r['kernel_predicted']):>7} {r['kernel_error_pct']:+6.1f} {_num(r['predicted']):>8} "
              f"{r['error_pct']:+6.1f}")
    if covered:
        kernel_errors = [abs(r["kernel_error_pct"]) for r in covered]
        roofline_errors = [abs(r["error_pct"]) for r in covered]
        print(f"measured kernels: median |error| {statistics.median(kernel_errors):.1f}%, within "
              f"{WITHIN_PCT:.0f}%: {sum(1 for e in kernel_errors if e <= WITHIN_PCT)}; roofline on the same "
              f"figures: {statistics.median(roofline_errors):.1f}%")
    checks = ranking_check(scored)
    agree = sum(1 for line in checks if line.startswith("  agree"))
    groups = agree + sum(1 for line in checks if line.startswith("  differ"))
    print(f"\nIs the variant predicted fastest the one measured fastest? ({agree} of {groups} agree)")
    print("\n".join(checks))
    print("\ntg: decode tok/s (tgN: at batch N); pp: prefill tok/s of one prompt; band: is")
    print("the measured value in its predicted band (--wide: the band); set: fit, holdout.")
    print("Sources (bench/speed_figures.toml says how each was run):")
    for key, source in sources.items():
        for i, url in enumerate(source["url"].split(", ")):
            print(f"  {key if i == 0 else '':{len(key)}}  {url}" if i else f"  {key}: {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
