"""`compress bench`: measure variants of one model on this machine and record every figure.

For each variant: build its artifact with :func:`compress.apply.run` into a cache folder
keyed by :func:`compress.apply.artifact_key` (a folder with a manifest is complete, since
``apply`` renames it into place only at the end, so it is reused), open it in its runtime,
run the tests of :mod:`compress.measure.suite`, and append one record per figure to the
results file. Records of one test share a ``test_id`` and say how many they are
(``test_records``), so ``--resume`` redoes a test an interruption cut in half. A failure
(apply, load, out of memory, a runtime error) becomes a ``failed`` record with its reason
and the sweep goes on; a limitation of a runtime (llama.cpp runs one sequence at a time)
becomes a ``skipped`` record.
"""

from __future__ import annotations

import gc
import os
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from compress import engines, paths, results, variants
from compress.errors import UnsupportedError
from compress.isolation import ChildDied, run_in_child
from compress.measure import suite
from compress.measure.context import BenchEnvironment, environment
from compress.measure.settings import BenchSettings, plan_tests
from compress.sources import Source

DONE = ("ok", "skipped")


def completed_tests(records: Sequence[dict[str, Any]]) -> set[tuple[str, str, str, str]]:
    """Keys ``(model_fingerprint, artifact_key, test, settings_key)`` of tests recorded whole and not failed."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault(r.get("test_id") or f"single-{id(r)}", []).append(r)
    done = set()
    for group in groups.values():
        first = group[0]
        expected = first.get("test_records") or 1
        if len(group) >= expected and all(r.get("status") in DONE for r in group):
            done.add((first.get("model_fingerprint"), first.get("artifact_key"), first.get("test"),
                      (first.get("params") or {}).get("settings_key")))
    return done


def artifact_folder(artifacts_dir: Path, source: Source, variant: variants.Variant, key: str) -> Path:
    slug = paths.safe_name(f"{source.name}-{variant.name}", fill="_", keep="._-")
    return Path(artifacts_dir) / f"{slug}-{key}"


def failure_reason(err: BaseException) -> str:
    """One line for a failure record: out of memory is named as such, since it decides what fits."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    if type(err).__name__ in ("OutOfMemoryError", "MemoryError") or "out of memory" in text.lower():
        return f"out of memory: {text or type(err).__name__}"
    if isinstance(err, UnsupportedError):
        return f"unsupported: {text}"
    if isinstance(err, ChildDied):
        return f"crashed: {text}"
    return f"{type(err).__name__}: {text}"


def run_sweep(source: Source, variant_list: Sequence[variants.Variant], settings: BenchSettings, options: Any,
              results_path: Path, artifacts_dir: Path, resume: bool = False,
              log: Callable[[str], None] = print, env: BenchEnvironment | None = None,
              isolate: bool = False) -> list[dict[str, Any]]:
    """Measure every variant; returns the records written by this run (also appended to ``results_path``).

    With ``isolate`` each variant is applied and measured in a fresh process: its peak memory
    then starts from a clean process rather than from what earlier variants left mapped, and a
    crash inside a native runtime becomes a failure record instead of ending the sweep.
    """
    done = completed_tests(results.load(results_path)) if resume else set()
    written: list[dict[str, Any]] = []
    if "ppl" in settings.tests and settings.kld_top_k > 0:
        _prepare_reference(source, settings, results_path, isolate, log, env)
    for index, variant in enumerate(variant_list, 1):
        log(f"[{index}/{len(variant_list)}] {variant.name}")
        if isolate:
            written += _bench_in_child(source, variant, settings, options, Path(results_path), Path(artifacts_dir), done)
            continue
        env = env or environment(source, settings, results_path)
        with _remote_code(options):
            written += _bench_variant(env, variant, options, Path(results_path), Path(artifacts_dir), done, log)
    return written


