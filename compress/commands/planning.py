"""`compress plan`, `compress gpus`, `compress models`: thin commands over compress.planner."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import typer

from compress.errors import UserInputError
from compress.fsutil import atomic_write_text, check_output_file
from compress.commands import options as opt_
from compress.output import Table, emit, printable, to_json

TableOption = Annotated[str | None, typer.Option(
    "--table", help="Print only this table: seed, memory, candidates or sweep (with --sweep-context); "
                    "csv prints one table: candidates unless named.")]
PLAN_TABLES = ("seed", "memory", "candidates", "sweep")  # sweep: with --sweep-context


def parse_memory_gib(text: str) -> float:
    """'24GiB' or '24' -> 24 GiB; '24GB' -> decimal gigabytes converted (22.35 GiB)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(gib|gb|g)?\s*", text.lower())
    if not m:
        raise UserInputError(f"--gpu-memory takes GiB (24 or 24GiB) or decimal GB (24GB), got {text!r}")
    value = float(m.group(1))
    return value * 1e9 / 2**30 if m.group(2) == "gb" else value


def verdict_text(d: dict[str, Any], width: int | None = None) -> str:
    """The verdict block that leads a plan (:mod:`compress.verdict`), with the command that serves
    the choice, wrapped to ``width`` (default: the terminal's)."""
    from compress.output import console
    from compress.review import serve_line
    from compress.verdict import verdict_block

    return verdict_block(d, serve_line(d), width or console().width)


def plan_tables(plan: Any, width: int | None = None) -> tuple[str, list[Table]]:
    """The lead text (the verdict, then what was planned) and the tables a person reads for a plan;
    ``width`` wraps the verdict (default: the terminal's)."""
    d = plan.to_dict()
    lead = "\n".join([verdict_text(d, width), "", *_planned_lines(d)])
    tables = [_memory_table(d), _seed_table(d["seed_formula"]), _ranking_table(d)]
    if d.get("context_sweep"):
        tables.append(_sweep_table(d))
    return lead, tables


def _planned_lines(d: dict[str, Any]) -> list[str]:
    """What was planned: the model, the device and the options."""
    model, gpu, opt = d["model"], d["gpu"], d["options"]
    devices = f" x{opt['gpus']}" if opt["gpus"] > 1 else ""
    return [
        f"Model   {printable(model['name'])}: {model['params'] / 1e9:.2f}B params ({model['layers']} layers, hidden {model['hidden']}, "
        f"{model['heads']} heads / {model['kv_heads']} KV heads, vocab {model['vocab']}, max context {model['max_context']})",
        f"Device  {printable(gpu['display_name'])}{devices}: {gpu['usable_memory_gib']:g} GiB usable, "
        f"{gpu['memory_bandwidth_gbs']:g} GB/s" + (f", sm{gpu['compute_capability'].replace('.', '')}" if gpu["compute_capability"] else ""),
        f"Options context {opt['context']} tokens, batch {opt['batch']}, KV cache {opt['kv_dtype']}, "
        f"engine {opt.get('engine', 'any')}, "
        f"headroom {opt['headroom_gib']:g} GiB, objective {opt['objective']}",
    ]


def _seed_table(seed: dict[str, Any]) -> Table:
    """The rule of thumb the plan starts from, in GiB like every other table."""
    nominal = seed.get("params_nominal")
    gib = lambda gb: round(gb * 1e9 / 2**30, 3)  # noqa: E731 - the formula's decimal GB, shown in GiB as every table
    return Table(
        title=f"Seed formula {seed['formula']}, shown in GiB (2^30 bytes)",
        columns=["Q (bits)", f"M GiB, P = {seed['params'] / 1e9:.3f}B (architecture)"]
        + ([f"M GiB, P = {nominal / 1e9:g}B (nominal)"] if nominal else []),
        rows=[[r["bits"], gib(r["memory_gb"])] + ([gib(r["memory_gb_nominal"])] if nominal else [])
              for r in seed["rows"]],
        notes=[seed["source"] + "; the formula's B is decimal gigabytes, converted here"],
        name="seed",
    )


def _memory_table(d: dict[str, Any]) -> Table:
    """Where each candidate's memory goes."""
    per = "on the host (CPU and RAM)" if d["gpu"].get("kind") == "cpu" else "per GPU"
    return Table(
        title=f"Memory breakdown {per} (GiB = 2^30 bytes)",
        columns=["variant", "weights GiB", "KV cache GiB", "activations GiB", "overhead GiB", "total GiB",
                 "engine budget GiB", "artifact GB", "bits/weight"],
        rows=[[c["variant"], c["memory"]["weights_gib"], c["memory"]["kv_cache_gib"], c["memory"]["activations_gib"],
               c["memory"]["overhead_gib"], c["memory"]["total_gib"], c["memory"].get("engine_budget_gib"),
               c["predicted"]["artifact_gb"], c["predicted"]["bits_per_weight"]] for c in d["candidates"]],
        name="memory",
        compact=["variant", "weights GiB", "KV cache GiB", "activations GiB", "overhead GiB", "total GiB",
                 "bits/weight"],
    )


