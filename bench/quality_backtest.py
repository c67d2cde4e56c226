"""How well the quality model predicts published figures it was not given.

For every published perplexity change in ``profiles/quality.toml`` whose model is in the
planner's catalog, the figures of that model are taken out of the table, the planner predicts
the change from the rest (carried to the model's size and regime, as for any model it has no
figures of), and the prediction is set beside the published value. Prints one row per figure
and the spread of measured / predicted.

    python bench/quality_backtest.py
"""

from __future__ import annotations

import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Reference names in the table -> the catalog model they were measured on.
CATALOG = {"Llama-2-7B": "llama-2-7b", "Llama-2-7B (llama.cpp f364eb6f)": "llama-2-7b",
           "Llama-2-13B": "llama-2-13b", "Llama-2-70B": "llama-2-70b", "Llama-3-8B": "llama-3-8b"}
RESOLVED = 0.002  # a published change below 0.2% is within the noise of the published tables


def main() -> None:
    from compress.planner import profiles, quality
    from compress.planner.spec import load_model_spec

    table = profiles.load("quality.toml")
    rows = []
    for model in sorted(set(CATALOG.values())):
        held_out = {ref for ref, m in CATALOG.items() if m == model}
        figures = [e for e in table["entry"] if e["reference"] in held_out]
        rest = dict(table, entry=[e for e in table["entry"] if e["reference"] not in held_out])
        spec = load_model_spec(model)
        original = quality._data
        quality._data = lambda rest=rest: rest
        try:
            for e in figures:
                published = math.log(e["ppl"] / e["baseline_ppl"])
                if published < RESOLVED:
                    continue
                got = quality.estimate(spec, e["variant"])
                if got.ppl_delta_pct is None:
                    continue
                predicted = math.log1p(got.ppl_delta_pct / 100)
                rows.append((model, e["variant"], e["reference"], 100 * math.expm1(published), got.ppl_delta_pct,
                             published / predicted if predicted > 0 else math.inf))
        finally:
            quality._data = original
    print(f"{'model':12} {'variant':12} {'published %':>11} {'predicted %':>11} {'pub/pred':>8}  reference")
    for model, variant, ref, published, predicted, ratio in rows:
        print(f"{model:12} {variant:12} {published:11.2f} {predicted:11.2f} {ratio:8.2f}  {ref}")
    ratios = [r[-1] for r in rows if math.isfinite(r[-1])]
    within = sum(1 for r in ratios if 1 / 1.5 <= r <= 1.5)
    print(f"\n{len(ratios)} figures: published / predicted median {statistics.median(ratios):.2f}, "
          f"range {min(ratios):.2f}-{max(ratios):.2f}; within a factor 1.5: {within} of {len(ratios)}")


if __name__ == "__main__":
    main()