def _prepare_reference(source: Source, settings: BenchSettings, results_path: Path, isolate: bool,
                       log: Callable[[str], None], env: BenchEnvironment | None) -> None:
    """Compute the baseline's distributions once, before any variant compares itself with them.

    In a process of its own under ``isolate``, so the float32 model's memory is gone before
    the first variant's peak is measured. A failure only leaves the KLD records out.
    """
    started = time.perf_counter()
    try:
        if isolate:
            key = run_in_child(_child_reference, source, settings, results_path,
                               what="the process computing the KLD baseline")
        else:
            key = (env or environment(source, settings, results_path)).ensure_reference()
    except Exception as err:  # noqa: BLE001 - no baseline means no KLD, never no bench
        log(f"  KL divergence baseline: not available ({failure_reason(err)}); KLD records are left out")
        return
    log(f"  KL divergence baseline {key} ready ({time.perf_counter() - started:.1f} s)")


def _child_reference(source: Source, settings: BenchSettings, results_path: Path) -> str:
    from compress.loading import quiet_libraries

    quiet_libraries()
    return environment(source, settings, results_path).ensure_reference()


def _bench_in_child(source: Source, variant: variants.Variant, settings: BenchSettings, options: Any,
                    results_path: Path, artifacts_dir: Path, done: set[tuple[str, str, str, str]]) -> list[dict[str, Any]]:
    args = (source, variant, settings, options, results_path, artifacts_dir, done)
    try:
        return run_in_child(_child_bench_variant, *args, what=f"the process measuring {variant.name}")
    except ChildDied as crash:  # a segfault or an illegal instruction in a native runtime, or the OOM killer
        env = environment(source, settings, results_path)
        writer = _Writer(results_path, {**env.where, "model": source.name, "model_fingerprint": env.fingerprint,
                                        "variant": variant.name, "method": variant.method,
                                        "runtime": _artifact_runtime(artifacts_dir, source, variant, options, env),
                                        "signal": crash.signal_name}, {})
        writer.failed("load", crash)
        return writer.written


def _artifact_runtime(artifacts_dir: Path, source: Source, variant: variants.Variant, options: Any,
                      env: BenchEnvironment) -> str | None:
    """The runtime that was running when a measuring process died: the chosen one, else the artifact's."""
    if env.settings.runtime:
        return env.settings.runtime
    from compress import apply

    try:
        key = apply.artifact_key(source, variant, options, env.device)
        return apply.read_manifest(artifact_folder(artifacts_dir, source, variant, key)).get("runtime")
    except Exception:  # noqa: BLE001 - no artifact yet: the crash was in apply
        return None


def _child_bench_variant(source: Source, variant: variants.Variant, settings: BenchSettings, options: Any,
                         results_path: Path, artifacts_dir: Path,
                         done: set[tuple[str, str, str, str]]) -> list[dict[str, Any]]:
    from compress.isolation import inject_crash
    from compress.loading import quiet_libraries

    inject_crash("bench-variant")
    quiet_libraries()
    env = environment(source, settings, results_path)
    env.isolated = True
    with _remote_code(options):
        return _bench_variant(env, variant, options, results_path, artifacts_dir, done, _log_to_stderr)


def _remote_code(options: Any) -> Any:
    """Loads (the tokenizer, the artifact's runtime) run a folder's code only with --trust-remote-code."""
    from compress.loading import remote_code

    return remote_code(getattr(options, "trust_remote_code", False))


def _log_to_stderr(line: str) -> None:
    import sys

    print(line, file=sys.stderr, flush=True)


