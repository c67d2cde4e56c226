"""The command that serves a planned (variant, engine) pair, for reviews and plan notes.

Pure string building from a candidate of a plan: ``vllm serve`` for vLLM (quantization as vLLM
names it for the chosen kernel, tensor parallelism over the plan's GPUs), ``llama-server`` for
llama.cpp (all layers offloaded, one slot a concurrent sequence). transformers and ONNX Runtime
have no serving command of their own: None.
"""

from __future__ import annotations

import re
from typing import Any

from compress.planner import profiles

#: vLLM's ``--quantization`` value by the kernel the planner chose (vLLM reads the same value
#: from the checkpoint's quantization_config; naming it makes a wrong artifact fail loudly).
#: Sources: vLLM docs, "Supported hardware" quantization table; vLLM quantization/__init__.py
#: method names (gptq_marlin, awq_marlin, compressed-tensors ...).
VLLM_QUANTIZATION = {
    "machete": "gptq_marlin",  # vLLM's GPTQ path picks Machete on Hopper by itself
    "marlin": "gptq_marlin",
    "gptq_exllamav2": "gptq",
    "gptq_cuda": "gptq",
    "awq_marlin": "awq_marlin",
    "awq_gemm": "awq",
    "cutlass_fp8": "compressed-tensors",
    "fp8_marlin": "compressed-tensors",
    "cutlass_w8a8_int8": "compressed-tensors",
    "onednn_w8a8_int8": "compressed-tensors",
}


def artifact_name(model: str, candidate: dict[str, Any]) -> str:
    """Where `compress apply` writes this candidate by default (its --out default); for GGUF
    the file inside, which apply names ``<model>.<TYPE>.gguf``."""
    # Only file-name-safe characters: the model name may come from a folder's name.
    safe = re.sub(r"[^A-Za-z0-9._+-]+", "-", model).strip("-") or "model"
    stem = f"artifacts/{safe}-{candidate['variant'].replace(':', '_').replace('+', '_')}"
    if candidate["runtime"] == "llama.cpp":
        return f"{stem}/{safe}.{candidate['config']['qtype']}.gguf"
    return stem


def serving_command(model: str, candidate: dict[str, Any], context: int, batch: int = 1, gpus: int = 1,
                    on_gpu: bool = True) -> str | None:
    """The shell line that serves ``candidate`` at ``context`` tokens for ``batch`` sequences."""
    artifact = artifact_name(model, candidate)
    engine = candidate["runtime"]
    if engine == "vllm":
        parts = ["vllm serve", artifact, f"--max-model-len {context}", f"--max-num-seqs {max(batch, 1)}"]
        quantization = VLLM_QUANTIZATION.get(candidate["kernel"])
        if quantization:
            parts.append(f"--quantization {quantization}")
        elif candidate["method"] == "baseline":
            parts.append(f"--dtype {candidate['config']['dtype']}")
        if gpus > 1:
            parts.append(f"--tensor-parallel-size {gpus}")
        # The share of the GPU the plan sized the KV cache in, where it is not vLLM's default.
        fraction = candidate.get("memory", {}).get("engine_memory_fraction")
        if fraction is not None and fraction != _vllm_default_fraction():
            parts.append(f"--gpu-memory-utilization {fraction:g}")
        return " ".join(parts)
    if engine == "llama.cpp":
        # llama-server shares -c between its -np slots: each sequence gets context tokens.
        parts = ["llama-server", f"-m {artifact}", f"-c {context * batch}"]
        if batch > 1:
            parts.append(f"-np {batch}")
        if on_gpu:
            parts.append("-ngl 99")
        return " ".join(parts)
    return None


def _vllm_default_fraction() -> float:
    return float(profiles.load("runtimes.toml")["runtime"]["vllm"]["memory_fraction"])


def wrapped(command: str, width: int = 78) -> str:
    """``command`` folded into shell continuation lines of at most ``width`` characters where
    it can be (an option stays with its value), for an 80-column review."""
    groups: list[str] = []
    for token in command.split(" "):
        if token.startswith("-") or not groups or len(groups) < 2:
            groups.append(token)
        else:
            groups[-1] += f" {token}"
    lines = [groups[0]]
    for group in groups[1:]:
        if len(lines[-1]) + 1 + len(group) + 2 <= width:
            lines[-1] += f" {group}"
        else:
            lines.append(f"    {group}")
    return " \\\n".join(lines)
