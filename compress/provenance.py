"""Where and with what a result was made: library versions, git sha, host, device."""

from __future__ import annotations

import functools
import importlib.metadata
import platform
import socket
import subprocess
from pathlib import Path

#: The distributions whose versions decide what an artifact or a measurement is.
LIBRARIES = (
    "compress", "torch", "transformers", "accelerate", "gptqmodel", "optimum", "bitsandbytes",
    "gguf", "llama_cpp_python", "onnx", "onnxruntime", "onnxruntime-gpu", "numpy",
)


@functools.cache
def library_versions() -> dict[str, str]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


@functools.cache
def git_sha() -> str | None:
    """The commit of the checkout this code runs from, with ``-dirty`` if it has changes."""
    root = Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
                             capture_output=True, text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return sha + ("-dirty" if dirty else "")


@functools.cache
def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.cache
def cpu_flags() -> tuple[str, ...]:
    """The CPU's feature flags as /proc/cpuinfo lists them (``avx2``, ``avx512f``, ``amx_tile``...)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return tuple(line.split(":", 1)[1].split())
    except OSError:
        pass
    return ()


def device_name(device: str) -> str:
    """A human name for a torch device string: the GPU's name or the CPU's model."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(torch.device(device))
    return cpu_name()


def host() -> dict[str, str]:
    return {"hostname": socket.gethostname(), "platform": platform.platform(), "python": platform.python_version(),
            "cpu": cpu_name()}
