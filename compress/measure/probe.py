"""`compress probe`: the memory bandwidth and matmul throughput this machine really reaches.

Copy bandwidth is timed like STREAM's Copy kernel (McCalpin, https://www.cs.virginia.edu/stream/):
a large array copied into another, counted as bytes read plus bytes written (2 x size; the
write-allocate read a cache may add is not counted, as in STREAM). Matmul throughput is a
square ``n x n`` product, ``2 n^3`` FLOPs. Each figure is the best of several runs after a
warm-up: the ceiling, not the typical. The CPU is measured with numpy (copy) and torch
(matmul, fp32 and bf16); a CUDA device with torch, synchronized around each run.

The result goes to ``results/probe.json`` with provenance. The planner's host profile reads
``copy_bandwidth_gbs`` and ``matmul_tflops_fp32`` at the top level (the CPU's figures);
a CUDA device's figures sit under ``cuda``. ``compress bench`` reports MFU/MBU against both
the profile's peak and these.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from compress.fsutil import atomic_write_text
from compress.output import Table

PROBE_SCHEMA = "compress.probe/1"


def best_seconds(run: Callable[[], None], repeats: int, sync: Callable[[], None] = lambda: None) -> float:
    """The fastest of ``repeats`` timed runs after one untimed warm-up."""
    run()
    sync()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        sync()
        best = min(best, time.perf_counter() - started)
    return best


def copy_gbs(size_bytes: int, seconds: float) -> float:
    """STREAM Copy accounting: ``2 * size`` bytes (one read, one write) per copy."""
    return 2 * size_bytes / seconds / 1e9


def matmul_tflops(n: int, seconds: float) -> float:
    """An ``n x n`` by ``n x n`` product is ``2 n^3`` FLOPs (a multiply and an add per term)."""
    return 2 * n**3 / seconds / 1e12


def probe_cpu(size_mib: int, matmul_n: int, repeats: int, threads: int | None = None) -> dict[str, Any]:
    import numpy as np
    import torch

    from compress.measure.runtimes import physical_cores

    threads = threads or physical_cores()
    torch.set_num_threads(threads)
    size = size_mib << 20
    src = np.ones(size // 8, dtype=np.float64)
    dst = np.empty_like(src)
    copy_s = best_seconds(lambda: np.copyto(dst, src), repeats)
    out = {"device": "cpu", "threads": threads, "copy_bytes": size, "copy_bandwidth_gbs": copy_gbs(size, copy_s)}
    # CPUs without native bf16 (no AVX512-BF16/AMX) emulate it ~50x slower than fp32, so its
    # matrix is a quarter the side (1/64 of the work) to keep the probe within seconds.
    for dtype, key, n in ((torch.float32, "fp32", matmul_n), (torch.bfloat16, "bf16", max(16, matmul_n // 4))):
        a = torch.randn(n, n).to(dtype)
        b = torch.randn(n, n).to(dtype)
        seconds = best_seconds(lambda: torch.mm(a, b), repeats)
        out[f"matmul_tflops_{key}"] = matmul_tflops(n, seconds)
        out[f"matmul_n_{key}"] = n
    return out


def probe_cuda(size_mib: int, matmul_n: int, repeats: int, device: str = "cuda") -> dict[str, Any]:
    import torch

    sync = lambda: torch.cuda.synchronize(device)  # noqa: E731 - kernels are asynchronous
    size = size_mib << 20
    src = torch.ones(size // 4, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    copy_s = best_seconds(lambda: dst.copy_(src), repeats, sync)
    out = {"device": device, "device_name": torch.cuda.get_device_name(device), "copy_bytes": size,
           "copy_bandwidth_gbs": copy_gbs(size, copy_s), "matmul_n": matmul_n}
    for dtype, key in ((torch.float32, "fp32"), (torch.bfloat16, "bf16"), (torch.float16, "fp16")):
        a = torch.randn(matmul_n, matmul_n, device=device, dtype=dtype)
        b = torch.randn(matmul_n, matmul_n, device=device, dtype=dtype)
        out[f"matmul_tflops_{key}"] = matmul_tflops(matmul_n, best_seconds(lambda: torch.mm(a, b), repeats, sync))
    return out


def probe(device: str = "auto", size_mib: int = 256, matmul_n: int = 2048, repeats: int = 5,
          out: Path | None = None) -> tuple[dict[str, Any], Path]:
    """Measure and write ``probe.json``; returns the data and where it went."""
    from compress.errors import UserInputError
    from compress.paths import results_dir
    from compress.provenance import cpu_name, git_sha, host, library_versions

    if size_mib < 1 or matmul_n < 16 or repeats < 1:
        raise UserInputError(f"probe needs size-mib >= 1, matmul-n >= 16, repeats >= 1; got {size_mib}, {matmul_n}, {repeats}")
    data: dict[str, Any] = {"schema": PROBE_SCHEMA, "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                            "cpu": cpu_name(), "host": host(), "git_sha": git_sha(), "libraries": library_versions(),
                            "method": "best of N after a warm-up; copy counts read + write (STREAM Copy); "
                                      "matmul counts 2 n^3 FLOPs",
                            "repeats": repeats}
    if device in ("auto", "cpu"):
        data.update(probe_cpu(size_mib, matmul_n, repeats))
    if device != "cpu":
        import torch

        if torch.cuda.is_available():
            data["cuda"] = probe_cuda(size_mib, matmul_n * 2, repeats, "cuda" if device == "auto" else device)
        elif device != "auto":
            raise UserInputError(f"--device {device} asked for, but torch sees no CUDA device: use --device cpu")
    path = Path(out) if out else results_dir() / "probe.json"
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True))
    return data, path


def probe_table(data: dict[str, Any], path: Path) -> Table:
    rows = []
    for label, d in (("cpu", data), ("cuda", data.get("cuda"))):
        if d and d.get("copy_bandwidth_gbs"):
            rows.append([d.get("device_name") or data.get("cpu") if label == "cuda" else data.get("cpu"), label,
                         d["copy_bandwidth_gbs"], d.get("matmul_tflops_fp32"), d.get("matmul_tflops_bf16")])
    return Table(title="compress probe", columns=["device", "kind", "copy GB/s", "fp32 TFLOPS", "bf16 TFLOPS"],
                 rows=rows, notes=[f"written to {path}; the planner's host profile and bench MFU/MBU read it"])