def _bench_variant(env: BenchEnvironment, variant: variants.Variant, options: Any, results_path: Path,
                   artifacts_dir: Path, done: set[tuple[str, str, str, str]],
                   log: Callable[[str], None]) -> list[dict[str, Any]]:
    from compress import apply

    key = apply.artifact_key(env.source, variant, options, env.device)
    plan = plan_tests(env.settings, env.threads)
    pending = [t for t, p in plan.items() if (env.fingerprint, key, t, p["settings_key"]) not in done]
    if not pending:
        log(f"  every test already recorded for artifact {key}: skipped (--resume)")
        return []
    base = {**env.where, "model": env.source.name, "model_fingerprint": env.fingerprint, "variant": variant.name,
            "method": variant.method, "config": dict(variant.steps[-1].config), "artifact_key": key}
    writer = _Writer(results_path, base, plan)
    folder = artifact_folder(artifacts_dir, env.source, variant, key)
    try:
        manifest = _ensure_artifact(env.source, variant, folder, options, log)
    except Exception as err:  # any method failure: record it and go on with the next variant
        log(f"  apply failed: {failure_reason(err)}")
        writer.failed("apply", err)
        return writer.written
    writer.base.update({"artifact": str(folder), "artifact_bytes": manifest["size_bytes"],
                        "runtime": manifest.get("runtime")})
    predicted = env.predictions(variant, env.settings.runtime or manifest.get("runtime"))
    if env.settings.runtime:
        # The measured peak of a chosen runtime covers its whole process tree (vLLM's preallocated
        # KV cache and compiled graphs included), which the planner's memory model does not.
        predicted.pop("peak_memory_bytes", None)
    if "size" in pending:
        writer.group("size", [suite.figure("artifact_bytes", value=manifest["size_bytes"],
                                           predicted=predicted.get("artifact_bytes"))])
    tests = [t for t in pending if t not in ("size", "memory") and not t.startswith("serve-")]
    served = [t for t in pending if t.startswith("serve-")]
    if served:
        log("  served tests start after the offline tests")
    if not tests and ("memory" not in pending or served):
        # Served tests alone do not load the offline engine just to record its memory.
        _serve_tests(env, folder, manifest, served, writer, log)
        return writer.written
    if _offline_tests(env, variant, folder, manifest, tests, served, predicted, writer, log,
                      record_memory="memory" in pending):
        _serve_tests(env, folder, manifest, served, writer, log)
    return writer.written


def _offline_tests(env: BenchEnvironment, variant: variants.Variant, folder: Path, manifest: dict[str, Any],
                   tests: Sequence[str], served: Sequence[str], predicted: dict[str, float], writer: _Writer,
                   log: Callable[[str], None], record_memory: bool) -> bool:
    """Load the artifact once, run the offline ``tests`` in it and record its peak memory;
    False where it did not load (recorded as a failed or skipped ``load``)."""
    from compress.measure.runtimes import open_runtime
    from compress.peakmem import PeakMemory

    # The harness's own state (the tokenized evaluation text, torch and transformers imported)
    # is in place before the window opens, so the peak counts what the model takes.
    import torch  # noqa: F401 - loaded before the window: the runtimes' shared dependency, not the model

    token_ids = env.token_ids()
    ppl_inputs = None
    if "ppl" in tests:  # the baseline's distributions too are read before the window
        reference = env.reference()
        ppl_inputs = (env.ppl_ids(), env.ppl_bos(), reference, env.reference_key() if reference is not None else None)
    _release_memory()
    log(f"  loading it for {', '.join(tests) or 'peak memory'}")
    runtime = None
    with PeakMemory(env.device) as peak:
        try:
            runtime = open_runtime(folder, manifest, env.device, env.threads, env.settings.context_tokens(),
                                   runtime=env.settings.runtime, kv_dtype=env.settings.kv_dtype)
        except Exception as err:  # a runtime that cannot open the artifact
            log(f"  load failed: {failure_reason(err)}")
            skipped = isinstance(err, UnsupportedError)
            writer.failed("load", err, status="skipped" if skipped else "failed")
            for test in served if skipped else []:
                writer.failed(test, err, status="skipped")
            return False
        try:
            writer.base.update({"runtime": runtime.name, "runtime_version": runtime.version,
                                "device": runtime.device, **getattr(runtime, "record_fields", {})})
            ctx = suite.RunContext(runtime, token_ids, env.settings, shape=env.shape(variant),
                                    weight_bytes=_read_weight_bytes(runtime, folder), ceilings=env.ceilings(runtime),
                                    predicted=predicted)
            if "ppl" in tests:
                ctx.ppl_ids, ctx.bos_id, ctx.reference, ctx.reference_key = ppl_inputs
            for test in tests:
                _run_test(test, ctx, env, writer, log)
            memory = runtime.peak_memory_bytes()
        finally:
            runtime.close()
    if record_memory:
        writer.group("memory", [_memory_figure(memory, peak, getattr(runtime, "memory_measured_as", None),
                                               predicted, env.isolated, tests)])
    return True


