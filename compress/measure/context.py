"""What a bench run knows besides the variant: the device, the token stream, the model's
shape, the utilisation ceilings and the planner's predictions.

Built once per sweep. The planner is optional at run time: where its prediction for a
variant cannot be made, the records carry ``predicted: null`` and the reason is logged.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compress import results, variants
from compress.measure.settings import BenchSettings
from compress.measure.suite import Ceiling, ModelShape
from compress.sources import Source

#: Variants whose perplexity is the reference for the planner's ``ppl_delta_pct``, best first.
BASELINES = ("fp32", "bf16", "fp16")


@dataclass
class BenchEnvironment:
    source: Source
    settings: BenchSettings
    device: str
    threads: int
    fingerprint: str
    where: dict[str, Any]
    results_path: Path
    spec: Any = None  # the planner's ModelSpec, None where the planner cannot read the model
    gpu: Any = None  # the planner's GpuProfile of this device
    notes: list[str] = field(default_factory=list)
    _ids: list[int] | None = None
    _predicted: dict[Any, dict[str, float]] = field(default_factory=dict)
    isolated: bool = False  # measuring in a process of its own (run_sweep's isolate)
    _bos: list[int | None] | None = None
    _reference: Any = None

    def token_ids(self) -> list[int]:
        """The evaluation stream, tokenized once with the source model's Hugging Face tokenizer."""
        if self._ids is None:
            from compress.corpus import load_text, token_ids
            from compress.errors import UserInputError
            from compress.loading import hf_checkpoint, load_tokenizer

            s = self.settings
            needed = max(s.ppl_tokens, s.pp_tokens, max(s.batch_sizes, default=1) * s.tg_prompt_tokens)
            _, text = load_text(s.text, split="eval")
            ids = token_ids(load_tokenizer(hf_checkpoint(self.source)), text, max_tokens=needed)
            if len(ids) < needed:
                raise UserInputError(f"the evaluation text has {len(ids)} tokens: expected at least {needed}; "
                                     "pass a longer --text or smaller --ppl-tokens")
            self._ids = ids
        return self._ids

    def bos_id(self) -> int | None:
        """The BOS id where the source's tokenizer adds one, else None (the add_bos rule our GGUF writer records)."""
        if self._bos is None:
            from compress.loading import hf_checkpoint, load_tokenizer

            tokenizer = load_tokenizer(hf_checkpoint(self.source))
            plain = tokenizer("a", add_special_tokens=False)["input_ids"]
            full = tokenizer("a")["input_ids"]
            adds = len(full) > len(plain) and full[0] != plain[0]
            self._bos = [full[0] if adds else None]
        return self._bos[0]

    def ppl_ids(self) -> list[int]:
        """The stream perplexity scores: the first ``ppl_tokens``, after the convention's BOS."""
        from compress.measure.perplexity import convention_stream

        s = self.settings
        bos = self.bos_id() if s.ppl_convention == "llama.cpp" else None
        return convention_stream(self.token_ids(), s.ppl_convention, bos)[: s.ppl_tokens]

    def ppl_bos(self) -> int | None:
        return self.bos_id() if self.settings.ppl_convention == "llama.cpp" else None

    def reference_key(self) -> str:
        from compress.measure.reference import reference_key

        s = self.settings
        return reference_key(self.fingerprint, self.ppl_ids(), s.ppl_context, s.ppl_stride, s.ppl_convention,
                             self.ppl_bos(), s.kld_top_k)

    def ensure_reference(self) -> str:
        """Build the baseline's cached distributions where they are missing; returns their key."""
        from compress.measure.reference import ensure_reference

        s = self.settings
        return ensure_reference(self.source, self.ppl_ids(), s.ppl_context, s.ppl_stride, s.ppl_convention,
                                self.ppl_bos(), s.kld_top_k, self.device, self.threads)

    def reference(self) -> Any:
        """The cached baseline distributions, or None where none was built (KLD is then not recorded)."""
        if self._reference is None and self.settings.kld_top_k > 0:
            from compress.measure.reference import load_reference

            self._reference = load_reference(self.reference_key())
        return self._reference

    def shape(self, variant: variants.Variant) -> ModelShape | None:
        if self.spec is None:
            return None
        from compress.planner.formats import variant_spec

        try:
            spec = variant_spec(self.spec, variant)
        except ValueError:
            return None
        return model_shape(spec)

    def ceilings(self, runtime: Any) -> list[Ceiling]:
        """The device profile's peaks and, where ``compress probe`` ran, the measured ones."""
        dtype = getattr(runtime, "compute_dtype", "fp32")
        out = []
        if self.gpu is not None and (runtime.device == "cpu") == (self.gpu.kind == "cpu"):
            out.append(Ceiling("profile", self.gpu.peak_tflops(dtype) * 1e12 or None,
                               self.gpu.memory_bandwidth_gbs * 1e9 or None))
        probe = _probe(runtime.device)
        if probe:
            flops = probe.get(f"matmul_tflops_{dtype}") or probe.get("matmul_tflops_fp32")
            out.append(Ceiling("probe", flops * 1e12 if flops else None,
                               probe["copy_bandwidth_gbs"] * 1e9 if probe.get("copy_bandwidth_gbs") else None))
        return out

    def predictions(self, variant: variants.Variant, runtime: str | None = None) -> dict[str, float]:
        """The planner's figures for ``variant`` on this device, keyed by the metric they predict,
        for the engine that runs it (``runtime``; None: the one the planner would pick)."""
        cache_key = (variant.name, runtime)
        if cache_key in self._predicted:
            return dict(self._predicted[cache_key])
        out: dict[str, float] = {}
        if self.spec is not None and self.gpu is not None:
            from compress.measure.predictions import predicted_figures

            try:
                out = predicted_figures(self.spec, self.gpu, variant.name, self.settings, runtime)
            except Exception as err:  # the planner refusing a variant must not stop a measurement
                self.notes.append(f"no prediction for {variant.name}: {err}")
        self._predicted[cache_key] = out
        self._predicted[variant.name] = out  # quality does not depend on the engine (predicted_ppl)
        return dict(out)

    def predicted_ppl(self, variant_name: str, settings_key: str, this_run: Sequence[dict[str, Any]]) -> float | None:
        """Baseline perplexity x (1 + the planner's ppl_delta_pct / 100), once a baseline was measured."""
        delta = self._predicted.get(variant_name, {}).get("ppl_delta_pct")
        if delta is None:
            return None
        found: dict[str, float] = {}
        for r in [*results.load(self.results_path), *this_run]:
            if (r.get("metric") == "perplexity" and r.get("status") == "ok" and r.get("variant") in BASELINES
                    and r.get("model_fingerprint") == self.fingerprint
                    and (r.get("params") or {}).get("settings_key") == settings_key):
                found[r["variant"]] = r["value"]
        base = next((found[b] for b in BASELINES if b in found), None)
        return None if base is None else base * (1 + delta / 100)


