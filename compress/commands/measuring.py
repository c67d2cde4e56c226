"""`compress bench`, `probe`, `pareto`, `report`, `review`: measure variants and show the evidence."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from compress import engines, paths
from compress.commands import options as opt_
from compress.output import emit, printable

_CLUSTER_HELP = ("Run each variant as a task on a Ray cluster: auto (RAY_ADDRESS or this machine's cluster), "
                 "ray://HOST:10001, or local[:CPUS] (a private cluster on 127.0.0.1 for this run). Needs the "
                 "compress[cluster] extra.")
_RESULTS_OUT = Annotated[Path, typer.Option("--results", help="Results file (JSON Lines) to append to.")]
# Old spellings, kept working but not shown: -o/--output is always a file, --out-dir a folder.
_OUT_ALIAS = Annotated[Path | None, typer.Option("--out", hidden=True)]
_METHODS_HELP = "Comma-separated variants, e.g. fp32,gptq-4-g64,nf4,q8_0,q4_k_m (see `compress apply --help`)."
_TESTS_HELP = ("Which tests, comma-separated: ppl, pp, tg, batch, serve (closed-loop runs at each --concurrency), "
               "serve-rate (the open-loop Poisson run at --rate).")
_TESTS_DEFAULT = "ppl,pp,tg,batch; all six with --runtime vllm; serve,serve-rate with --endpoint"


def _shown(default: str) -> dict[str, str]:
    """A default that depends on the device or the runtime, shown as click shows any default."""
    return {"show_default": default}


def bench_command(
    model: opt_.Model = "default",
    methods: Annotated[str | None, typer.Option(
        "--methods", help=_METHODS_HELP, **_shown("the planner's Pareto front for this device"))] = None,
    plan: Annotated[Path | None, typer.Option(
        "--plan", help="Measure the candidates of a plan written by `compress plan --format json`.")] = None,
    results_file: _RESULTS_OUT = paths.results_file(),
    artifacts: Annotated[Path | None, typer.Option(
        "--artifacts", help="Artifact cache folder.", **_shown("$COMPRESS_CACHE/artifacts"))] = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Skip variant+test combinations already recorded whole and OK.")] = False,
    device: opt_.Device = "auto",
    threads: Annotated[int | None, typer.Option(help="CPU threads.", **_shown("physical cores"))] = None,
    text: Annotated[str | None, typer.Option(
        help="Evaluation text: a file, 'default' (the bundled corpus) or 'wikitext-2'.", **_shown("'default'"))] = None,
    ppl_tokens: Annotated[int | None, typer.Option(help="Tokens scored for perplexity.", **_shown("2048"))] = None,
    ppl_context: Annotated[int | None, typer.Option(help="Perplexity window length.", **_shown("512"))] = None,
    ppl_stride: Annotated[int | None, typer.Option(
        help="Perplexity window stride.", **_shown("the window length: disjoint windows"))] = None,
    pp: Annotated[int | None, typer.Option(
        "--pp", help="Prompt tokens of the TTFT test.", **_shown("128 on CPU, 512 on GPU"))] = None,
    tg: Annotated[int | None, typer.Option(
        "--tg", help="Generated tokens of the decode test.", **_shown("32 on CPU, 128 on GPU"))] = None,
    batches: Annotated[str | None, typer.Option(
        "--batches", help="Comma-separated batch sizes for throughput.", **_shown("4,8 on CPU, 4,16,64 on GPU"))] = None,
    reps: Annotated[int | None, typer.Option(help="Timed repetitions.", **_shown("3 on CPU, 5 on GPU"))] = None,
    warmup: Annotated[int | None, typer.Option(help="Untimed warm-up runs before timing.", **_shown("1"))] = None,
    tests: Annotated[str | None, typer.Option(help=_TESTS_HELP, **_shown(_TESTS_DEFAULT))] = None,
    runtime: Annotated[str | None, typer.Option(
        "--runtime", help=f"Run every artifact in this runtime: {' | '.join(engines.measurable())} (vllm: "
                          "offline engine and `vllm serve`).",
        **_shown("each artifact's own"))] = None,
    endpoint: Annotated[str | None, typer.Option(
        "--endpoint", help="Measure a running OpenAI-compatible server at this URL (served tests only; nothing "
                           "is started).")] = None,
    slo: Annotated[str | None, typer.Option(
        "--slo", help="Goodput SLO of the served tests: ttft_ms=<ms>,itl_ms=<ms>.",
        **_shown("ttft_ms=1000,itl_ms=200"))] = None,
    concurrency: Annotated[str | None, typer.Option(
        "--concurrency", help="Closed-loop concurrencies of the serve test.", **_shown("1,2,4,8"))] = None,
    rate: Annotated[float | None, typer.Option(
        "--rate", help="Poisson request rate of the open-loop serve-rate test, requests/s.",
        **_shown("2 on CPU, 8 on GPU"))] = None,
    serve_requests: Annotated[int | None, typer.Option(
        "--serve-requests", help="Requests per served load run.", **_shown("16"))] = None,
    ppl_convention: Annotated[str | None, typer.Option(
        "--ppl-convention", help="Perplexity windows: 'compress' (every token after the first) or 'llama.cpp' "
                                 "(llama-perplexity's BOS, chunks and scored second half).",
        **_shown("compress"))] = None,
    kld_top_k: Annotated[int | None, typer.Option(
        "--kld-top-k", help="Baseline tokens kept per position for KL divergence; 0 leaves KLD out.",
        **_shown("256"))] = None,
    kv_dtype: Annotated[str | None, typer.Option(
        "--kv-dtype", help="KV-cache type: q8_0 or q4_0 (llama.cpp, with flash attention), fp16, fp32. Records "
                           "carry it; the predictions beside them use it.", **_shown("the runtime's"))] = None,
    calib_samples: opt_.CalibSamples = 64,
    calib_seq_len: opt_.CalibSeqLen = 512,
    seed: opt_.Seed = 0,
    cluster: Annotated[str | None, typer.Option("--cluster", help=_CLUSTER_HELP)] = None,
    resources: Annotated[str | None, typer.Option(
        "--resources", help="With --cluster: what each variant's task takes, e.g. CPU=2,GPU=1.",
        **_shown("one GPU, else a whole CPU node"))] = None,
    max_retries: Annotated[int, typer.Option(
        "--max-retries", help="With --cluster: resubmissions of a task whose worker or node died.")] = 2,
    ship_model: Annotated[bool, typer.Option(
        "--ship-model", help="With --cluster: send the model through Ray's object store once instead of "
                             "reading it from a shared path.")] = False,
    trust_remote_code: opt_.TrustRemoteCode = False,
    fmt: opt_.Format = "table",
    wide: opt_.Wide = False,
    batch: Annotated[str | None, typer.Option("--batch", hidden=True)] = None,
) -> None:
    """Apply and measure variants: perplexity, TTFT, decode speed, throughput, memory, size, MFU/MBU, energy."""
    from compress.measure import bench

    cluster_options = _cluster_options(cluster, resources, max_retries, ship_model)
    try:
        records, table = bench(model=model, methods=methods, plan=plan, results_path=results_file,
                               artifacts=artifacts, resume=resume, device=device, threads=threads, text=text,
                               ppl_tokens=ppl_tokens, ppl_context=ppl_context, ppl_stride=ppl_stride, pp=pp, tg=tg,
                               batch=batches or batch, reps=reps, warmup=warmup, tests=tests, runtime=runtime,
                               endpoint=endpoint, ppl_convention=ppl_convention, kld_top_k=kld_top_k,
                               kv_dtype=kv_dtype, slo=slo, concurrency=concurrency, rate=rate,
                               serve_requests=serve_requests, calib_samples=calib_samples,
                               calib_seq_len=calib_seq_len, seed=seed, trust_remote_code=trust_remote_code,
                               cluster=cluster_options, log=lambda line: typer.echo(printable(line), err=True))
    except KeyboardInterrupt:
        # Every finished test is already on disk; the one in progress is redone by --resume.
        typer.echo(f"interrupted: finished tests are kept in {results_file}; rerun with --resume to go on", err=True)
        raise typer.Exit(130) from None
    emit([table], {"written": records, "pareto": table.records()}, fmt, wide=wide)
    if records or not resume:  # with --resume and nothing written, every test was already on disk
        _exit_with_outcome(records, results_file)


def _cluster_options(cluster: str | None, resources: str | None, max_retries: int, ship_model: bool) -> Any:
    """What --cluster and its options ask for (None: run here)."""
    if cluster is None:
        return None
    from compress.measure.cluster import ClusterOptions, parse_resources

    address, _, cpus = cluster.partition(":") if cluster.startswith("local") else (cluster, "", "")
    return ClusterOptions(address=address, resources=parse_resources(resources), max_retries=max_retries,
                          ship_model=ship_model, local_cpus=_cpu_count(cpus, "--cluster local:N") if cpus else None)


def _exit_with_outcome(records: list[dict[str, Any]], results_file: Path) -> None:
    """Say on stderr what failed and where the records are; exit non-zero if anything failed."""
    from compress.measure.outcome import outcome

    result = outcome(records)
    for line in result.lines(results_file):
        typer.echo(line, err=True)
    if result.exit_code:
        raise typer.Exit(result.exit_code)


def probe_command(
    device: Annotated[str, typer.Option(help="auto (CPU, and CUDA where present) | cpu | cuda.")] = "auto",
    size_mib: Annotated[int, typer.Option(help="Size of the copied array in MiB.")] = 256,
    matmul_n: Annotated[int, typer.Option(help="Matrix side of the square matmul.")] = 2048,
    repeats: Annotated[int, typer.Option(help="Runs of each measurement; the best is kept.")] = 5,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="JSON file to write.", **_shown("probe.json in the compress cache, ~/.cache/compress"))] = None,
    runs: Annotated[int, typer.Option(help="Repetitions of the whole probe; each figure is their median.")] = 3,
    accept_busy: Annotated[bool, typer.Option("--accept-busy", help="Keep this probe even if the machine was busy (it replaces an earlier quiet one).")] = False,
    fmt: opt_.Format = "table",
    out: _OUT_ALIAS = None,
) -> None:
    """Measure this machine's copy bandwidth and matmul TFLOPS; the planner and MFU/MBU use them."""
    from compress.fsutil import check_output_file
    from compress.measure.probe import probe, probe_table

    out = output or out
    if out is not None:
        check_output_file(out, "--output", suffixes=(".json",))
    data, path = probe(device=device, size_mib=size_mib, matmul_n=matmul_n, repeats=repeats, out=out, runs=runs,
                       accept_busy=accept_busy)
    emit([probe_table(data, path)], data, fmt)


