"""`compress apply`: compress a model with one variant and write its artifact."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated, Any

import typer

from compress import paths
from compress.commands import options as opt_
from compress.errors import UserInputError
from compress.fsutil import check_not_input
from compress.output import printable

_METHOD_HELP = (
    "Variant to apply, e.g. gptq-4-g128, awq-4, nf4, int8, q4_k_m, q8_0, gguf-f16, wanda-50, "
    "sparsegpt-2:4, layerdrop-6, distill-20, onnx-int8, fp16; join steps with '+' (wanda-50+gptq-4). "
    "Bare names (gptq, awq, gguf, bnb, wanda, onnx) take their defaults."
)


def apply_command(
    model: Annotated[str | None, typer.Option(
        "--model", "-m", show_default="default, or the model of --plan",
        help="Local HF folder, .gguf file, 'default' (smollm2-135m), or random:<catalog name> (random weights: "
             "speed and memory only).")] = None,
    method: Annotated[str | None, typer.Option("--method", help=_METHOD_HELP)] = None,
    out_dir: Annotated[Path | None, typer.Option(
        "--out-dir", help="Output folder.", show_default="artifacts/<model>-<variant>")] = None,
    plan: Annotated[Path | None, typer.Option(
        "--plan", help="A plan written by `compress plan --format json`.")] = None,
    candidate: Annotated[int | None, typer.Option(
        "--candidate", help="With --plan: apply candidate N (rank, 1-based) instead of the recommendation.")] = None,
    device: opt_.Device = "auto",
    text: Annotated[str | None, typer.Option(
        help="Calibration text: a file, 'default' (the bundled corpus) or 'wikitext-2'.",
        show_default="'default'")] = None,
    calib_samples: opt_.CalibSamples = 64,
    calib_seq_len: opt_.CalibSeqLen = 512,
    seed: opt_.Seed = 0,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing output folder.")] = False,
    bits: Annotated[int | None, typer.Option(help="GPTQ/AWQ bits.")] = None,
    group_size: Annotated[int | None, typer.Option(help="GPTQ/AWQ group size (-1: per channel).")] = None,
    act_order: Annotated[bool | None, typer.Option("--act-order/--no-act-order", help="GPTQ activation order.")] = None,
    damp: Annotated[float | None, typer.Option(help="GPTQ dampening, fraction of the Hessian's mean diagonal.")] = None,
    sym: Annotated[bool | None, typer.Option("--sym/--asym", help="GPTQ symmetric quantization.")] = None,
    double_quant: Annotated[bool | None, typer.Option(
        "--double-quant/--no-double-quant", help="bitsandbytes 4-bit double quantization.")] = None,
    compute_dtype: Annotated[str | None, typer.Option(
        help="bitsandbytes compute dtype: float32 | float16 | bfloat16.")] = None,
    imatrix: Annotated[bool | None, typer.Option(
        "--imatrix/--no-imatrix", help="GGUF: compute an importance matrix on the calibration text.")] = None,
    sparsity: Annotated[float | None, typer.Option(help="Pruning: fraction of weights set to zero (0-1).")] = None,
    steps: Annotated[int | None, typer.Option(help="Distillation: training steps.")] = None,
    lr: Annotated[float | None, typer.Option(help="Distillation: learning rate.")] = None,
    temperature: Annotated[float | None, typer.Option(help="Distillation: softmax temperature.")] = None,
    alpha: Annotated[float | None, typer.Option(
        help="Distillation: weight of the KL term (1-alpha on cross-entropy).")] = None,
    student: Annotated[str | None, typer.Option(
        help="Distillation: a local student model (same tokenizer) instead of a layer-dropped copy.")] = None,
    trust_remote_code: opt_.TrustRemoteCode = False,
    out: Annotated[Path | None, typer.Option("--out", "-o", hidden=True)] = None,  # the old spelling of --out-dir
) -> None:
    """Compress a model with one variant; the artifact loads in transformers, vLLM or llama.cpp.

    Method options left out take the variant's own settings (gptq-4-g64: 4 bits, groups of 64)."""
    from compress import apply, sources, variants

    overrides = {k: v for k, v in {
        "bits": bits, "group_size": group_size, "desc_act": act_order, "damp_percent": damp, "sym": sym,
        "double_quant": double_quant, "compute_dtype": compute_dtype, "imatrix": imatrix, "sparsity": sparsity,
        "steps": steps, "lr": lr, "temperature": temperature, "alpha": alpha, "student": student,
    }.items() if v is not None}
    model, variant_name = _model_and_variant(model, method, plan, candidate)
    variant = _with_overrides(variants.parse(variant_name), overrides)
    source = sources.resolve(model, trust_remote_code=trust_remote_code)
    options = apply.Options(device=device, text=text, calib_samples=calib_samples, calib_seq_len=calib_seq_len,
                            seed=seed, force=force, trust_remote_code=trust_remote_code)
    out = out_dir or out or paths.artifact_dir(source.name, variant.name)
    # The source model is checked with the folder itself (apply.run); these are the other inputs.
    check_not_input(out, {"--plan": plan, "--text": text, "--student": student}, "--out-dir", replaced=True)
    received = _stop_on_sigterm()
    try:
        manifest = apply.run(source, variant, out, options, log=lambda line: typer.echo(printable(line), err=True))
    except KeyboardInterrupt:
        # The artifact is built in a temporary folder that the interruption removed.
        typer.echo(f"interrupted: nothing was written to {out}", err=True)
        raise typer.Exit(128 + (received[0] if received else signal.SIGINT)) from None
    _summary(manifest, out)