@functools.cache
def _probe_file() -> dict[str, Any] | None:
    try:
        from compress.planner.hardware import read_probe
    except ImportError:
        return None
    return read_probe()


def _probe(device: str) -> dict[str, Any] | None:
    """``compress probe``'s figures for this kind of device (the CPU's at the top level, CUDA's under ``cuda``)."""
    probe = _probe_file()
    if not probe:
        return None
    return probe.get("cuda") if device.startswith("cuda") else probe


def environment(source: Source, settings: BenchSettings, results_path: Path) -> BenchEnvironment:
    from compress.loading import pick_device
    from compress.measure.runtimes import physical_cores
    from compress.provenance import device_name, git_sha, host, library_versions

    device = pick_device(settings.device)
    threads = settings.threads or physical_cores()
    env = BenchEnvironment(source=source, settings=settings, device=device, threads=threads,
                           fingerprint=source.fingerprint(), results_path=Path(results_path), where={})
    try:
        from compress.planner.hardware import load_gpu
        from compress.planner.spec import load_model_spec

        env.spec = load_model_spec(str(source.path))
        env.gpu = load_gpu("cpu" if device == "cpu" else "auto")
    except Exception as err:  # the planner not knowing this model leaves the records without predictions
        env.notes.append(f"no planner predictions: {err}")
    env.where = {"device": device, "device_name": device_name(device), "profile": env.gpu.name if env.gpu else None,
                 "threads": threads, "host": host(), "git_sha": git_sha(), "libraries": library_versions(),
                 "run_id": results.new_run_id(), "bench_settings": settings.to_dict()}
    return env


def model_shape(spec: Any) -> ModelShape:
    """The counts bench's FLOP and byte figures need, from a planner model spec (of the variant)."""
    return ModelShape(matmul_params=spec.matmul_params, layers=spec.layers, attention_dim=spec.heads * spec.head_dim,
                      kv_heads=spec.kv_heads, head_dim=spec.head_dim, sliding_window=spec.sliding_window,
                      sliding_window_layers=spec.sliding_window_layers, params=spec.params, vocab=spec.vocab,
                      hidden=spec.hidden, tied_embeddings=spec.tied_embeddings, intermediate=spec.intermediate,
                      experts=spec.experts, experts_per_token=spec.experts_per_token)
