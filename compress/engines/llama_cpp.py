"""llama.cpp: GGUF files, on the CPU and on GPUs (CUDA, HIP, Metal). Its bench adapter is
``compress/measure/runtimes.py`` ``LlamaCppRuntime`` (llama-cpp-python); reviews serve it
with ``llama-server``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from compress import paths
from compress.engines.base import Engine


class LlamaCpp(Engine):
    name = "llama.cpp"
    formats = ("gguf",)
    adapter = "compress.measure.runtimes:LlamaCppRuntime"
    cpu_kernel = ("llama.cpp-cpu", "gguf")

    @classmethod
    def artifact_file(cls, folder: str, source_name: str, candidate: Mapping[str, Any]) -> str:
        return f"{folder}/{paths.gguf_file_name(source_name, str(candidate['config']['qtype']))}"

    @classmethod
    def serve_command(cls, artifact: str, candidate: Mapping[str, Any], context: int, batch: int, gpus: int,
                      on_gpu: bool) -> str | None:
        # llama-server shares -c between its -np slots: each sequence gets context tokens.
        parts = ["llama-server", f"-m {artifact}", f"-c {context * batch}"]
        if batch > 1:
            parts.append(f"-np {batch}")
        if on_gpu:
            parts.append("-ngl 99")
        return " ".join(parts)