def _ranking_table(d: dict[str, Any]) -> Table:
    """The candidates in the objective's order, with the recommendation and the alternatives below."""
    cands, opt = d["candidates"], d["options"]
    return Table(
        title=f"Candidates ranked by {opt['objective']} (* = on the quality x speed x memory Pareto front)",
        columns=["rank", "variant", "runtime", "kernel", "fits", "margin GiB", "peak GiB", "decode tok/s",
                 "decode band", "kernel-data tok/s", "TTFT ms", "TTFT band", "ppl +%", "ppl +% band",
                 "measured ppl +%", "why / notes"],
        rows=[[("*" if c["pareto"] else "") + (str(c["rank"]) if c["rank"] else "-"), c["variant"],
               c["runtime"], c["kernel"], c["fits"], c["margin_gib"], c["predicted"]["peak_memory_gib"],
               c["predicted"]["decode_tok_s"], band_cell(c["predicted"].get("decode_tok_s_band")),
               (c["predicted"].get("kernel_data") or {}).get("decode_tok_s"),
               c["predicted"]["ttft_ms"], band_cell(c["predicted"].get("ttft_ms_band")), *quality_cells(c),
               "; ".join(c["reasons"])] for c in cands],
        notes=[f"Recommended: {d['recommended'] or 'none'}. {d['recommendation']}"]
              + [f"Alternative: {a['text']}" for a in d["alternatives"]]
              + [f"Note: {n}" for n in d["notes"]]
              + [f"Speeds are roofline predictions (profiles/runtimes.toml efficiencies), {_speed_basis(cands, opt)}, "
                 "with the band published measurements of each engine allow (--wide; profiles/runtimes.toml "
                 "[speed_band], scored by bench/speed_backtest.py); "
                 "ppl +% is the expected perplexity change, published figures carried to this model's size, "
                 "family and storage, with the band their spread allows (--wide; --format json, quality_source); "
                 "measured ppl +% is the change bench measured on this device, which the ranking uses where present"
                 + _measured_basis(cands) + "."],
        name="candidates",
        compact=["rank", "variant", "runtime", "fits", "peak GiB", "decode tok/s", "TTFT ms", "ppl +%",
                 "measured ppl +%"],
    )


def _sweep_table(d: dict[str, Any]) -> Table:
    """The best fitting variant at each context of --sweep-context."""
    return Table(
        title=f"Context sweep at batch {d['options']['batch']} (best fitting variant at each context)",
        columns=["context", "fitting", "best", "peak GiB", "decode tok/s"],
        rows=[[r["context"], r["fitting"], r["best"] or "-", r["peak_memory_gib"], r["decode_tok_s"]]
              for r in d["context_sweep"]],
        notes=["Each candidate at each context, and its max context and max batch: --format json."],
        name="sweep")


def quality_cells(candidate: dict[str, Any]) -> tuple[str, str | None, str | None]:
    """('+3.5', '1.4 - 15', '+7.9'): the predicted perplexity change, its band and the measured change, in %."""
    predicted = candidate["predicted"]
    delta = predicted.get("ppl_delta_pct")
    band = predicted.get("ppl_delta_band_pct")
    measured = (candidate.get("measured") or {}).get("ppl_delta_pct")
    return ("?" if delta is None else _pct(delta), f"{_pct(band[0], sign='')} - {_pct(band[1], sign='')}" if band else None,
            None if measured is None else _pct(measured))


def _measured_basis(cands: list[dict[str, Any]]) -> str:
    """The perplexity settings the measured column comes from (a variant measured under several
    shows its most recent), or nothing where nothing was measured."""
    settings = sorted({(c.get("measured") or {}).get("setting") for c in cands} - {None})
    return f" ({'; '.join(settings)})" if settings else ""


def band_cell(band: list[float] | None) -> str | None:
    """'118 - 192': a speed band to three significant digits."""
    return f"{band[0]:,.3g} - {band[1]:,.3g}" if band else None


def _pct(value: float, sign: str = "+") -> str:
    """Two significant digits below 10, whole numbers above: +0.42, +5.9, +340, +2,100."""
    return f"{value:{sign}.2g}" if abs(value) < 10 else f"{value:{sign},.0f}"


