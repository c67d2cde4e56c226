"""Expected quality change of a variant on a given model, with an uncertainty band.

Published changes live in ``profiles/quality.toml``: for each variant, the perplexity (and
where published the KL divergence) of reference models, quantized and not. A change
measured on one model is carried to another in ln(PPL ratio), which is what a per-token
loss difference is (:func:`carry`):

    ln r(model) = ln r(ref) x (N_ref / N_model)^alpha x regime factor

- ``alpha`` (size): smaller models lose more below about 7B parameters (Qwen2 0.5B-7B GGUF
  tables: alpha 0.29) and hardly differ above (Llama 2 7B-70B in one paper each: alpha 0);
  ``[scaling]`` and ``bench/quality_constants.py``.
- the regime factor: models trained far past compute-optimal (Llama 3, Qwen2, SmolLM2...) lose
  about twice what Llama 1/2 lose to the same format (llama.cpp's Llama 2 vs 3 comparison);
  applied when the reference and the model differ in regime; for a model of unknown family
  the band spans both regimes.

Every reference of the variant in the model's own regime is carried (all references where
none is), and the estimates are averaged in ln(PPL ratio); the band is the lowest and
highest estimate with ``alpha`` and the regime factor at the ends of their ranges. Where the
format's mean KL divergence is published, that is what is carried, and the perplexity change
is read from it (ln(PPL ratio) is the mean KLD where the model's distribution stands for the
text's; ``[kld_to_ln_ratio]``): published KLDs are precise where small perplexity changes are
noise. A format with no table borrows another's, scaled by the ratio of their noise powers. Steps of a
recipe add in ln(PPL ratio) (``wanda-50+gptq-4``: pruning's ratio times quantizing's), an
approximation. Layer dropping interpolates published curves in the fraction dropped first.
A quantized KV cache (``--kv-dtype q8_0``) is one more step: its published perplexity change
(``[[kv_cache]]``) is carried the same way and added.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from compress import variants
from compress.planner import profiles
from compress.model.spec import ModelSpec


@dataclass(frozen=True)
class Carried:
    """One quantity carried to the model: point estimate and band, in the quantity's own unit."""

    point: float
    low: float
    high: float

    def __add__(self, other: Carried) -> Carried:
        return Carried(self.point + other.point, self.low + other.low, self.high + other.high)

    def scaled(self, factor: float) -> Carried:
        return Carried(self.point * factor, self.low * factor, self.high * factor)


ZERO = Carried(0.0, 0.0, 0.0)


@dataclass(frozen=True)
class QualityEstimate:
    ppl_delta_pct: float | None
    source: str
    band_pct: tuple[float, float] | None = None  # ppl change (%) at the band's ends
    kld: float | None = None  # expected mean KL divergence from the baseline, nats
    kld_band: tuple[float, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"ppl_delta_pct": self.ppl_delta_pct, "quality_source": self.source,
                "ppl_delta_band_pct": list(self.band_pct) if self.band_pct else None,
                "kld_mean": self.kld, "kld_band": list(self.kld_band) if self.kld_band else None}


def _data() -> dict[str, Any]:
    return profiles.load("quality.toml")


def _entries(key: str) -> list[dict[str, Any]]:
    return [e for e in _data().get("entry", []) if e["variant"] == key]


def regime_of_family(family: str) -> str | None:
    """``modern``, ``legacy`` or None (unknown), by the longest family name the model's family starts with."""
    sc = _data()["scaling"]
    names = [(f, "modern") for f in sc["modern_families"]] + [(f, "legacy") for f in sc["legacy_families"]]
    hits = [(len(f), regime) for f, regime in names if family.lower().startswith(f)]
    return max(hits)[1] if hits else None


def model_regime(spec: ModelSpec) -> str | None:
    return regime_of_family(spec.family or spec.name)


def reference_regime(entry: dict[str, Any]) -> str:
    modern = _data()["scaling"]["modern_references"]
    return "modern" if any(entry["reference"].startswith(m) for m in modern) else "legacy"