def pareto_command(
    results_files: opt_.ResultsIn = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Only this model (name or fingerprint).")] = None,
    as_recorded: opt_.AsRecorded = False,
    fmt: opt_.Format = "table",
    wide: opt_.Wide = False,
) -> None:
    """One row per model, variant, device and setting from bench records, with the Pareto front marked."""
    from compress.measure.pareto_table import pareto_rows, pareto_table

    records = view_records(results_files, as_recorded)
    emit([pareto_table(records, model, as_recorded=as_recorded)], pareto_rows(records, model), fmt, wide=wide)


def report_command(
    results_files: opt_.ResultsIn = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="HTML file to write.")] = paths.results_file("report.html"),
    model: Annotated[str | None, typer.Option("--model", "-m", help="Only this model (name or fingerprint).")] = None,
    as_recorded: opt_.AsRecorded = False,
    out: _OUT_ALIAS = None,
) -> None:
    """Write one self-contained HTML report (plots and sortable tables, no network needed to open it)."""
    from compress.fsutil import check_not_input, check_output_file
    from compress.report import write_report

    out = out or output
    check_output_file(out, "--output", suffixes=(".html", ".htm"))
    check_not_input(out, results_input_files(results_files), "--output")
    path = write_report(view_records(results_files, as_recorded), out, model=model, as_recorded=as_recorded)
    typer.echo(f"wrote {path}")