def _speed_basis(cands: list[dict[str, Any]], opt: dict[str, Any]) -> str:
    """What the speeds were predicted at, from the plan's own figures."""
    if not cands:
        return "no candidate"
    p = cands[0]["predicted"]
    depth = p.get("decode_cache_tokens", p.get("prompt_tokens"))
    batch = opt["batch"]
    prompts = (f"{batch} prompts of {p['prompt_tokens']} tokens sent together" if batch > 1
               else f"a {p['prompt_tokens']}-token prompt")
    return f"decode with {depth} tokens in the KV cache, TTFT for {prompts} (planned context {opt['context']})"


def plan_command(
    model: opt_.Model = "default",
    gpu: Annotated[str, typer.Option(
        "--gpu", "-g", help="GPU profile (see `compress gpus`), a device .toml file, 'cpu' for this machine, "
                            "'auto' (NVML), or several: 'all' or a comma list (one row per GPU).")] = "auto",
    context: opt_.Context = None,
    batch: opt_.Batch = 1,
    gpus: opt_.Gpus = 1,
    headroom: opt_.Headroom = "0.5",
    objective: opt_.Objective = "balanced",
    kv_dtype: opt_.KvDtype = "fp16",
    engine: opt_.Engine = "any",
    gpu_memory_utilization: opt_.GpuMemoryUtilization = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Also write the JSON plan to this file (input of apply/bench --plan).")] = None,
    gpu_memory: Annotated[str | None, typer.Option(
        "--gpu-memory", help="A device not in the catalog: its memory (24GiB, or 24GB decimal); needs "
                             "--bandwidth.")] = None,
    bandwidth: Annotated[float | None, typer.Option(
        "--bandwidth", help="With --gpu-memory: memory bandwidth in GB/s.")] = None,
    tflops: Annotated[float | None, typer.Option(
        "--tflops", help="With --gpu-memory: dense fp16/bf16 TFLOPS (for prefill and TTFT).")] = None,
    compute_capability: Annotated[str | None, typer.Option(
        "--compute-capability", show_default="8.0",
        help="With --gpu-memory: CUDA compute capability, e.g. 8.9.")] = None,
    sweep_context: Annotated[bool, typer.Option(
        "--sweep-context", help="Also size every candidate from 512 tokens to the model's maximum "
                                "context.")] = False,
    results_files: opt_.ResultsIn = None,
    fmt: opt_.Format = "table",
    table: TableOption = None,
    wide: opt_.Wide = False,
    brief: Annotated[bool, typer.Option(
        "--brief", help="Print only the verdict: fit, choice, speed, quality, commands.")] = False,
) -> None:
    """Which compression fits MODEL on GPU: memory, speed and quality of each option, ranked.

    Bench records of MODEL on this device (--results) set measured quality beside the predictions
    and enter the ranking."""
    from compress.commands.measuring import view_records
    from compress.planner import make_plan

    _check_plan_options(fmt, table, sweep_context, output, model, gpu, results_files)
    sizing = opt_.sizing(context, batch, gpus, headroom, objective, kv_dtype, engine, gpu_memory_utilization)
    if "," in gpu or gpu.strip().lower() == "all":  # a fleet: one row per GPU profile
        return _plan_fleet(model, gpu, sizing, output, fmt)
    device = _device(gpu, gpu_memory, bandwidth, tflops, compute_capability)
    # Measured figures only (no predictions are read from records); none found is no evidence
    # yet, unless --results named files that are not there.
    records = view_records(results_files, as_recorded=True, required=bool(results_files))
    plan = make_plan(model, device, sweep=sweep_context, records=records, **sizing)
    if output is not None:
        atomic_write_text(output, to_json(plan.to_dict()) + "\n")
    if brief and fmt == "table":
        from compress.output import console

        console().print(verdict_text(plan.to_dict()), markup=False)
        return
    lead, tables = plan_tables(plan, width=10_000 if fmt == "md" else None)
    if not records:
        next(t for t in tables if t.name == "candidates").notes.append(
            "No bench records found ($COMPRESS_RESULTS, else results/ here): measured ppl +% stays empty; "
            "pass --results FILE to set measurements beside the predictions.")
    emit(tables, plan.to_dict(), fmt, text=lead, table=table, wide=wide, main=PLAN_TABLES.index("candidates"))


def _check_plan_options(fmt: str, table: str | None, sweep_context: bool, output: Path | None, model: str, gpu: str,
                        results_files: list[Path] | None) -> None:
    """Refuse, before any planning, options that cannot go together."""
    opt_.check_format(fmt)
    if table is not None and table not in PLAN_TABLES:
        from compress.registry import suggest

        raise suggest(table, PLAN_TABLES, "table")
    if table == "sweep" and not sweep_context:
        raise UserInputError("--table sweep prints the context sweep: add --sweep-context")
    if output is not None:
        from compress.commands.measuring import results_input_files
        from compress.fsutil import check_not_input

        check_output_file(output, "--output", suffixes=(".json",))
        check_not_input(output, {"--model": model, "--gpu": gpu, **results_input_files(results_files)}, "--output")