def size_factor(reference_params_b: float, params: int, small: float, large: float) -> float:
    """How much more a model of ``params`` loses than the reference: (N_ref / N)^alpha, with
    alpha ``small`` below the pivot size and ``large`` above it (``[scaling]``)."""
    pivot = _data()["scaling"]["size_pivot_b"]

    def log_sensitivity(n_b: float) -> float:
        return -small * math.log(min(n_b, pivot)) - large * math.log(max(n_b, pivot))

    return math.exp(log_sensitivity(params / 1e9) - log_sensitivity(reference_params_b))


def carry(value: float, reference_params_b: float, ref_regime: str, params: int, regime: str | None) -> Carried:
    """``value`` (a ln(PPL ratio) or a KLD) measured on the reference, carried to a model of ``params``."""
    sc = _data()["scaling"]
    f, (f_low, f_high) = sc["regime_factor"], sc["regime_factor_band"]
    if regime == ref_regime:
        factors = (1.0, 1.0, 1.0)
    elif regime == "modern":
        factors = (f, f_low, f_high)
    elif regime == "legacy":
        factors = (1 / f, 1 / f_high, 1 / f_low)
    else:  # unknown family: either regime
        factors = (1.0, 1 / f_high, 1.0) if ref_regime == "modern" else (1.0, 1.0, f_high)
    point = size_factor(reference_params_b, params, sc["size_exponent"], sc["size_exponent_large"])
    ends = [value * size_factor(reference_params_b, params, small, large) * r
            for small in sc["size_exponent_band"] for large in sc["size_exponent_large_band"] for r in factors[1:]]
    return Carried(value * point * factors[0], min(ends), max(ends))


def _names_model(entry: dict[str, Any], spec: ModelSpec) -> bool:
    """Whether a published figure was measured on this very model (its name or an alias)."""
    def plain(text: str) -> str:
        return "".join(ch for ch in text.lower() if ch.isalnum())

    return plain(entry["reference"]) in {plain(n) for n in (spec.name, spec.display_name, *spec.aliases) if n}


def _pooled(entries: list[dict[str, Any]], spec: ModelSpec, field: str) -> tuple[Carried, list[dict[str, Any]]] | None:
    """The average of every reference's carried value: the figures published for this very model
    where there are some, else own-regime references only, where there are some."""
    regime = model_regime(spec)
    usable = [e for e in entries if field != "kld" or "kld" in e]
    same = [e for e in usable if reference_regime(e) == regime]
    chosen = [e for e in usable if _names_model(e, spec)] or same or usable
    if not chosen:
        return None
    carried = []
    for e in chosen:
        value = math.log(e["ppl"] / e["baseline_ppl"]) if field == "ln_ratio" else e["kld"]
        carried.append(carry(value, e["reference_params_b"], reference_regime(e), spec.params, regime))
    n = len(carried)
    return Carried(sum(c.point for c in carried) / n, min(c.low for c in carried),
                   max(c.high for c in carried)), chosen


def _keys(step: variants.Step, table_keys: tuple[str, ...]) -> list[tuple[str, str, float]]:
    """(table key, note, noise ratio) to look the step up under, best first: the descriptor's
    keys, then a proxy, whose figures are scaled by the ratio of the two formats' noise powers."""
    c = step.config
    keys = [(key, "" if i == 0 else f"; group size {c.get('group_size')} / act-order not tabulated, g128 figures used",
             1.0) for i, key in enumerate(table_keys)]
    proxy = _data().get("proxies", {}).get(variants.step_name(step))
    if proxy:
        ratio = proxy["noise_ratio"]
        keys.append((proxy["variant"], f"; proxy: {proxy['variant']} figures x {ratio:g} noise power "
                     "(see profiles/quality.toml [proxies])", ratio))
    return keys


def _describe(chosen: list[dict[str, Any]], spec: ModelSpec, note: str) -> str:
    refs = sorted({f"{e['reference']} ({e['source']})" for e in chosen})
    sc = _data()["scaling"]
    return (f"{len(chosen)} published figure(s) carried to {spec.params / 1e9:.3g}B params, "
            f"{model_regime(spec) or 'unknown'} regime, by (N_ref/N)^{sc['size_exponent']} below "
            f"{sc['size_pivot_b']:g}B and ^{sc['size_exponent_large']} above: " + "; ".join(refs) + note)