def review_command(
    model: opt_.Model = "default",
    gpu: opt_.Gpu = "auto",
    context: opt_.Context = None,
    batch: opt_.Batch = 1,
    gpus: opt_.Gpus = 1,
    headroom: opt_.Headroom = "0.5",
    objective: opt_.Objective = "balanced",
    kv_dtype: opt_.KvDtype = "fp16",
    engine: opt_.Engine = "any",
    gpu_memory_utilization: opt_.GpuMemoryUtilization = None,
    results_files: opt_.ResultsIn = None,
    as_recorded: opt_.AsRecorded = False,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Also write the review to this file (.md or .html).")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="Output format: table | md | json.")] = "table",
    wide: opt_.Wide = False,
    out: _OUT_ALIAS = None,
) -> None:
    """A pre-deployment sizing review: the plan, measured evidence, risks and the recommendation."""
    from compress.fsutil import check_not_input, check_output_file
    from compress.review import print_review, review_to

    opt_.check_format(fmt, ("table", "md", "json"))
    out = output or out
    if out is not None:
        check_output_file(out, "--output", suffixes=(".md", ".markdown", ".html"))
        check_not_input(out, {"--model": model, **results_input_files(results_files)}, "--output")
    sizing = opt_.sizing(context, batch, gpus, headroom, objective, kv_dtype, engine, gpu_memory_utilization)
    # A review needs no records (every figure is then a prediction), unless --results names some.
    records = view_records(results_files, as_recorded, required=bool(results_files))
    print_review(review_to(model, gpu, records, out=out, **sizing), fmt, wide=wide)


