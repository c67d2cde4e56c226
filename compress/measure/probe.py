"""`compress probe`: the memory bandwidth and matmul throughput this machine really reaches.

Copy bandwidth is timed like STREAM's Copy kernel (McCalpin, https://www.cs.virginia.edu/stream/):
a large array copied into another, counted as bytes read plus bytes written (2 x size; the
write-allocate read a cache may add is not counted, as in STREAM). Matmul throughput is a
square ``n x n`` product, ``2 n^3`` FLOPs. Each figure is the best of several runs after a
warm-up: the ceiling, not the typical. The CPU is measured with numpy (copy) and torch
(matmul, fp32 and bf16); a CUDA device with torch, synchronized around each run.

The whole measurement is repeated ``runs`` times; each figure is the median of the runs, with
the runs as samples and their spread. The load average is read before and after: a probe
taken on a busy machine (load above ``probe_busy_load_per_core`` x cores, or runs spread by
more than ``probe_spread_limit_pct``; profiles/host.toml) is flagged, and does not replace
an earlier quiet probe unless asked to (``accept_busy``).

The result goes to ``probe.json`` in the compress cache (:func:`probe_path`), every probe
also to ``probe-history.jsonl`` beside it. The planner's host profile reads
``copy_bandwidth_gbs`` and ``matmul_tflops_fp32`` at the top level (the CPU's figures);
a CUDA device's figures sit under ``cuda``. ``compress bench`` reports MFU/MBU against both
the profile's peak and these.
"""

from __future__ import annotations

import json
import os
import statistics
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


#: Figures whose runs are summarised (median, samples, spread).
FIGURES = ("copy_bandwidth_gbs", "matmul_tflops_fp32", "matmul_tflops_bf16", "matmul_tflops_fp16")


def summarise_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One record from several runs: each figure the median, with ``<figure>_samples`` and
    ``<figure>_spread_pct`` = (max - min) / median x 100; other keys from the first run."""
    out = dict(runs[0])
    for key in FIGURES:
        values = [r[key] for r in runs if r.get(key)]
        if values:
            median = statistics.median(values)
            out[key] = median
            out[f"{key}_samples"] = values
            out[f"{key}_spread_pct"] = round(100 * (max(values) - min(values)) / median, 2) if median else 0.0
    return out


def busy_warnings(data: dict[str, Any], cores: int, limits: dict[str, Any]) -> list[str]:
    """Why a probe may not show the machine's ceiling: load from other processes, or runs that disagree."""
    out = []
    load = max(data.get("load_avg_1m_before", 0.0), data.get("load_avg_1m_after", 0.0))
    if load > limits["probe_busy_load_per_core"] * cores:
        out.append(f"machine busy: load average {load:.2f} on {cores} cores "
                   f"(above {limits['probe_busy_load_per_core']:g} per core)")
    for where, d in (("cpu", data), ("cuda", data.get("cuda") or {})):
        for key in FIGURES:
            spread = d.get(f"{key}_spread_pct")
            if spread is not None and spread > limits["probe_spread_limit_pct"]:
                out.append(f"{where} {key} varied by {spread:.0f}% between runs "
                           f"(above {limits['probe_spread_limit_pct']:g}%)")
    return out


def probe_path() -> Path:
    from compress.paths import probe_file

    return probe_file()


def probe(device: str = "auto", size_mib: int = 256, matmul_n: int = 2048, repeats: int = 5,
          out: Path | None = None, runs: int = 3, accept_busy: bool = False) -> tuple[dict[str, Any], Path]:
    """Measure ``runs`` times, write ``probe.json`` (unless a busy probe would replace a quiet
    one) and append to the history; returns the data and the file the planner reads."""
    from compress.errors import UserInputError
    from compress.planner import profiles
    from compress.provenance import cpu_name, git_sha, host, library_versions

    if size_mib < 1 or matmul_n < 16 or repeats < 1 or runs < 1:
        raise UserInputError(f"probe needs size-mib >= 1, matmul-n >= 16, repeats >= 1, runs >= 1; "
                             f"got {size_mib}, {matmul_n}, {repeats}, {runs}")
    path = Path(out) if out else probe_path()
    cores = os.cpu_count() or 1
    data: dict[str, Any] = {"schema": PROBE_SCHEMA, "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                            "cpu": cpu_name(), "host": host(), "git_sha": git_sha(), "libraries": library_versions(),
                            "method": f"median of {runs} runs, each the best of {repeats} after a warm-up; copy counts "
                                      "read + write (STREAM Copy); matmul counts 2 n^3 FLOPs",
                            "repeats": repeats, "runs": runs, "cores": cores,
                            "load_avg_1m_before": round(os.getloadavg()[0], 2)}
    if device in ("auto", "cpu"):
        data.update(summarise_runs([probe_cpu(size_mib, matmul_n, repeats) for _ in range(runs)]))
    if device != "cpu":
        import torch

        if torch.cuda.is_available():
            name = "cuda" if device == "auto" else device
            data["cuda"] = summarise_runs([probe_cuda(size_mib, matmul_n * 2, repeats, name) for _ in range(runs)])
        elif device != "auto":
            raise UserInputError(f"--device {device} asked for, but torch sees no CUDA device: use --device cpu")
    data["load_avg_1m_after"] = round(os.getloadavg()[0], 2)
    data["warnings"] = busy_warnings(data, cores, profiles.load("host.toml"))
    data["busy"] = bool(data["warnings"])
    from compress.fsutil import append_jsonl

    append_jsonl(path.with_name("probe-history.jsonl"), data)
    previous = _read(path)
    if data["busy"] and not accept_busy and previous and not previous.get("busy"):
        data["kept_previous"] = previous.get("timestamp")
        data["warnings"].append(f"kept the earlier quiet probe of {previous.get('timestamp')} in {path}; "
                                "rerun when the machine is idle, or pass --accept-busy to use this one")
        return data, path
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True))
    return data, path


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def probe_table(data: dict[str, Any], path: Path) -> Table:
    rows = []
    for label, d in (("cpu", data), ("cuda", data.get("cuda"))):
        if d and d.get("copy_bandwidth_gbs"):
            rows.append([d.get("device_name") or data.get("cpu") if label == "cuda" else data.get("cpu"), label,
                         d["copy_bandwidth_gbs"], d.get("matmul_tflops_fp32"), d.get("matmul_tflops_bf16")])
    where = (f"not written: {path} keeps the probe of {data['kept_previous']}" if data.get("kept_previous")
             else f"written to {path}; the planner's host profile and bench MFU/MBU read it")
    spread = data.get("copy_bandwidth_gbs_spread_pct")
    runs = f"median of {data.get('runs', 1)} runs" + (f", copy spread {spread:.0f}%" if spread is not None else "")
    return Table(title="compress probe", columns=["device", "kind", "copy GB/s", "fp32 TFLOPS", "bf16 TFLOPS"],
                 rows=rows, notes=[f"Warning: {w}" for w in data.get("warnings", [])] + [runs, where])