def _step_estimate(step: variants.Step, spec: ModelSpec) -> tuple[Carried | None, Carried | None, str]:
    """(ln PPL ratio, KLD, source) of one step; None where nothing is published."""
    c = step.config
    where = step.descriptor.quality_source(step.settings)
    if where.kind == "reference":
        return ZERO, ZERO, "reference precision (no change)"
    if where.kind == "layerdrop":
        return _layerdrop(c["drop_layers"] / spec.layers, spec)
    if where.kind == "none":
        return None, None, where.note
    # References in the model's own regime under any key (the exact variant, then its fallbacks)
    # come before references of the other regime under the exact key.
    regime = model_regime(spec)
    found = [(key, note, ratio, _entries(key)) for key, note, ratio in _keys(step, where.keys)]
    found = [f for f in found if f[3]]
    own = [f for f in found if any(reference_regime(e) == regime for e in f[3])]
    mix, mix_note = _mix_factor(where.gguf_ftype, spec)
    for key, note, ratio, entries in own[:1] or found[:1]:
        ratio, note = ratio * mix, note + mix_note
        ln_ratio, chosen = _pooled(entries, spec, "ln_ratio")
        ln_ratio = ln_ratio.scaled(ratio)
        pooled_kld = _pooled(entries, spec, "kld")
        if pooled_kld is None:
            return ln_ratio, None, _describe(chosen, spec, note)
        kld, kld_chosen = pooled_kld[0].scaled(ratio), pooled_kld[1]
        # Read the perplexity change from the KLD where the KLD is of the model's own regime and
        # no figure of this very model says otherwise.
        if any(_names_model(e, spec) for e in chosen) or any(reference_regime(e) != regime for e in kld_chosen):
            return ln_ratio, kld, _describe(chosen, spec, note)
        refs = ", ".join(sorted({e["reference"] for e in kld_chosen}))
        return _from_kld(kld, ln_ratio), kld, _describe(chosen, spec, f"{note}; ln(PPL ratio) read from the KLD of {refs}")
    return None, None, f"no published perplexity for {variants.step_name(step)} in profiles/quality.toml"


def _mix_factor(ftype: str, spec: ModelSpec) -> tuple[float, str]:
    """How much noisier (or quieter) the GGUF file type's tensors are on this model than in the
    mix its published figures were measured with (``[gguf_type_noise]``): 1 where every row fits."""
    if not ftype:
        return 1.0, ""
    table = _data()["gguf_type_noise"]
    kld = {e["variant"]: e["kld"] for e in _data()["entry"] if e["reference"] == table["reference"] and "kld" in e}
    if any(row not in kld for row in table["types"].values()):
        return 1.0, ""
    noise = {t: kld[row] for t, row in table["types"].items()} | {t: 0.0 for t in table["lossless"]}
    stored = named = 0.0
    for (actual, nominal), numel in _stored_and_named(ftype, spec, str(profiles.profiles_dir())).items():
        if actual not in noise or nominal not in noise:
            return 1.0, ""
        stored += numel * noise[actual]
        named += numel * noise[nominal]
    if not named or abs(stored / named - 1) < 1e-9:
        return 1.0, ""
    return stored / named, f"; x {stored / named:.2f} for the tensors stored in other types on this model"


@lru_cache(maxsize=1024)
def _stored_and_named(ftype: str, spec: ModelSpec, _profiles: str) -> dict[tuple[str, str], int]:
    """Weights of ``spec`` in file type ``ftype`` by (type stored, type the mix names). The same for
    every device a plan weighs, so it is worked out once per model and file type."""
    from compress.methods.gguf import gguf_tensor_type
    from compress.model.tensors import tensors
    from compress.planner.formats import formats

    fmt = formats()
    out: dict[tuple[str, str], int] = {}
    for t in tensors(spec):
        if t.role in ("vector", "router"):
            continue
        key = (gguf_tensor_type(ftype, t, spec, fmt), gguf_tensor_type(ftype, t, spec, fmt, fit_blocks=False))
        out[key] = out.get(key, 0) + t.numel
    return out