def results_input_files(given: list[Path] | None) -> dict[str, Path]:
    """The files a view reads (:func:`compress.paths.results_inputs`: files, or the ``*.jsonl`` of
    folders), keyed for :func:`compress.fsutil.check_not_input`: an output may sit beside them,
    never be one. None found: nothing to protect (the view itself then says so)."""
    from compress.errors import UserInputError

    try:
        places = paths.results_inputs(given)
    except UserInputError:
        return {}
    files = [f for p in places for f in (sorted(Path(p).glob("*.jsonl")) if Path(p).is_dir() else [Path(p)])]
    return {"--results": files[0]} if len(files) == 1 else {f"--results ({f})": f for f in files}


def _cpu_count(text: str, option: str) -> int:
    """A number of CPUs from 1 to this machine's cores: a private cluster starts a worker a CPU,
    and more workers than cores only end in "can't start new thread"."""
    import os

    from compress.errors import UserInputError

    cores = os.cpu_count() or 1
    if not text.isdigit() or not 1 <= int(text) <= cores:
        raise UserInputError(f"{option} takes a whole number of CPUs from 1 to {cores} (this machine's cores), "
                             f"got {text[:20]!r}")
    return int(text)


def view_records(given: list[Path] | None, as_recorded: bool = False, required: bool = True) -> list[dict[str, Any]]:
    """The records a view reads (:func:`compress.paths.results_inputs`), with today's predictions
    unless ``as_recorded``. ``required=False``: no records found is an empty list, not an error."""
    from compress import results
    from compress.errors import UserInputError
    from compress.measure.predictions import with_current_predictions

    try:
        records = results.load(paths.results_inputs(given), provenance=True)
    except UserInputError:
        if required:
            raise
        return []
    return records if as_recorded else with_current_predictions(records)


EXAMPLES = {
    "bench": "compress bench -m default --methods fp32,q8_0 --results results/local/bench.jsonl",
    "probe": "compress probe -o /tmp/probe.json",
    "pareto": "compress pareto --results results/bench.jsonl --wide",
    "report": "compress report --results results/bench.jsonl -o /tmp/report.html",
    "review": "compress review -m llama-2-7b -g t4 --objective speed -o review.md",
}


def register(app: typer.Typer) -> None:
    for name, command in (("bench", bench_command), ("probe", probe_command), ("pareto", pareto_command),
                          ("report", report_command), ("review", review_command)):
        app.command(name, epilog=f"Example: {EXAMPLES[name]}")(command)
