"""GGUF for llama.cpp: our HF → F32/F16 writer, then llama.cpp's own quantizer for the asked type.

A GGUF source of a family the writer has no llama.cpp graph for (Gemma 3) is requantized
as it is: llama.cpp dequantizes each tensor and quantizes it to the asked type, so the
result's quality is measured against the source's own quantization, not full precision.

With ``imatrix: true`` an importance matrix is measured first: the Hugging Face
model runs in torch over the calibration windows and every decoder linear layer
records the mean square of each input column. llama.cpp's K-quant and legacy
quantizers weight each column's rounding error by it (the statistic
``llama-imatrix`` collects, ggml-org/llama.cpp PR #4861). It is handed to the
quantizer directly and also saved as ``imatrix.gguf`` beside the model, in the
format ``llama-quantize --imatrix`` reads, so it can be reused.
"""

from __future__ import annotations

import re
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from compress import paths
from compress.apply import Job
from compress.errors import UnsupportedError, UserInputError
from compress.methods.gguf import GGUF_TYPES

_WRITTEN_DIRECTLY = ("F32", "F16")


def qtype_of(config: dict[str, Any]) -> str:
    qtype = str(config.get("qtype", "")).upper()
    if qtype not in GGUF_TYPES:
        raise UserInputError(f"GGUF type must be one of {', '.join(GGUF_TYPES)}, got {config.get('qtype')!r}")
    return qtype


def mean_squares(sum_squares: np.ndarray, count: int) -> np.ndarray:
    """Per-column importance: sum over tokens of x_j² divided by the token count (llama-imatrix's
    ``in_sum2 / counts``, tools/quantize/quantize.cpp ``load_imatrix``)."""
    return (sum_squares / max(count, 1)).astype(np.float32)


def collect_activation_squares(model: Any, windows: list[list[int]], names: dict[str, str],
                               track: Any = iter) -> tuple[dict[str, np.ndarray], int]:
    """Run ``model`` over ``windows``; for each linear module in ``names`` (module → GGUF weight name)
    sum the squares of its input activations per column. Returns the sums and the token count."""
    import torch

    sums: dict[str, torch.Tensor] = {}

    def hook(name: str) -> Any:
        def record(module: Any, inputs: tuple[Any, ...], output: Any) -> None:
            x = inputs[0].detach().reshape(-1, inputs[0].shape[-1]).to(torch.float64)
            sums[name] = sums.get(name, 0) + (x * x).sum(dim=0)
        return record

    modules = dict(model.named_modules())
    handles = [modules[module].register_forward_hook(hook(gguf_name)) for module, gguf_name in names.items()]
    tokens = 0
    try:
        with torch.inference_mode():
            for window in track(windows):
                model(torch.tensor([window]))
                tokens += len(window)
    finally:
        for handle in handles:
            handle.remove()
    return {name: total.numpy() for name, total in sums.items()}, tokens


def _linear_names(model: Any, n_layer: int, arch_name: str) -> dict[str, str]:
    """Decoder linear modules → their GGUF weight names. The output head is left out, as llama-imatrix
    does by default (its README: the imatrix does not help ``output.weight``)."""
    import gguf
    import torch

    arch = next(key for key, value in gguf.MODEL_ARCH_NAMES.items() if value == arch_name)
    mapping = gguf.get_tensor_name_map(arch, n_layer)
    names = {}
    for module, layer in model.named_modules():
        gguf_name = mapping.get_name(module + ".weight", try_suffixes=(".weight",)) if module else None
        if isinstance(layer, torch.nn.Linear) and gguf_name and gguf_name.startswith("blk."):
            names[module] = gguf_name
    return names


def importance_matrix(job: Job, folder: Path, arch_name: str) -> tuple[dict[str, np.ndarray], int, int]:
    """The importance matrix of the model in ``folder`` over the job's calibration windows.
    Returns raw sums of squares by GGUF name, the token count and the window count."""
    from compress.loading import load_causal_lm, load_tokenizer

    model = load_causal_lm(folder, dtype="float32", device="cpu")
    windows = job.calibration_windows(load_tokenizer(folder))
    names = _linear_names(model, model.config.num_hidden_layers, arch_name)
    sums, tokens = collect_activation_squares(
        model, windows, names, track=lambda items: job.track(items, "importance matrix", total=len(windows)))
    return sums, tokens, len(windows)


