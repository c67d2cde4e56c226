"""`compress doctor`: every runtime tried for real in a child process, one row each."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from compress.doctor import _llama_features
from compress.isolation import CRASH_ENV

ROOT = Path(__file__).resolve().parents[2]


def _doctor(**env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), "doctor", "--format", "json"],
                          env={**os.environ, "PYTHONPATH": str(ROOT), **env}, capture_output=True, text=True,
                          timeout=600)


def test_the_installed_runtimes_run_here_and_a_crash_is_one_failed_row():
    run = _doctor()
    assert run.returncode == 0, run.stdout + run.stderr
    checks = {c["runtime"]: c for c in json.loads(run.stdout)["checks"]}
    assert {"transformers", "llama.cpp", "onnxruntime", "bitsandbytes", "ray", "vllm"} <= set(checks)
    for name in ("transformers", "llama.cpp", "onnxruntime", "bitsandbytes"):
        assert checks[name]["status"] == "ok", checks[name]
    assert "AVX2" in checks["llama.cpp"]["detail"]  # the build's instruction sets are named

    crashed = _doctor(**{CRASH_ENV: "llama.cpp-open:SIGSEGV"})
    assert crashed.returncode == 1
    rows = {c["runtime"]: c for c in json.loads(crashed.stdout)["checks"]}
    assert rows["llama.cpp"]["status"] == "failed" and "died on SIGSEGV" in rows["llama.cpp"]["detail"]
    assert rows["transformers"]["status"] == "ok"  # the other checks still ran


def test_the_portable_build_carries_no_avx512_or_amx():
    """scripts/build-llama.sh compiles for x86-64-v3: a wheel built on an AVX-512 or AMX machine
    must still run on an AVX2-only one."""
    import llama_cpp

    features = _llama_features(llama_cpp.llama_print_system_info().decode()).split()
    assert "AVX2" in features
    assert not [f for f in features if f.startswith(("AVX512", "AMX"))], features


def test_llama_features_reads_the_system_info_line():
    info = "CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | AVX512 = 0 | AMX_INT8 = 0 | REPACK = 1 | "
    assert _llama_features(info) == "SSE3 AVX AVX2 REPACK"
