"""What bench records say about a model's quality on a device profile, for the planner and the review.

From ``results/*.jsonl`` (plain JSON, no torch): for each variant of the model measured on
the profile, its perplexity change against the unquantized baseline measured with the same
settings (the same ``settings_key``: same text, windows, convention and threads), and its
KL divergence and top-token agreement where recorded. The newest record of each wins.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from compress import results

#: Variants whose perplexity is the baseline of a perplexity change, best first.
BASELINES = ("fp32", "bf16", "fp16")
QUALITY_METRICS = ("perplexity", "kld_mean", "same_top_pct", "ln_ppl_ratio")
#: The KV-cache type of a record that asked for none, and of a plan that asks for none.
DEFAULT_KV_DTYPE = "fp16"


def model_keys(model: str, spec_name: str, aliases: Iterable[str] = ()) -> set[str]:
    """Names and the fingerprint that bench records of this model may carry."""
    keys = {model, spec_name, *aliases}
    try:
        from compress import sources
        from compress.errors import UserInputError

        if model.startswith("random:"):
            return keys  # random weights have no measured quality to show
        try:
            # Named, not read through: planning a 40 GB file must not hash it. Its fingerprint
            # is known when bench has hashed this version of it before.
            source = sources.resolve(model, check=False)
            keys.add(source.name)
            if fingerprint := source.known_fingerprint():
                keys.add(fingerprint)
        except UserInputError:
            pass  # a catalog name with no local copy: matched by name only
    except ImportError:
        pass
    return keys


def record_kv_dtype(r: dict[str, Any]) -> str:
    """The KV-cache type a record was measured with: what bench was asked for (``--kv-dtype``),
    else the runtime's own 16-bit cache, named fp16 as the planner names it."""
    return (r.get("bench_settings") or {}).get("kv_dtype") or DEFAULT_KV_DTYPE


def measured_quality(records: Sequence[dict[str, Any]], keys: set[str], profile: str,
                     kv_dtype: str = DEFAULT_KV_DTYPE) -> dict[str, dict[str, Any]]:
    """Variant → ``ppl_delta_pct`` (against the baseline of the same settings, else from the
    recorded ln PPL ratio against the float32 baseline), ``perplexity``, ``baseline_ppl``,
    ``kld_mean``, ``same_top_pct``, ``ln_ppl_ratio`` (those that were recorded), and ``setting``:
    the perplexity convention and tokens scored of the figures shown, since a variant measured
    under several settings shows the most recent one. Only records measured with a ``kv_dtype``
    KV cache count."""
    def key(r: dict[str, Any]) -> tuple[str, str, str] | None:
        if (r.get("status") != "ok" or r.get("profile") != profile or r.get("metric") not in QUALITY_METRICS
                or not (r.get("model") in keys or r.get("model_fingerprint") in keys)
                or record_kv_dtype(r) != kv_dtype):
            return None
        return r["variant"], (r.get("params") or {}).get("settings_key") or "", r["metric"]

    latest = results.newest(records, key)
    by_settings: dict[str, dict[str, dict[str, Any]]] = {}
    for (variant, settings, metric), r in latest.items():
        figures = by_settings.setdefault(settings, {}).setdefault(variant, {})
        figures[metric] = r["value"]
        if metric == "perplexity":  # its params name the tokens scored (a KLD record's count positions)
            params = r.get("params") or {}
            figures["setting"] = f"ppl {params.get('convention') or 'compress'}, {params.get('tokens', '?')} tok"
    out: dict[str, dict[str, Any]] = {}
    # Settings measured most recently last, so that they win for a variant measured under several
    # (``latest`` runs oldest first: a setting's last position is its newest record).
    last_seen = {settings: i for i, (_, settings, _) in enumerate(latest)}
    for settings in sorted(by_settings, key=last_seen.__getitem__):
        group = by_settings[settings]
        base = next((group[b]["perplexity"] for b in BASELINES if "perplexity" in group.get(b, {})), None)
        for variant, figures in group.items():
            row = dict(figures)
            if base is not None and "perplexity" in figures:
                row["baseline_ppl"] = base
                row["ppl_delta_pct"] = 100 * (figures["perplexity"] / base - 1)
            elif "ln_ppl_ratio" in figures:
                row["ppl_delta_pct"] = 100 * math.expm1(figures["ln_ppl_ratio"])
            out[variant] = row
    return out