def _plan_fleet(model: str, gpus: str, sizing: dict[str, Any], output: Path | None, fmt: str) -> None:
    """One row per GPU profile of ``gpus`` ('all' or a comma list)."""
    from compress.planner.fleet import fleet_plan, fleet_table

    fleet = fleet_plan(model, gpus, **sizing)
    if output is not None:
        atomic_write_text(output, to_json(fleet) + "\n")
    emit([fleet_table(fleet)], fleet, fmt)


def _device(gpu: str, gpu_memory: str | None, bandwidth: float | None, tflops: float | None,
            compute_capability: str | None) -> Any:
    """The GPU name, or the device that --gpu-memory and --bandwidth describe."""
    from compress.planner.hardware import custom_gpu

    if gpu_memory is not None or bandwidth is not None or tflops is not None:
        if gpu_memory is None or bandwidth is None:
            raise UserInputError("a custom device needs both --gpu-memory (e.g. 24GiB) and --bandwidth (GB/s)")
        return custom_gpu(parse_memory_gib(gpu_memory), bandwidth, tflops, compute_capability=compute_capability)
    if compute_capability is not None:
        raise UserInputError("--compute-capability describes a custom device: pass it with --gpu-memory and "
                             "--bandwidth")
    return gpu


def gpus_command(fmt: opt_.Format = "table", wide: opt_.Wide = False) -> None:
    """The GPU profiles the planner knows (profiles/gpus), and this machine's host profile."""
    from compress.planner import list_gpus, load_gpu
    from compress.planner.profiles import profile_citations

    opt_.check_format(fmt)
    profiles = [*list_gpus(), load_gpu("cpu")]
    cites = {g.name: profile_citations(f"gpus/{g.name}.toml") if g.kind == "gpu" else {} for g in profiles}
    table = Table(
        title="GPU profiles (dense peak TFLOPS; memory GiB = 2^30 bytes)",
        columns=["name", "device", "sm", "memory GiB", "usable GiB", "bandwidth GB/s", "fp32", "fp16", "bf16",
                 "fp8", "int8", "aliases", "source", "references"],
        rows=[[g.name, g.display_name, g.compute_capability or g.arch_id, g.memory_gib, g.usable_memory_gib,
               g.memory_bandwidth_gbs, g.tflops.get("fp32"), g.tflops.get("fp16"), g.tflops.get("bf16"),
               g.tflops.get("fp8"), g.tflops.get("int8"), ", ".join(g.aliases), g.source,
               "; ".join(f"[{k}] {v}" for k, v in cites[g.name].items())] for g in profiles],
        notes=list(profiles[-1].notes) + ["Each number's citation is in its profile file, profiles/gpus/<name>.toml; "
                                          "--wide or --format json lists them."],
        compact=["name", "memory GiB", "bandwidth GB/s", "fp16", "fp8", "source"],
    )
    emit([table], [{**g.to_dict(), "references": cites[g.name]} for g in profiles], fmt, wide=wide)


def models_command(fmt: opt_.Format = "table", wide: opt_.Wide = False) -> None:
    """The model catalog (profiles/models): architecture and parameter counts."""
    from compress.planner import catalog

    opt_.check_format(fmt)
    specs = sorted(catalog().values(), key=lambda s: (s.family, s.params))
    table = Table(
        title="Model catalog (params computed from the architecture; published = model card)",
        columns=["name", "family", "params B", "published B", "layers", "hidden", "heads", "kv heads",
                 "head dim", "intermediate", "vocab", "tied", "max context", "window", "experts"],
        rows=[[s.name, s.family, round(s.params / 1e9, 3),
               round(s.params_published / 1e9, 3) if s.params_published else None, s.layers, s.hidden, s.heads,
               s.kv_heads, s.head_dim, s.intermediate, s.vocab, s.tied_embeddings, s.max_context,
               s.sliding_window, f"{s.experts_per_token}/{s.experts}" if s.experts > 1 else None] for s in specs],
        compact=["name", "params B", "layers", "hidden", "heads", "kv heads", "vocab", "max context", "experts"],
    )
    emit([table], [s.to_dict() for s in specs], fmt, wide=wide)


EXAMPLES = {
    "plan": "compress plan -m llama-3.1-8b -g l4 --context 8192 --brief",
    "gpus": "compress gpus --format json  (every profile with its sources)",
    "models": "compress models --wide",
}


def register(app: typer.Typer) -> None:
    """Add this area's commands to the app."""
    for name, command in (("plan", plan_command), ("gpus", gpus_command), ("models", models_command)):
        app.command(name, epilog=f"Example: {EXAMPLES[name]}")(command)