def _from_kld(kld: Carried, ln_ratio: Carried) -> Carried:
    """ln(PPL ratio) read from a carried KLD (``[kld_to_ln_ratio]``); the band also spans the
    perplexity changes carried directly, which is what it rests on where KLD is small."""
    conv = _data()["kld_to_ln_ratio"]
    low, high = conv["band"]
    return Carried(kld.point * conv["factor"], min(kld.low * low, ln_ratio.low), max(kld.high * high, ln_ratio.high))


def _layerdrop(fraction: float, spec: ModelSpec) -> tuple[Carried | None, Carried | None, str]:
    curves = _data().get("layerdrop", [])
    if not curves:
        return None, None, "no layer-drop data in profiles/quality.toml"
    carried = []
    for curve in curves:
        points = [(0.0, curve["baseline_ppl"]), *[(float(f), float(p)) for f, p in curve["points"]]]
        (f0, p0), (f1, p1) = points[-2], points[-1]
        for a, b in zip(points, points[1:]):
            if fraction <= b[0]:
                (f0, p0), (f1, p1) = a, b
                break
        ppl = p0 + (p1 - p0) * (fraction - f0) / (f1 - f0)
        carried.append(carry(math.log(ppl / curve["baseline_ppl"]), curve["reference_params_b"], "legacy",
                             spec.params, model_regime(spec)))
    note = "; extrapolated past 20% (optimistic)" if fraction > 0.2 else ""
    n = len(carried)
    pooled = Carried(sum(c.point for c in carried) / n, min(c.low for c in carried), max(c.high for c in carried))
    refs = "; ".join(f"{c['source']} ({c['reference']}, {c['dataset']})" for c in curves)
    return pooled, None, f"{refs}, interpolated at {fraction:.0%} of layers dropped, carried to the model{note}"


def _pct(ln_ratio: float) -> float:
    return round(100 * math.expm1(ln_ratio), 3)


def _kv_cache(kv_dtype: str | None, spec: ModelSpec) -> tuple[Carried | None, Carried | None, str] | None:
    """(ln PPL ratio, KLD, source) a quantized KV cache adds; None where the cache type changes
    nothing. Its published perplexity changes are carried like a weight format's; the KLD is
    read from the carried change (``[kld_to_ln_ratio]`` backwards), none being published."""
    if not kv_dtype or kv_dtype in _data()["kv_cache_types"]["lossless"]:
        return None
    entries = [e for e in _data().get("kv_cache", []) if e["kv_dtype"] == kv_dtype]
    if not entries:
        return ZERO, ZERO, f"KV cache {kv_dtype}: no published perplexity in profiles/quality.toml, left out"
    ln_ratio, chosen = _pooled(entries, spec, "ln_ratio")
    conv = _data()["kld_to_ln_ratio"]
    low, high = conv["band"]
    kld = Carried(ln_ratio.point / conv["factor"], ln_ratio.low / high, ln_ratio.high / low)
    return ln_ratio, kld, f"KV cache {kv_dtype}: " + _describe(chosen, spec, "")


def estimate(spec: ModelSpec, variant: variants.Variant | str, kv_dtype: str | None = None) -> QualityEstimate:
    """Expected relative perplexity change (%) of ``variant`` on ``spec`` with a ``kv_dtype`` KV
    cache (None: the runtime's 16-bit one), its band, KLD where published, sources."""
    v = variants.parse(variant) if isinstance(variant, str) else variant
    ln_total, kld_total, sources = ZERO, ZERO, []
    kld_known = True
    kv = _kv_cache(kv_dtype, spec)
    for ln_ratio, kld, source in [*(_step_estimate(step, spec) for step in v.steps), *([kv] if kv else [])]:
        sources.append(source)
        if ln_ratio is None:
            return QualityEstimate(None, "; ".join(sources))
        ln_total = ln_total + ln_ratio
        if kld is None:
            kld_known = False
        else:
            kld_total = kld_total + kld
    return QualityEstimate(
        _pct(ln_total.point), "; ".join(sources), band_pct=(_pct(ln_total.low), _pct(ln_total.high)),
        kld=round(kld_total.point, 6) if kld_known else None,
        kld_band=(round(kld_total.low, 6), round(kld_total.high, 6)) if kld_known else None)