def write_imatrix_gguf(path: Path, sums: dict[str, np.ndarray], tokens: int, chunks: int, chunk_size: int,
                       dataset: str) -> None:
    """Save sums of squares in llama.cpp's GGUF imatrix layout: ``<weight>.in_sum2`` (F32, one row
    per matrix) and ``<weight>.counts`` (tokens per matrix), plus ``imatrix.*`` keys
    (tools/imatrix/imatrix.cpp; common/imatrix-loader.cpp)."""
    import gguf

    writer = gguf.GGUFWriter(str(path), "imatrix")
    writer.add_type("imatrix")
    writer.add_array("imatrix.datasets", [dataset])
    writer.add_uint32("imatrix.chunk_count", chunks)
    writer.add_uint32("imatrix.chunk_size", chunk_size)
    for name in sorted(sums):
        writer.add_tensor(f"{name}.in_sum2", sums[name].astype(np.float32)[None, :])
        writer.add_tensor(f"{name}.counts", np.array([tokens], dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


_FALLBACK = re.compile(r"(\S+)\s+- ncols\s+(\d+) not divisible by\s+(\d+) \(required for type\s+(\S+)\)"
                       r"(?:\s*\([^)]*\))?\s*-> falling back to\s+(\S+)")


def fallbacks(log_lines: list[str]) -> list[dict[str, Any]]:
    """Tensors llama.cpp stored in another type than its mix asked for, read from its quantizer's log
    (src/llama-quant.cpp: a row width not divisible by the type's block size takes a fallback type)."""
    return [{"tensor": tensor, "cols": int(cols), "block": int(block), "wanted": wanted, "used": used}
            for tensor, cols, block, wanted, used in _FALLBACK.findall("".join(log_lines))]


def requantized_family(job: Job) -> str | None:
    """The ``general.architecture`` of a GGUF source the writer cannot rebuild (so it is requantized
    as it is), else None: an HF source, or a family the writer has a graph for."""
    if job.source.kind != "gguf":
        return None
    from compress.gguf_writer import ARCHITECTURES
    from compress.planner.gguf_header import read_header

    family = str(read_header(job.source.path).metadata.get("general.architecture") or "")
    return None if family in {graph.name for graph in ARCHITECTURES.values()} else family


def requantize(job: Job, qtype: str) -> tuple[dict[str, Any], list[str]]:
    """Requantize the GGUF source itself to ``qtype`` with llama.cpp's quantizer."""
    from compress import llamacpp
    from compress.planner.gguf_header import read_header

    if job.config.get("imatrix"):
        raise UnsupportedError(f"an importance matrix is measured on a model the GGUF writer rebuilds; "
                               f"{job.source.path.name} is requantized as it is: drop --imatrix")
    source_type = read_header(job.source.path).metadata.get("general.file_type")
    target = job.out_dir / paths.gguf_file_name(job.source.name, qtype)
    job.log(f"requantizing {job.source.path.name} to {qtype} with llama.cpp (quality is relative to the "
            "source's own quantization)")
    log = llamacpp.quantize_gguf(job.source.path, target, qtype, allow_requantize=True)
    return {"format": "gguf", "runtime": "llama.cpp", "file": target.name, "qtype": qtype,
            "requantized_from": {"file": job.source.path.name, "llama_ftype": source_type}}, log


def apply(job: Job) -> dict[str, Any]:
    from compress import llamacpp

    qtype = qtype_of(job.config)
    use_imatrix = bool(job.config.get("imatrix"))
    if use_imatrix and qtype in ("F32", "F16", "BF16"):
        raise UnsupportedError(f"an importance matrix only helps quantized types, got {qtype}: "
                               "drop --imatrix or pick a quantized type such as q4_k_m")
    if requantized_family(job):
        info, log = requantize(job, qtype)
    else:
        info, log = _written_then_quantized(job, qtype, use_imatrix)
    target = job.out_dir / info["file"]
    info["tensor_types"] = llamacpp.tensor_types(target)
    if fell_back := fallbacks(log):
        # Not an error: llama.cpp picks a type whose block fits the row. Say so once, plainly,
        # and keep a count per swap in the manifest (a model can have hundreds of such tensors).
        swaps = Counter(f"{f['wanted'].upper()}->{f['used'].upper()}" for f in fell_back)
        info["fallbacks"] = dict(sorted(swaps.items()))
        info["fallback_cols"] = sorted({f["cols"] for f in fell_back})
        job.log(f"note: {len(fell_back)} tensors have rows ({', '.join(map(str, info['fallback_cols']))} wide) that "
                f"do not fit their type's block; llama.cpp stored them in another type: {info['fallbacks']}")
    return info


def _written_then_quantized(job: Job, qtype: str, use_imatrix: bool) -> tuple[dict[str, Any], list[str]]:
    """Our writer's F32/F16 GGUF of the HF model, quantized to ``qtype`` by llama.cpp."""
    from compress import llamacpp
    from compress.gguf_writer import write_gguf

    folder = job.hf_dir()
    target = job.out_dir / paths.gguf_file_name(job.source.name, qtype)
    info: dict[str, Any] = {"format": "gguf", "runtime": "llama.cpp", "file": target.name, "qtype": qtype}
    log: list[str] = []
    if qtype in _WRITTEN_DIRECTLY:
        job.log(f"writing {qtype} GGUF")
        info["writer"] = write_gguf(folder, target, dtype=qtype, name=job.source.name)
    else:
        # The full-precision intermediate lives in a folder inside the artifact's temporary
        # folder, removed before returning: only the final file stays.
        with tempfile.TemporaryDirectory(prefix=".f32-", dir=job.out_dir) as scratch:
            intermediate = Path(scratch) / "model.F32.gguf"
            job.log("writing F32 GGUF")
            info["writer"] = write_gguf(folder, intermediate, dtype="F32", name=job.source.name)
            imatrix, metadata = None, None
            if use_imatrix:
                sums, tokens, chunks = importance_matrix(job, folder, info["writer"]["architecture"])
                write_imatrix_gguf(job.out_dir / "imatrix.gguf", sums, tokens, chunks,
                                   job.options.calib_seq_len, job.calibration_text()[0])
                imatrix = {name: mean_squares(total, tokens) for name, total in sums.items()}
                info["imatrix"] = {"file": "imatrix.gguf", "entries": len(imatrix), "tokens": tokens, "chunks": chunks}
                # The keys llama-quantize records, so the file tells it was made with an imatrix.
                metadata = {"quantize.imatrix.file": "imatrix.gguf", "quantize.imatrix.dataset": job.calibration_text()[0],
                            "quantize.imatrix.entries_count": len(imatrix), "quantize.imatrix.chunks_count": chunks}
            job.log(f"quantizing to {qtype} with llama.cpp")
            log = llamacpp.quantize_gguf(intermediate, target, qtype, imatrix=imatrix, metadata=metadata)
    return info, log