def _memory_figure(allocator_peak: int | None, peak: Any, measured_as: str | None, predicted: dict[str, float],
                   isolated: bool, tests: Sequence[str]) -> dict[str, Any]:
    """The peak memory of loading and running a variant: on CUDA the allocator's peak (which
    leaves out the CUDA context), on the CPU the peak RSS above the process before loading."""
    value = allocator_peak if allocator_peak is not None else peak.rss_bytes - peak.baseline_rss_bytes
    return suite.figure(
        "peak_memory_bytes", value=value, predicted=predicted.get("peak_memory_bytes"),
        measured_as=(measured_as or "CUDA peak allocated") if allocator_peak is not None
        else "peak process RSS above the RSS before loading, sampled every 20 ms",
        peak_rss_bytes=peak.rss_bytes,
        baseline_rss_bytes=peak.baseline_rss_bytes, added_rss_bytes=peak.rss_bytes - peak.baseline_rss_bytes,
        process="own" if isolated else "shared with earlier variants",
        covers=["load", *tests])


def _serve_tests(env: BenchEnvironment, folder: Path, manifest: dict[str, Any], tests: Sequence[str],
                 writer: _Writer, log: Callable[[str], None]) -> None:
    """The served tests of one artifact: one ``vllm serve`` for all of them, always stopped after."""
    if not tests:
        return
    from compress.measure import serving
    from compress.measure.vllm_runtime import artifact_dtype, check_servable

    try:
        if env.settings.runtime is None or not engines.engine(env.settings.runtime).serves:
            raise UnsupportedError("served tests run the artifact behind a server: pass --runtime "
                                   + " or ".join(d.name for d in engines.descriptors() if d.serves))
        check_servable(manifest)
    except UnsupportedError as err:
        for test in tests:
            writer.failed(test, err, status="skipped")
        log(f"  served tests: skipped ({err})")
        return
    prompts = serving.serve_prompts(env.token_ids(), env.settings.serve_requests, env.settings.pp_tokens)
    remaining = list(tests)
    try:
        with serving.VllmServer(folder, artifact_dtype(manifest), env.settings.context_tokens(),
                                threads=env.threads) as server:
            log(f"  vllm serve healthy on {server.url} after {server.start_s:.0f} s")
            while remaining:
                _run_serve_test(remaining[0], server.url, server.served_name, prompts, writer, log)
                remaining.pop(0)
    except Exception as err:  # the server did not start, or died: the tests not run are failures
        log(f"  served tests: failed ({failure_reason(err)})")
        for test in remaining:
            writer.failed(test, err)


def _run_serve_test(test: str, url: str, model: str, prompts: Sequence[Any], writer: _Writer,
                    log: Callable[[str], None]) -> None:
    from compress.measure import serving

    started = time.perf_counter()
    try:
        figures = serving.run_serve_test(test, writer.plan[test], url, model, prompts)
    except Exception as err:  # a load run that failed: a record, then the next one
        log(f"  {test}: failed ({failure_reason(err)})")
        writer.failed(test, err)
        return
    _write_group(writer, test, figures, started, log)


