"""A second speed model: NVIDIA's measured per-operation data, precomputed.

``profiles/kernel_data.toml`` holds AIConfigurator's static estimates (time to first token,
time per output token) for the catalog models, GPUs, weight types, batches and prompt
lengths it covers in vLLM, written by ``scripts/kernel_data.py`` with the tool's and the
data's versions. The planner ranks by its roofline and puts these figures beside it where
a candidate is covered; nothing here imports more than the TOML reader.
"""

from __future__ import annotations

import math
from typing import Any

from compress.planner import profiles

FILE = "kernel_data.toml"
#: A covered prompt length may differ from the asked cache depth by this factor at most
#: (time per token moves with the cache's size; a 512-token row says little at 32k).
DEPTH_FACTOR = 2.0
#: The weight type AIConfigurator models for a planner variant, by method and stored dtype.
QUANT = {("baseline", "float16"): "bfloat16", ("baseline", "bfloat16"): "bfloat16", ("fp8", None): "fp8"}


def _entries() -> list[dict[str, Any]]:
    # A profiles folder of one's own ($COMPRESS_PROFILES) may have no such table: no second
    # model then, rather than no plan.
    if not (profiles.profiles_dir() / FILE).is_file():
        return []
    return profiles.load(FILE).get("entry", [])


def source() -> str:
    meta = profiles.load(FILE).get("meta", {})
    return f"{meta.get('tool', 'AIConfigurator')} measured-kernel estimates, profiles/{FILE}"


def quant_of(method: str, config: dict[str, Any]) -> str | None:
    return QUANT.get((method, config.get("dtype"))) or QUANT.get((method, None))


def _nearest_prompt(rows: list[dict[str, Any]], tokens: int) -> list[dict[str, Any]]:
    """The rows of the prompt length nearest ``tokens`` (in ratio), if within DEPTH_FACTOR."""
    if not rows:
        return []
    best = min({r["prompt_tokens"] for r in rows}, key=lambda p: abs(math.log(p / max(tokens, 1))))
    if max(best, tokens) / max(min(best, tokens), 1) > DEPTH_FACTOR:
        return []
    return [r for r in rows if r["prompt_tokens"] == best]


def _at_batch(rows: list[dict[str, Any]], batch: int, key: str) -> float | None:
    """``key`` at ``batch``: a row's own, or linear between the two batches around it; None
    outside the rows' batches (no extrapolation)."""
    points = sorted((r["batch"], r[key]) for r in rows)
    for b, value in points:
        if b == batch:
            return float(value)
    for (b0, v0), (b1, v1) in zip(points, points[1:]):
        if b0 < batch < b1:
            return float(v0 + (v1 - v0) * (batch - b0) / (b1 - b0))
    return None


def lookup(model: str, gpu: str, gpus: int, engine: str, method: str, config: dict[str, Any], batch: int,
           cache_tokens: int, prompt_tokens: int) -> dict[str, Any] | None:
    """Decode tok/s (summed over ``batch``) at a cache about ``cache_tokens`` deep and the time
    to first token of one ``prompt_tokens`` prompt, from the measured-kernel table; None
    where the table does not cover the candidate."""
    quant = quant_of(method, config)
    if quant is None:
        return None
    rows = [r for r in _entries() if (r["model"], r["gpu"], r["gpus"], r["engine"], r["quant"])
            == (model, gpu, gpus, engine, quant)]
    decode_rows = _nearest_prompt(rows, cache_tokens)
    tpot = _at_batch(decode_rows, batch, "tpot_ms")
    if tpot is None:
        return None
    prefill_rows = _nearest_prompt(rows, prompt_tokens)
    ttft = _at_batch(prefill_rows, 1, "ttft_ms")
    return {"decode_tok_s": round(1e3 * batch / tpot, 2),
            "ttft_single_ms": None if ttft is None else round(ttft, 1),
            "cache_tokens": decode_rows[0]["prompt_tokens"],
            "data_version": decode_rows[0]["data_version"],
            "source": source()}
