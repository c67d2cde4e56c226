"""Measurement: perplexity, latency, throughput, memory, utilisation and energy of variants.

Layout: :mod:`metrics` (pure formulas), :mod:`runtimes` (one adapter per runtime),
:mod:`perplexity` and :mod:`latency` (one code path for every runtime), :mod:`suite`
(the tests and their figures), :mod:`settings` (what and how much to measure),
:mod:`context` (device, tokens, shape, ceilings, predictions), :mod:`sweep` (the loop
over variants, resume and failure records), :mod:`pareto_table`, :mod:`probe`,
:mod:`energy`. :func:`bench` is what ``compress bench`` calls.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from compress import engines, paths
from compress.errors import UserInputError


def bench(model: str = "default", methods: str | None = None, plan: Path | None = None,
          results_path: Path = paths.results_file(), artifacts: Path | None = None, resume: bool = False,
          device: str = "auto", log: Callable[[str], None] = print, calib_samples: int = 64,
          calib_seq_len: int = 512, seed: int = 0, batch: str | None = None, tests: str | None = None,
          runtime: str | None = None, endpoint: str | None = None, slo: str | None = None,
          concurrency: str | None = None, rate: float | None = None, serve_requests: int | None = None,
          trust_remote_code: bool = False, cluster: Any = None, **sizes: Any) -> tuple[list[dict[str, Any]], Any]:
    """Resolve the model and the variants, run the sweep, and return (records written, Pareto table).

    ``sizes`` are :class:`BenchSettings` overrides by CLI name (``pp``, ``tg``, ``ppl_tokens``...);
    ``None`` keeps the device's default. ``runtime`` runs every artifact in that runtime
    (``vllm``: offline engine and served tests); ``endpoint`` measures an OpenAI-compatible
    server that is already running instead of any artifact. ``cluster`` (a
    :class:`compress.measure.cluster.ClusterOptions`) runs each variant as a task on a Ray cluster.
    """
    from compress import apply, results, sources
    from compress.loading import pick_device
    from compress.measure.pareto_table import pareto_table
    from compress.measure.predictions import with_current_predictions
    from compress.measure.sweep import run_sweep
    from compress.paths import cache_dir

    from compress.fsutil import check_not_input, check_output_file, check_output_folder, remove_stale_partials

    # Output places are checked before minutes of measuring, not after.
    check_output_file(Path(results_path), "--results")
    shared_artifacts = Path(artifacts) if artifacts else None  # on a cluster, None: each node's own cache
    artifacts = Path(artifacts) if artifacts else cache_dir("artifacts")
    check_output_folder(artifacts, "--artifacts")
    source = sources.resolve(model, trust_remote_code=trust_remote_code)
    inputs = {"--model": source.path, "--plan": plan, "--text": sizes.get("text")}
    check_not_input(Path(results_path), inputs, "--results")
    check_not_input(artifacts, inputs, "--artifacts")
    connection = None
    if cluster is not None and endpoint:
        raise UserInputError("--endpoint measures one running server: drop --cluster")
    if cluster is not None:  # Ray is imported on this path only
        from compress.measure.cluster import Cluster

        connection = Cluster(cluster, log=log).open()
    resolved = connection.device(device) if connection else pick_device(device)
    settings = _settings(resolved, sizes, batch=batch, tests=tests, runtime=runtime, endpoint=endpoint, slo=slo,
                         concurrency=concurrency, rate=rate, serve_requests=serve_requests)
    if endpoint:
        from compress.measure.sweep import run_endpoint

        if methods or plan:
            raise UserInputError("--endpoint measures a running server: drop --methods and --plan")
        records = run_endpoint(source, settings, endpoint, Path(results_path), log=log)
        return records, pareto_table(with_current_predictions(results.load(Path(results_path))), model=source.fingerprint())
    variant_list = choose_variants(source, resolved, methods, plan)
    options = apply.Options(device=resolved, calib_samples=calib_samples, calib_seq_len=calib_seq_len, seed=seed,
                            trust_remote_code=trust_remote_code)
    log(f"bench {source.name} on {resolved}: {', '.join(v.name for v in variant_list)}")
    if connection is None:
        _probe_host_once(log)
    for stale in remove_stale_partials(artifacts):
        log(f"removed {stale}, left by an interrupted run")
    if connection is not None:
        records = connection.run_sweep(source, variant_list, settings, options, Path(results_path), shared_artifacts,
                                       resume=resume, log=log)
    else:
        records = run_sweep(source, variant_list, settings, options, Path(results_path), artifacts, resume=resume,
                            log=log, isolate=True)
    table = pareto_table(with_current_predictions(results.load(Path(results_path))), model=source.fingerprint())
    return records, table


def _settings(device: str, sizes: dict[str, Any], *, batch: str | None, tests: str | None, runtime: str | None,
              endpoint: str | None, slo: str | None, concurrency: str | None, rate: float | None,
              serve_requests: int | None) -> Any:
    """The bench settings of the command line's options on ``device`` (None: the device's default);
    the served tests join the default tests where the runtime serves or an endpoint is measured."""
    from compress.measure.settings import OFFLINE_TESTS, SERVED_TESTS, BenchSettings

    overrides = {"threads": sizes.get("threads"), "text": sizes.get("text"), "ppl_tokens": sizes.get("ppl_tokens"),
                 "ppl_context": sizes.get("ppl_context"), "ppl_stride": sizes.get("ppl_stride"),
                 "pp_tokens": sizes.get("pp"), "tg_tokens": sizes.get("tg"), "reps": sizes.get("reps"),
                 "warmup": sizes.get("warmup"), "ppl_convention": sizes.get("ppl_convention"),
                 "kld_top_k": sizes.get("kld_top_k"), "kv_dtype": sizes.get("kv_dtype"),
                 "batch_sizes": _int_list(batch, "--batch") if batch else None,
                 "tests": tuple(t.strip() for t in tests.split(",") if t.strip()) if tests else None,
                 "runtime": runtime, "serve_rate_per_s": rate, "serve_requests": serve_requests,
                 "serve_concurrency": _int_list(concurrency, "--concurrency") if concurrency else None}
    if runtime is not None:
        engines.adapter(runtime)  # an unknown name fails here, with the valid ones
    if overrides["tests"] is None and (endpoint or (runtime is not None and engines.engine(runtime).serves)):
        overrides["tests"] = SERVED_TESTS if endpoint else (*OFFLINE_TESTS, *SERVED_TESTS)
    chosen_tests = overrides["tests"] or OFFLINE_TESTS
    if rate is not None and "serve-rate" not in chosen_tests:
        # A rate that changes nothing would look measured in the command line: say so instead.
        raise UserInputError(f"--rate sets the open-loop test serve-rate, which the tests to run leave out "
                             f"(they are {','.join(chosen_tests)}): add serve-rate to --tests or drop --rate")
    if slo:
        from compress.measure.loadgen import Slo

        parsed = Slo.parse(slo)
        overrides.update(slo_ttft_ms=parsed.ttft_ms, slo_itl_ms=parsed.itl_ms)
    if overrides["ppl_stride"] is None:
        overrides["ppl_stride"] = overrides["ppl_context"]  # a new context keeps the windows disjoint
    return BenchSettings.for_device(device, **overrides)


#: ``COMPRESS_AUTO_PROBE=0``: bench does not measure an unprobed machine first (the planner then
#: uses its documented defaults, and says so).
AUTO_PROBE_ENV = "COMPRESS_AUTO_PROBE"


def _probe_host_once(log: Callable[[str], None]) -> None:
    """Measure this machine before its first bench: the planner's predictions (shown beside every
    measurement) and MBU/MFU use its bandwidth and FLOPs, and the unmeasured defaults can be off by
    a factor of two on a CPU kind they were not taken on."""
    import os

    from compress.measure.probe import probe
    from compress.planner.hardware import probe_of_this_machine, read_probe

    if os.environ.get(AUTO_PROBE_ENV, "").strip() == "0" or probe_of_this_machine(read_probe()):
        return
    log("no probe of this machine yet: measuring its memory bandwidth and matmul speed first (compress probe)")
    data, path = probe(device="cpu")
    log(f"  copy {data.get('copy_bandwidth_gbs', 0):.1f} GB/s, fp32 matmul "
        f"{data.get('matmul_tflops_fp32', 0):.3f} TFLOPS: written to {path}")


def choose_variants(source: Any, device: str, methods: str | None, plan: Path | None) -> list[Any]:
    """``--methods``, else ``--plan``'s Pareto candidates, else the planner's Pareto front for this device."""
    from compress import variants

    if methods and plan:
        raise UserInputError("pass either --methods or --plan, not both")
    if methods:
        return variants.parse_list(methods)
    if plan is not None:
        from compress.planner.document import check_plan_model, read_plan
        from compress.planner.spec import load_model_spec

        doc = read_plan(plan)
        try:
            given = load_model_spec(str(source.path)).to_dict()
        except UserInputError:
            given = None  # a model the planner cannot read: the sweep reports what is wrong with it
        if given is not None:
            # As apply --plan does: a plan sized for another model must not measure this one.
            check_plan_model(doc.model, given, plan, str(source.name))
        return pareto_candidates(doc)
    from compress.planner import make_plan

    return pareto_candidates(make_plan(str(source.path), gpu="cpu" if device == "cpu" else "auto").to_dict())


def pareto_candidates(plan: Any) -> list[Any]:
    """The plan's Pareto-front candidates that fit and have a kernel on its device (``plan``: a
    :class:`compress.planner.document.PlanDocument` or a plan's dict)."""
    from compress import variants
    from compress.planner.document import PlanDocument

    doc = plan if isinstance(plan, PlanDocument) else PlanDocument.from_dict(plan)
    chosen = [c.variant for c in doc.pareto()]
    if not chosen:
        raise UserInputError("the plan has no Pareto candidate that fits and runs on its device: pass --methods")
    return [variants.parse(v) for v in chosen]


def _int_list(text: str, option: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise UserInputError(f"{option} takes comma-separated integers, got {text!r}") from None