def run_endpoint(source: Source, settings: BenchSettings, url: str, results_path: Path,
                 log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """The served tests against an OpenAI-compatible server that is already running (no server started).

    Prompts are text (the evaluation stream's token windows decoded with the model's tokenizer),
    since the server's tokenizer is its own.
    """
    from compress.loading import hf_checkpoint, load_tokenizer
    from compress.measure import loadgen, serving

    base_url = loadgen.base_url(url)
    model = loadgen.served_model(base_url)
    env = environment(source, settings, results_path)
    plan = {t: p for t, p in plan_tests(settings, env.threads).items() if t.startswith("serve-")}
    if not plan:
        raise UnsupportedError("--endpoint runs the served tests only: drop --tests or include serve")
    base = {**env.where, "model": env.source.name, "model_fingerprint": env.fingerprint,
            "variant": f"endpoint:{model}", "method": "endpoint", "config": {"endpoint": base_url, "served_model": model},
            "artifact_key": None, "runtime": "openai-endpoint", "runtime_version": None, "device": "remote"}
    writer = _Writer(results_path, base, plan)
    tokenizer = load_tokenizer(hf_checkpoint(source))
    prompts = [tokenizer.decode(p) for p in serving.serve_prompts(env.token_ids(), settings.serve_requests,
                                                                   settings.pp_tokens)]
    log(f"endpoint {base_url}: model {model}")
    for test in plan:
        _run_serve_test(test, base_url, model, prompts, writer, log)
    return writer.written


def _run_test(test: str, ctx: suite.RunContext, env: BenchEnvironment, writer: _Writer,
              log: Callable[[str], None]) -> None:
    started = time.perf_counter()
    try:
        if test == "ppl":
            ctx.predicted["perplexity"] = env.predicted_ppl(writer.base["variant"], writer.plan["ppl"]["settings_key"],
                                                            writer.written)
            figures = suite.run_ppl(ctx)
        elif test.startswith("pp"):
            figures = suite.run_prefill(ctx)
        elif test.startswith("tg"):
            figures = suite.run_decode(ctx)
        else:
            batch = writer.plan[test]["batch"]
            if ctx.runtime.max_batch is not None and batch > ctx.runtime.max_batch:
                raise UnsupportedError(f"{ctx.runtime.name} runs at most {ctx.runtime.max_batch} sequence(s) at once; "
                                       f"batch {batch} not measured")
            figures = suite.run_batch(ctx, batch)
    except UnsupportedError as err:
        log(f"  {test}: skipped ({err})")
        writer.failed(test, err, status="skipped")
        return
    except Exception as err:  # OOM, runtime errors: a failure record, then the next test
        log(f"  {test}: failed ({failure_reason(err)})")
        writer.failed(test, err)
        return
    _write_group(writer, test, figures, started, log)


def _write_group(writer: _Writer, test: str, figures: list[dict[str, Any]], started: float,
                 log: Callable[[str], None]) -> None:
    """Append a finished test's figures and log its first three."""
    writer.group(test, figures)
    shown = ", ".join(f"{f['metric']} {f['value']:.4g}" for f in figures[:3])
    log(f"  {test}: {shown} ({time.perf_counter() - started:.1f} s)")


class _Writer:
    """Appends the records of one variant, one test group at a time."""

    def __init__(self, path: Path, base: dict[str, Any], plan: dict[str, dict[str, Any]]) -> None:
        self.path = path
        self.base = base
        self.plan = plan
        self.written: list[dict[str, Any]] = []

    def group(self, test: str, figures: list[dict[str, Any]]) -> None:
        test_id = uuid.uuid4().hex[:12]
        # Other processes competing for the cores inflate every time: keep the load beside the figure.
        load_1m = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        group = []
        for f in figures:
            extra = f.pop("extra", {})
            params = {**self.plan.get(test, {}), **extra, "load_avg_1m": load_1m}
            group.append(results.record(**self.base, **f, test=test, params=params, test_id=test_id,
                                        test_records=len(figures)))
        # One write for the whole test: --resume after a kill sees all of its figures or none.
        results.append(self.path, group)
        self.written += group

    def failed(self, test: str, err: BaseException, status: str = "failed") -> None:
        params = self.plan.get(test, {"settings_key": None})
        self._append(results.failure(failure_reason(err), status, **self.base, test=test, params=params))

    def _append(self, rec: dict[str, Any]) -> None:
        results.append(self.path, rec)
        self.written.append(rec)


def _ensure_artifact(source: Source, variant: variants.Variant, folder: Path, options: Any,
                     log: Callable[[str], None]) -> dict[str, Any]:
    from dataclasses import replace

    from compress import apply

    if (folder / apply.MANIFEST).is_file():
        log(f"  reusing {folder}")
        return apply.read_manifest(folder)
    log(f"  applying into {folder}")
    return apply.run(source, variant, folder, replace(options, force=True), log=lambda line: log(f"    {line}"))


def _read_weight_bytes(runtime: Any, folder: Path) -> int:
    """The weight bytes a decode step streams: as the runtime holds them where it can say (a
    16-bit checkpoint widened to float32 on the CPU), else the weight files'."""
    held = getattr(runtime, "held_weight_bytes", None)
    return held() if held else _weight_bytes(folder)


def _weight_bytes(folder: Path) -> int:
    """Bytes of the weight files."""
    suffixes = (".safetensors", ".bin", ".gguf", ".onnx", ".onnx_data", ".data", ".pt")
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file() and p.suffix in suffixes)


def _release_memory() -> None:
    """Return the previous variant's freed memory to the OS so that its RSS does not count for the next."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)  # glibc keeps freed arenas mapped otherwise
    except (OSError, AttributeError):
        pass
