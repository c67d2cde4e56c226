"""The planner's figures beside a measurement: made at bench time, and made again when shown.

A record keeps the prediction made when it was measured (``predicted``), but the planner
improves, and a table that sets a measurement beside an old prediction reports an error
the planner no longer makes. :func:`with_current_predictions` re-predicts each record from
what it says about itself (model, device profile, runtime, bench settings) with today's
planner; the stored figure moves to ``predicted_as_recorded``. Both bench
(:meth:`compress.measure.context.BenchEnvironment.predictions`) and the views call
:func:`predicted_figures`, so a fresh record and a re-predicted one agree.

Imports no torch: the views (pareto, report, review) run on a laptop without it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from compress import engines, results
from compress.measure.metrics import prediction_error_pct
from compress.metrics import METRICS
from compress.measure.settings import BenchSettings
from compress.planner.measured import BASELINES

GIB = 2**30
#: A record whose stored prediction is this far (in percent) from today's is marked as changed:
#: its recorded error says more about the planner of then than about the measurement.
CHANGED_PCT = 10.0


def memory_shapes(settings: BenchSettings) -> list[tuple[int, int, int | None]]:
    """(batch, tokens held, logits kept) of every test a sweep with ``settings`` runs: perplexity
    keeps the logits of every position of its window, generation one a sequence (None)."""
    s = settings
    decode_tokens = s.tg_prompt_tokens + s.tg_tokens
    shapes: list[tuple[int, int, int | None]] = [(1, s.pp_tokens, None), (1, decode_tokens, None)]
    if "ppl" in s.tests:
        shapes.append((1, s.ppl_context, s.ppl_context))
    if "batch" in s.tests:
        shapes += [(b, decode_tokens, None) for b in s.batch_sizes]
    return shapes


def predicted_figures(spec: Any, gpu: Any, variant_name: str, settings: BenchSettings,
                      runtime: str | None = None) -> dict[str, Any]:
    """The planner's figures for one variant measured with ``settings``, keyed by the metric they
    predict (``ppl_delta_pct`` too, from which a perplexity follows once a baseline is measured),
    and the (low, high) band of those the planner gives one for under ``<metric>_band``.

    ``runtime``: the engine that ran it (None or an engine the planner does not model: the
    planner's own choice). Raises the planner's error where it cannot predict the variant.
    """
    from compress.planner.predict import predict_variant

    engine = runtime if runtime in engines.ENGINES else None
    s = settings
    kv = {"kv_dtype": s.kv_dtype} if s.kv_dtype else {}  # a KV-cache type bench ran; else the planner's default
    at_prompt = predict_variant(spec, gpu, variant_name, context=s.context_tokens(), prompt_tokens=s.pp_tokens,
                                runtime=engine, **kv)["predicted"]
    at_decode = predict_variant(spec, gpu, variant_name, context=s.context_tokens(),
                                prompt_tokens=s.tg_prompt_tokens + s.tg_tokens // 2, runtime=engine,
                                **kv)["predicted"]
    # The measured peak spans the whole run, so predict it for the largest (batch, sequence)
    # any test holds, not for one test's shape. What the model takes: weights, KV cache and
    # activations, without the runtime's fixed overhead, which the measurement leaves out too.
    peak_gib = max(_model_memory_gib(predict_variant(spec, gpu, variant_name, context=tokens, batch=batch,
                                                     prompt_tokens=min(tokens, s.pp_tokens), runtime=engine,
                                                     logits_positions=logits, **kv))
                   for batch, tokens, logits in memory_shapes(s))
    out: dict[str, Any] = {"artifact_bytes": at_prompt["artifact_gib"] * GIB, "peak_memory_bytes": peak_gib * GIB,
                           "ttft_ms": at_prompt["ttft_ms"], "decode_tok_s": at_decode["decode_tok_s"]}
    if at_decode.get("decode_tok_s_band"):
        out["decode_tok_s_band"] = tuple(at_decode["decode_tok_s_band"])
    if at_prompt.get("ppl_delta_pct") is not None:
        out["ppl_delta_pct"] = at_prompt["ppl_delta_pct"]
        out["ln_ppl_ratio"] = math.log1p(at_prompt["ppl_delta_pct"] / 100)
        if at_prompt.get("ppl_delta_band_pct"):
            out["ln_ppl_ratio_band"] = tuple(math.log1p(p / 100) for p in at_prompt["ppl_delta_band_pct"])
    if at_prompt.get("kld_mean") is not None:
        out["kld_mean"] = at_prompt["kld_mean"]
        if at_prompt.get("kld_band"):
            out["kld_mean_band"] = tuple(at_prompt["kld_band"])
    return out


def _model_memory_gib(prediction: dict[str, Any]) -> float:
    memory = prediction["memory"]
    return memory["total_gib"] - memory["overhead_gib"]


def is_predicted(record: dict[str, Any]) -> bool:
    """Whether bench sets a prediction beside this record's figure."""
    metric = METRICS.get(record.get("metric") or "")
    return metric is not None and metric.predicted and record.get("status") == "ok" and metric.read_from(record.get("test"))


def planner_model(name: str) -> str:
    """The catalog name the planner knows a recorded model by (``random:NAME`` runs are ``NAME-random``)."""
    return name.removesuffix("-random")


class _Predictor:
    """Today's figures for records, one planner call a (model, profile, variant, runtime, settings)."""

    def __init__(self, hosts: dict[str, tuple[float | None, float | None]] | None = None) -> None:
        self._specs: dict[tuple[str, str | None], Any] = {}
        self._gpus: dict[tuple[str, Any], Any] = {}
        self._hosts = hosts or {}  # run id → the host's (GB/s, fp32 TFLOPS) that run predicted with
        self._figures: dict[tuple[str, ...], dict[str, Any] | str] = {}

    def _spec(self, model: str, artifact: str | None) -> Any:
        """The planner's spec of a recorded model: by its catalog name, else from the source its
        artifact's manifest names, where that file or folder is still here (None otherwise)."""
        key = (model, artifact)
        if key not in self._specs:
            from compress.planner.spec import load_model_spec

            self._specs[key] = None
            for name in (planner_model(model), _manifest_source(artifact)):
                if not name:
                    continue
                try:
                    self._specs[key] = load_model_spec(name)
                    break
                except Exception:  # a name not in the catalog, or a folder or file gone since the measurement
                    continue
        return self._specs[key]

    def _gpu(self, profile: str, run_id: str | None = None) -> Any:
        """The device profile a record was measured on. For this CPU (``cpu``) that is the host as
        the measuring run saw it: its bandwidth and FLOPs (a probe of that machine, or the
        defaults) are in the run's MBU/MFU records, so a record is not re-predicted with the
        bandwidth of whatever machine views it."""
        host = self._hosts.get(run_id or "") if profile == "cpu" else None
        key = (profile, host)
        if key not in self._gpus:
            from dataclasses import replace

            from compress.planner.hardware import load_gpu

            try:
                gpu = load_gpu(profile)
            except Exception:
                gpu = None
            if gpu is not None and host is not None:
                bandwidth_gbs, fp32_tflops = host
                gpu = replace(gpu, memory_bandwidth_gbs=bandwidth_gbs or gpu.memory_bandwidth_gbs,
                              tflops={**gpu.tflops, "fp32": fp32_tflops or gpu.tflops.get("fp32")})
            self._gpus[key] = gpu
        return self._gpus[key]

    def figures(self, r: dict[str, Any]) -> dict[str, Any] | str:
        """The planner's figures for the record's variant, or why there are none."""
        model, profile, variant = r.get("model") or "?", r.get("profile") or "", r.get("variant") or "?"
        stored = r.get("bench_settings") or {}
        runtime = stored.get("runtime") or r.get("runtime")
        artifact = r.get("artifact")
        host = self._hosts.get(r.get("run_id") or "") if profile == "cpu" else None
        key = (model, str(artifact), profile, variant, str(runtime), json.dumps(stored, sort_keys=True), str(host))
        if key not in self._figures:
            self._figures[key] = self._predict(model, artifact, profile, variant, stored, runtime, r.get("run_id"))
        return self._figures[key]

    def _predict(self, model: str, artifact: str | None, profile: str, variant: str, stored: dict[str, Any],
                 runtime: str | None, run_id: str | None = None) -> dict[str, Any] | str:
        spec = self._spec(model, artifact)
        if spec is None:
            return (f"not re-predicted: the planner does not know {model} (not a catalog name, and the source "
                    "its artifact names is not on this machine)")
        gpu = self._gpu(profile, run_id) if profile else None
        if gpu is None:
            return f"not re-predicted: no device profile {profile or '(none recorded)'}"
        try:
            settings = BenchSettings.from_dict(stored) if stored else BenchSettings()
            return predicted_figures(spec, gpu, variant, settings, runtime)
        except Exception as err:  # the planner refusing a variant leaves the figure without a prediction
            return f"not re-predicted: {str(err).splitlines()[0] if str(err) else type(err).__name__}"


def _manifest_source(artifact: str | None) -> str | None:
    """The source path an artifact's manifest records (``compress apply``), if the manifest is here."""
    from compress.fsutil import MANIFEST

    if not artifact:
        return None
    try:
        source = json.loads((Path(artifact) / MANIFEST).read_text(encoding="utf-8")).get("source") or {}
    except (OSError, ValueError, AttributeError):
        return None
    path = source.get("path")
    return path if path and Path(path).exists() else None


def with_current_predictions(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Copies of ``records`` whose predictions are today's planner's.

    Each predicted figure gets ``predicted`` and ``prediction_error_pct`` from today's planner,
    keeps the stored ones as ``predicted_as_recorded`` and ``prediction_error_pct_as_recorded``,
    and ``prediction_changed`` when the two predictions differ by more than :data:`CHANGED_PCT`.
    A record the planner cannot re-predict gets ``predicted: None`` and the reason in
    ``prediction_note``; one whose metric the planner gives a band for gets it as
    ``predicted_band`` (low, high). Other records are returned as they are.
    """
    predictor = _Predictor(measured_hosts(records))
    baselines = _baseline_perplexities(records)
    out = []
    for r in records:
        if not is_predicted(r):
            out.append(r)
            continue
        figures = predictor.figures(r)
        new = {**r, "predicted_as_recorded": r.get("predicted"),
               "prediction_error_pct_as_recorded": r.get("prediction_error_pct")}
        if isinstance(figures, str):
            new.update(predicted=None, prediction_error_pct=None, prediction_note=figures)
            out.append(new)
            continue
        if r["metric"] == "perplexity":
            base = baselines.get((r.get("model_fingerprint"), (r.get("params") or {}).get("settings_key")))
            delta = figures.get("ppl_delta_pct")
            predicted = None if base is None or delta is None else base * (1 + delta / 100)
        else:
            predicted = figures.get(r["metric"])
        new["predicted"] = predicted
        new["prediction_error_pct"] = prediction_error_pct(r.get("value"), predicted)
        if figures.get(f"{r['metric']}_band"):
            new["predicted_band"] = list(figures[f"{r['metric']}_band"])
        old = r.get("predicted")
        new["prediction_changed"] = bool(old and predicted and abs(predicted / old - 1) * 100 > CHANGED_PCT)
        out.append(new)
    return out


def measured_hosts(records: Iterable[dict[str, Any]]) -> dict[str, tuple[float | None, float | None]]:
    """Run id → the host's bandwidth (GB/s) and fp32 TFLOPS its CPU predictions were made with,
    read from the ceilings its MBU and MFU records name as the device profile's."""
    found: dict[str, list[float | None]] = {}
    for r in records:
        params = r.get("params") or {}
        if r.get("profile") != "cpu" or params.get("ceiling_source") != "profile" or not r.get("run_id"):
            continue
        host = found.setdefault(r["run_id"], [None, None])
        if r.get("metric") == "mbu_pct" and isinstance(params.get("ceiling_gbs"), int | float):
            host[0] = float(params["ceiling_gbs"])
        elif r.get("metric") == "mfu_pct" and isinstance(params.get("ceiling_tflops"), int | float):
            host[1] = float(params["ceiling_tflops"])
    return {run: (bw, tf) for run, (bw, tf) in found.items()}


def _baseline_perplexities(records: Iterable[dict[str, Any]]) -> dict[tuple[Any, Any], float]:
    """(model fingerprint, settings key) → the best baseline's newest measured perplexity."""
    def key(r: dict[str, Any]) -> tuple[Any, Any, str] | None:
        if r.get("metric") == "perplexity" and r.get("status") == "ok" and r.get("variant") in BASELINES:
            return r.get("model_fingerprint"), (r.get("params") or {}).get("settings_key"), r["variant"]
        return None

    found: dict[tuple[Any, Any], dict[str, float]] = {}
    for (fingerprint, settings, variant), r in results.newest(records, key).items():
        found.setdefault((fingerprint, settings), {})[variant] = r["value"]
    return {k: next(by[b] for b in BASELINES if b in by) for k, by in found.items()}
