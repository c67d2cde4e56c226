"""Derive the constants of the quality model from the published figures they rest on.

Prints two numbers that ``profiles/quality.toml`` states, and how each was obtained, so that
anyone can check them (``tests/compress/planner/test_quality.py`` checks they agree):

1. ``size_exponent`` (alpha in ln r(model) = ln r(ref) x (N_ref / N)^alpha): per format, the
   least-squares slope of ln(ln(PPL ratio)) against ln(parameters) over the Qwen2-Instruct GGUF
   table (0.5B, 1.5B, 7B; one tool, one text), then the median over formats. A figure enters
   only where it is resolved and means what its name says:
   - resolved: the published perplexities have two decimals, so ln(PPL ratio) carries a
     rounding error of up to 0.005/ppl_q + 0.005/ppl_base; a change smaller than 5 times that
     (q8_0, q6_k everywhere, q5_k_m at 7B) says nothing about its size;
   - what its name says: llama.cpp quantizes a tensor to a k-quant (Q2_K..Q6_K, blocks of 256)
     only where its rows are a multiple of 256 wide, and falls back to Q5_0/Q8_0 elsewhere
     (``compress/planner/formats.py`` applies the same rule to file sizes). Qwen2-0.5B is 896 wide, so
     its "q4_k_m" file is mostly Q5_0 and its k-quant rows are left out; Q4_0/Q5_0/Q8_0 have
     blocks of 32 and are what they say at every width.
   The band is the range of the per-format slopes, floored at 0 (no size effect).
   Above the pivot (7B), ``size_exponent_large`` is the same median over the Llama 2 figures
   that one paper published at 7B, 13B and 70B (AWQ paper Table 4, SmoothQuant Table 7),
   leaving out changes that are not positive.
2. ``nf4`` noise ratio: NF4 (bitsandbytes: blocks of 64, absmax scale, 16 normal-quantile
   levels) has no table of its own and borrows Q4_0's (llama.cpp: blocks of 32, scale = the
   signed value of largest magnitude / -8). In the quadratic regime where these formats work, a
   loss change is proportional to the weight-noise power, so the borrowed change is scaled by
   the ratio of the two formats' mean squared rounding errors on Gaussian weights, computed
   here from the formats' definitions (seeded, 2^22 weights).

    python bench/quality_constants.py
"""

from __future__ import annotations

import math
import statistics
import tomllib
from pathlib import Path

# Hidden sizes (config.json of each model on the Hugging Face Hub: hidden_size).
QWEN2_HIDDEN = {"Qwen2-0.5B-Instruct": 896, "Qwen2-1.5B-Instruct": 1536, "Qwen2-7B-Instruct": 3584}
LLAMA2_SIZES = ("Llama-2-7B", "Llama-2-13B", "Llama-2-70B")  # one paper's figures at each size
KQUANT_BLOCK = 256
RESOLUTION_FACTOR = 5.0

# bitsandbytes' NF4 code book (bitsandbytes/functional.py, create_normal_map(offset=0.9677)).
NF4_LEVELS = (-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
              -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
              0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
              0.7229568362236023, 1.0)


def _is_kquant(variant: str) -> bool:
    return "_k" in variant


def _resolved(entry: dict) -> bool:
    rounding = 0.005 / entry["ppl"] + 0.005 / entry["baseline_ppl"]
    return math.log(entry["ppl"] / entry["baseline_ppl"]) >= RESOLUTION_FACTOR * rounding


def _slope(points: list[tuple[float, float]]) -> float:
    xs, ys = zip(*points)
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x in xs)


def size_exponents(entries: list[dict]) -> dict[str, float]:
    """Per variant: alpha from the usable Qwen2 figures (a variant needs two sizes or more)."""
    by_variant: dict[str, list[tuple[float, float]]] = {}
    for e in entries:
        hidden = QWEN2_HIDDEN.get(e["reference"])
        if hidden is None or not _resolved(e):
            continue
        if _is_kquant(e["variant"]) and hidden % KQUANT_BLOCK:
            continue
        ln_ratio = math.log(e["ppl"] / e["baseline_ppl"])
        by_variant.setdefault(e["variant"], []).append((math.log(e["reference_params_b"]), math.log(ln_ratio)))
    return {v: -_slope(p) for v, p in sorted(by_variant.items()) if len(p) >= 2}


def large_size_exponents(entries: list[dict]) -> dict[str, float]:
    """Per (variant, source): alpha from the Llama 2 7B/13B/70B figures of one paper."""
    groups: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for e in entries:
        if e["reference"] not in LLAMA2_SIZES or e["ppl"] <= e["baseline_ppl"]:
            continue
        paper = e["source"].split(",")[0]
        ln_ratio = math.log(e["ppl"] / e["baseline_ppl"])
        groups.setdefault((e["variant"], paper), []).append((math.log(e["reference_params_b"]), math.log(ln_ratio)))
    return {f"{v} ({paper})": -_slope(p) for (v, paper), p in sorted(groups.items()) if len(p) >= 2}


def _q4_0(block):
    import numpy as np

    i = np.abs(block).argmax(axis=1)
    d = block[np.arange(len(block)), i][:, None] / -8.0
    d[d == 0] = 1.0
    return np.clip(np.round(block / d), -8, 7) * d


def _nf4(block):
    import numpy as np

    levels = np.asarray(NF4_LEVELS)
    absmax = np.abs(block).max(axis=1, keepdims=True)
    absmax[absmax == 0] = 1.0
    scaled = block / absmax
    nearest = np.abs(scaled[..., None] - levels).argmin(axis=-1)
    return levels[nearest] * absmax


def nf4_noise_ratio(n: int = 1 << 22, seed: int = 0) -> float:
    """Mean squared rounding error of NF4 (blocks of 64) over that of Q4_0 (blocks of 32)."""
    import numpy as np

    w = np.random.default_rng(seed).standard_normal(n)
    errors = []
    for quantize, block in ((_nf4, 64), (_q4_0, 32)):
        b = w.reshape(-1, block)
        errors.append(float(((quantize(b) - b) ** 2).mean()))
    return errors[0] / errors[1]


def main() -> None:
    path = Path(__file__).resolve().parents[1] / "profiles" / "quality.toml"
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    per_variant = size_exponents(data["entry"])
    for variant, alpha in per_variant.items():
        print(f"  {variant:8} alpha {alpha:+.3f}")
    alphas = list(per_variant.values())
    print(f"size_exponent (median over {len(alphas)} formats): {statistics.median(alphas):.3f}, "
          f"band [{max(0.0, min(alphas)):.3f}, {max(alphas):.3f}]")
    large = large_size_exponents(data["entry"])
    for name, alpha in large.items():
        print(f"  {name:40} alpha {alpha:+.3f}")
    print(f"size_exponent_large (median over {len(large)}): {max(0.0, statistics.median(large.values())):.3f} "
          f"(median {statistics.median(large.values()):+.3f}, floored at 0), "
          f"band [0.000, {max(large.values()):.3f}]")
    print(f"nf4 noise ratio over q4_0 (Gaussian weights): {nf4_noise_ratio():.3f}")
    sc = data["scaling"]
    print(f"profiles/quality.toml states: size_exponent {sc['size_exponent']} {sc['size_exponent_band']}, "
          f"size_exponent_large {sc['size_exponent_large']} {sc['size_exponent_large_band']}, "
          f"nf4 noise_ratio {data['proxies']['nf4']['noise_ratio']}")


if __name__ == "__main__":
    main()
