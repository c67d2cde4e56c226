"""The options several commands share, each defined once: the same flags, short forms, help and
default wherever it appears.

Defaults are shown one way, by click's ``[default: ...]``: a default that depends on something
(the device, the model) is a ``None`` default with ``show_default`` saying what it means.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from compress import engines
from compress.output import FORMATS

#: Where the views read records from when --results is not given.
RESULTS_DEFAULT = "$COMPRESS_RESULTS, else results/ here"

Model = Annotated[str, typer.Option(
    "--model", "-m", help="Catalog name (see `compress models`), local HF folder, .gguf file, HF id, or "
                          "'default' (smollm2-135m).")]
Gpu = Annotated[str, typer.Option(
    "--gpu", "-g", help="GPU profile (see `compress gpus`), a device .toml file, 'cpu' for this machine or "
                        "'auto' (NVML).")]
Format = Annotated[str, typer.Option("--format", "-f", help=f"Output format: {' | '.join(FORMATS)}.")]
Wide = Annotated[bool, typer.Option("--wide", help="Show every column (the default view fits 80 columns).")]
Device = Annotated[str, typer.Option("--device", help="Where to run: auto | cpu | cuda.")]
Seed = Annotated[int, typer.Option("--seed", help="Seed for calibration sampling and training.")]
CalibSamples = Annotated[int, typer.Option("--calib-samples", help="Calibration windows.")]
CalibSeqLen = Annotated[int, typer.Option("--calib-seq-len", help="Tokens per calibration window.")]
TrustRemoteCode = Annotated[bool, typer.Option(
    "--trust-remote-code", help="Run Python code that comes with the model folder (its config's auto_map) and "
                                "load pickle weights. Off by default: read the folder's code first.")]
ResultsIn = Annotated[list[Path] | None, typer.Option(
    "--results", show_default=RESULTS_DEFAULT, metavar="<path>",
    help="Bench records to read from: a JSON Lines file or a folder of them; repeat it or give a comma list to "
         "merge several.")]
AsRecorded = Annotated[bool, typer.Option(
    "--as-recorded", help="Set each measurement beside the prediction stored when it was measured, instead "
                          "of today's planner's.")]

# --- what a plan is sized for: plan and review -------------------------------------------------

Context = Annotated[int | None, typer.Option(
    "--context", show_default="4096, or the model's maximum if smaller", help="Context length in tokens.")]
Batch = Annotated[int, typer.Option("--batch", help="Concurrent sequences.")]
Gpus = Annotated[int, typer.Option("--gpus", help="GPUs for tensor parallelism (memory split, bandwidth summed).")]
Headroom = Annotated[str, typer.Option(
    "--headroom", help="Memory kept free: GiB (1.5) or a share of memory (10%).")]
Objective = Annotated[str, typer.Option("--objective", help="Rank by: balanced | quality | speed | memory.")]
KvDtype = Annotated[str, typer.Option(
    "--kv-dtype", help="KV-cache element type: fp16 | bf16 | fp8 | int8 | q8_0 | q4_0 | fp32.")]
Engine = Annotated[str, typer.Option(
    "--engine", help=f"Serving engine: {' | '.join((*engines.ENGINES, engines.ANY))} (each candidate takes its "
                     "best).")]
GpuMemoryUtilization = Annotated[float | None, typer.Option(
    "--gpu-memory-utilization", show_default="vLLM's 0.9",
    help="Share of each GPU vLLM may use for weights, activations and KV cache.")]


def parse_headroom(text: str) -> tuple[float, float]:
    """'10%' -> (0 GiB, 0.10 of memory); '1.5' or '1.5GiB' -> (1.5 GiB, 0)."""
    import re

    from compress.errors import UserInputError

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(%|gib|g|gb)?\s*", text.lower())
    if not m:
        raise UserInputError(f"--headroom takes GiB (e.g. 1.5 or 1.5GiB) or a percentage of memory (e.g. 10%), "
                             f"got {text!r}")
    value = float(m.group(1))
    if m.group(2) == "%":
        if value >= 100:
            raise UserInputError(f"--headroom percentage must be below 100%, got {text!r}")
        return 0.0, value / 100
    return value, 0.0


def sizing(context: int | None, batch: int, gpus: int, headroom: str, objective: str, kv_dtype: str, engine: str,
           gpu_memory_utilization: float | None) -> dict[str, Any]:
    """The planning options as :func:`compress.planner.make_plan` takes them."""
    headroom_gib, headroom_fraction = parse_headroom(headroom)
    return {"context": context, "batch": batch, "gpus": gpus, "headroom_gib": headroom_gib,
            "headroom_fraction": headroom_fraction, "objective": objective, "kv_dtype": kv_dtype, "engine": engine,
            "gpu_memory_utilization": gpu_memory_utilization}


def check_format(fmt: str, formats: tuple[str, ...] = FORMATS) -> str:
    """``fmt`` if it is one of ``formats``; one line naming them otherwise."""
    if fmt not in formats:
        from compress.registry import suggest

        raise suggest(fmt, formats, "format")
    return fmt
