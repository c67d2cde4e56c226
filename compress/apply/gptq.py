"""GPTQ and AWQ through GPTQModel, written as Hugging Face checkpoints.

GPTQModel is the maintained successor of the archived auto-gptq and quantizes on
the CPU as well as on CUDA. Its GPTQ output carries a ``quantization_config``
that transformers loads (through optimum and GPTQModel's kernels) and vLLM serves;
its AWQ output (GEMM layout) is what vLLM and transformers' AWQ integration read.

GPTQModel is loud: a banner, live progress bars on stdout, a ``./logs`` folder in
the working directory. :func:`gptqmodel_session` runs it from a scratch folder
with its output sent to a log file under the cache, and drives our own progress
bar from its layer-complete callback instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from compress import progress
from compress.methods import awq as awq_method, gptq as gptq_method
from compress import engines
from compress.apply import Job
from compress.errors import RuntimeFailure, UnsupportedError, UserInputError
from compress.methods.groups import check_group_size, config_input_widths
from compress.model.config import read_config
from compress.paths import cache_dir



# --- checks: pure, run before any heavy import -------------------------------------------------

def check_bits(bits: int, allowed: tuple[int, ...], method: str) -> None:
    if bits not in allowed:
        raise UnsupportedError(f"{method} takes bits {', '.join(map(str, allowed))}, got {bits}: pick one of those")


# --- running GPTQModel quietly -----------------------------------------------------------------

def set_cpu_workers() -> None:
    """GPTQModel sizes its CPU worker pools from this variable; left unset on a small
    machine it asks for more workers than its parent pool has and stops."""
    os.environ.setdefault("GPTQMODEL_CPU_WORKERS", str(max(1, os.cpu_count() or 1)))


@contextlib.contextmanager
def gptqmodel_session(name: str) -> Iterator[tuple[Path, Any]]:
    """Run GPTQModel from a scratch working directory with stdout/stderr in a log file.

    Yields ``(log_path, terminal)`` where ``terminal`` is a text stream on the
    original stderr, for our own progress bar. The redirect is at the file-descriptor
    level because GPTQModel's live bars, torch's C++ warnings and tqdm bypass Python's
    ``sys.stdout``. On an exception the log is kept and named in the error.
    """
    set_cpu_workers()
    log_path = cache_dir("logs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    cwd = os.getcwd()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    terminal = os.fdopen(os.dup(saved[2]), "w", buffering=1)
    with tempfile.TemporaryDirectory(prefix="compress-gptqmodel-") as scratch, open(log_path, "w") as log:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        os.chdir(scratch)  # GPTQModel writes ./logs relative to the working directory
        try:
            # Python-level too: a caller may have replaced sys.stdout (typer's CliRunner does).
            with warnings.catch_warnings(), contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                warnings.simplefilter("ignore")
                yield log_path, terminal
        finally:
            os.chdir(cwd)
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)
            terminal.close()


def layer_progress(terminal: Any, description: str, total: int) -> tuple[Callable[..., None], Callable[[], None]]:
    """A progress bar over decoder layers on ``terminal`` (None: no bar); returns ``(layer_complete, close)``.

    ``layer_complete`` matches GPTQModel's layer callback, which may fire more than
    once a layer (before and after its modules are finalized).
    """
    from compress.progress import new_bar

    if terminal is None:
        return (lambda *_, **__: None), (lambda: None)
    progress = new_bar(file=terminal)
    task = progress.add_task(description, total=total)
    done: set[int] = set()
    progress.start()

    def layer_complete(layer_idx: int, submodule_finalized: bool = False, **_: Any) -> None:
        done.add(layer_idx)
        progress.update(task, completed=len(done))

    return layer_complete, progress.stop


def _calibration(job: Job, folder: Path) -> tuple[Any, list[dict[str, list[int]]]]:
    from compress.loading import load_tokenizer

    tokenizer = load_tokenizer(folder)
    windows = job.calibration_windows(tokenizer)
    return tokenizer, [{"input_ids": w, "attention_mask": [1] * len(w)} for w in windows]


def quantize(job: Job, config_class: str, settings: dict[str, Any], method: str,
             backend: str = "auto", cpu_float32: bool = True) -> dict[str, Any]:
    """Quantize ``job``'s model and save the checkpoint into ``job.out_dir``.

    ``config_class`` names a GPTQModel config (``GPTQConfig``, ``AWQConfig``) built from
    ``settings`` inside the session, since importing GPTQModel already prints.
    Returns what the artifact's record needs, including the settings GPTQModel resolved.
    """
    folder = Path(job.hf_dir()).resolve()
    out_dir = Path(job.out_dir).resolve()
    config = read_config(folder)
    tokenizer, calibration = _calibration(job, folder)
    layers = int(config.get("num_hidden_layers") or 0)
    job.log(f"{method}: {len(calibration)} calibration windows × {job.options.calib_seq_len} tokens, {layers} layers")
    # Decided before the session: inside it stderr is GPTQModel's log file, never a terminal.
    shown = progress.enabled()
    with gptqmodel_session(method.lower()) as (log_path, terminal):
        import gptqmodel.quantization.config as gptqmodel_config
        import torch
        from gptqmodel import BACKEND, GPTQModel

        from compress.loading import trust_remote_code

        quant_config = getattr(gptqmodel_config, config_class)(**settings)
        layer_complete, close = layer_progress(terminal if shown else None, f"{method}: quantizing layers", layers)
        try:
            # Half-precision matmuls are emulated on CPUs without AVX512-BF16/FP16 (20x slower
            # than float32 on our 2-core machine), so the CPU quantizes in float32 where it can.
            dtype = {"dtype": torch.float32} if job.device == "cpu" and cpu_float32 else {}
            model = GPTQModel.load(str(folder), quant_config, device=job.device,
                                   trust_remote_code=trust_remote_code(), **dtype)
            model.layer_callback = layer_complete
            model.quantize(calibration, tokenizer=tokenizer, backend=BACKEND(backend),
                           calibration_data_min_length=1)  # our windows all have the asked length
            model.save(str(out_dir))
        except (ValueError, RuntimeError, NotImplementedError, AssertionError) as err:
            raise RuntimeFailure(f"GPTQModel failed to quantize with {method} ({type(err).__name__}: {err}); "
                                 f"its log is {log_path}") from None
        finally:
            close()
    tokenizer.save_pretrained(out_dir)
    to_float16(out_dir)
    saved = read_config(out_dir)
    job.log(f"{method}: GPTQModel's log is {log_path}")
    resolved = {"damp_percent": getattr(quant_config, "damp_percent", None)}
    return {"dtype": saved.get("dtype") or saved.get("torch_dtype"), "quantizer": f"gptqmodel {_version()}",
            "log": str(log_path), **{k: v for k, v in resolved.items() if v is not None}}


def to_float16(folder: Path) -> None:
    """Store a checkpoint's float32 tensors (scales, norms, embeddings) as float16.

    GPTQ and AWQ checkpoints carry float16 scales by convention (vLLM's kernels and the
    planner's size model expect it); a CPU run quantizes in float32, so its checkpoint is
    cast here. The packed integer weights are untouched.
    """
    import torch
    from safetensors.torch import load_file, save_file

    for file in sorted(Path(folder).glob("*.safetensors")):
        tensors = load_file(file)
        if any(t.dtype == torch.float32 for t in tensors.values()):
            save_file({k: t.half() if t.dtype == torch.float32 else t for k, t in tensors.items()}, file,
                      metadata={"format": "pt"})
    index = Path(folder) / "model.safetensors.index.json"
    if index.is_file():
        data = json.loads(index.read_text())
        data.setdefault("metadata", {})["total_size"] = sum(f.stat().st_size for f in Path(folder).glob("*.safetensors"))
        index.write_text(json.dumps(data, indent=2))
    config_file = Path(folder) / "config.json"
    config = json.loads(config_file.read_text())
    config["dtype"] = "float16"
    config.pop("torch_dtype", None)
    config_file.write_text(json.dumps(config, indent=2))


def _version() -> str:
    from importlib.metadata import version

    return version("gptqmodel")


# --- the two methods ---------------------------------------------------------------------------

def apply_gptq(job: Job) -> dict[str, Any]:
    c = job.config
    bits, group_size = int(c["bits"]), int(c["group_size"])
    desc_act, sym = bool(c.get("desc_act", False)), bool(c.get("sym", True))
    check_bits(bits, gptq_method.BITS, "GPTQ")
    check_group_size(group_size, config_input_widths(read_config(job.hf_dir())), "GPTQ")
    damp = c.get("damp_percent")
    if damp is not None and not 0 < damp < 1:
        raise UserInputError(f"GPTQ --damp is a fraction of the Hessian's mean diagonal in (0, 1), got {damp}")
    # GPTQModel's group-aware activation ordering (act_group_aware) is its default when
    # desc_act is off; the two exclude each other, so asking for desc_act turns it off.
    settings = {"bits": bits, "group_size": group_size, "desc_act": desc_act, "sym": sym, "damp_percent": damp,
                "act_group_aware": not desc_act}
    info = quantize(job, "GPTQConfig", settings, "GPTQ")
    return {"format": "hf", "runtime": "transformers", "loads_in": engines.loading("hf", "gptq", c), "bits": bits,
            "group_size": group_size, "desc_act": desc_act, "sym": sym, **info}


def apply_awq(job: Job) -> dict[str, Any]:
    c = job.config
    bits, group_size = int(c["bits"]), int(c["group_size"])
    zero_point = bool(c.get("zero_point", True))
    check_bits(bits, awq_method.BITS, "AWQ")
    check_group_size(group_size, config_input_widths(read_config(job.hf_dir())), "AWQ")
    # AWQ's zero point is GPTQModel's asymmetric quantization.
    settings = {"bits": bits, "group_size": group_size, "sym": not zero_point}
    # GPTQModel's AWQ kernels other than the torch one need CUDA.
    backend = "torch" if job.device == "cpu" else "auto"
    # GPTQModel's torch AWQ layer packs only float16/bfloat16 weights (float32 raises inside
    # a worker thread), so AWQ keeps GPTQModel's half-precision default, slow as it is on a CPU.
    info = quantize(job, "AWQConfig", settings, "AWQ", backend=backend, cpu_float32=False)
    return {"format": "hf", "runtime": "transformers", "loads_in": engines.loading("hf", "awq", c), "bits": bits,
            "group_size": group_size, "zero_point": zero_point, "layout": "gemm", **info}