def _model_and_variant(model: str | None, method: str | None, plan: Path | None,
                       candidate: int | None) -> tuple[str, str]:
    """The model and the variant to apply: --method's, or the one --plan recommends (--candidate N)."""
    if plan is not None:
        if method is not None:
            raise UserInputError("expected either --method or --plan, got both: pass one")
        return _from_plan(plan, candidate, model)
    if method is None:
        raise UserInputError("expected --method VARIANT or --plan plan.json; see `compress apply --help`")
    return "default" if model is None else model, method  # an empty --model is refused by sources.resolve


def _stop_on_sigterm() -> list[int]:
    """Make SIGTERM unwind like Ctrl-C, so the temporary folder is removed; returns the signals received."""
    received: list[int] = []

    def stop(signum: int, frame: Any) -> None:
        received.append(signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    return received


def _with_overrides(variant: Any, overrides: dict[str, Any]) -> Any:
    """Fold the CLI's method options into the last step's config (checked by the method's
    config class: GPTQ bits 5 fails, --bits on nf4 is refused) and rename the variant after it."""
    from compress import variants

    if not overrides:
        return variant
    last = variant.steps[-1]
    step = variants.Step.of(last.method, last.descriptor.config({**last.config, **overrides}))
    steps = variant.steps[:-1] + (step,)
    return variants.Variant(name=variants.canonical(steps), steps=steps)


def _from_plan(plan_path: Path, candidate: int | None, model: str | None) -> tuple[str, str]:
    from compress.planner.document import read_plan

    plan = read_plan(plan_path)
    ranked = plan.ranked()
    if candidate is not None:
        if not 1 <= candidate <= len(ranked):
            raise UserInputError(f"--candidate must be between 1 and {len(ranked)} (ranked candidates), got {candidate}")
        chosen = ranked[candidate - 1].variant
    elif plan.recommended:
        chosen = plan.recommended
    else:
        raise UserInputError(f"{plan_path} recommends nothing (nothing fits): pick one with --candidate N")
    return _plan_model(plan.model, plan_path, model), chosen


def _plan_model(planned: dict[str, Any], plan_path: Path, model: str | None) -> str:
    """The model to compress for a plan: ``model`` when it is the plan's model ``planned`` (same
    architecture), else the plan's own model where it can be found; one clear line otherwise."""
    from compress import packaged, sources
    from compress.planner.document import check_plan_model
    from compress.planner.spec import load_model_spec

    name = planned.get("name", "?")
    if model is None:
        path = planned.get("path")
        if path and Path(path).exists():
            return str(Path(path).parent if Path(path).name == "config.json" else path)
        if planned.get("origin") == "catalog" and name == sources.DEFAULT_CATALOG_NAME:
            return sources.DEFAULT_MODEL
        if planned.get("origin") == "catalog" and (chunked := packaged.by_name(name)) is not None:
            return chunked.names[0]
        raise UserInputError(f"{plan_path} was made for {name}, which is not on this machine: pass --model with "
                             "a local folder or .gguf of that model")
    try:
        given = load_model_spec(model.removeprefix("random:")).to_dict()
    except UserInputError:
        return model  # a model the planner cannot read: apply reports what is wrong with it
    check_plan_model(planned, given, plan_path, model)
    return model


def _summary(manifest: dict[str, Any], out: Path) -> None:
    from compress.output import Table, print_table

    gib = 2**30
    timing = manifest["timings_s"]
    rows = [
        ["variant", manifest["variant"]],
        ["artifact", f"{out} ({manifest['format']}, loads in {manifest['runtime']})"],
        ["size before", f"{manifest['source_size_bytes'] / gib:.3f} GiB"
         + (f" ({manifest['input_size_bytes'] / gib:.3f} GiB dequantized)" if manifest.get("input_size_bytes") else "")],
        ["size after", f"{manifest['size_bytes'] / gib:.3f} GiB"],
        ["time", f"{timing['total']:.1f} s"],
        ["peak memory", f"{manifest['peak_memory_bytes'] / gib:.2f} GiB ({manifest['device']})"],
    ]
    print_table(Table(title="compress apply", columns=["", ""], rows=rows))


def register(app: typer.Typer) -> None:
    app.command("apply", epilog="Example: compress apply -m default --method q4_k_m --out-dir artifacts/smol-q4km")(
        apply_command)
