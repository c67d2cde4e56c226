"""Room checks before large allocations: one line with the needed and the available figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from compress import memcheck
from compress.errors import UnsupportedError
from compress.loading import checkpoint_memory_bytes

ROOT = Path(__file__).resolve().parents[2]


def test_available_memory_is_the_lower_of_the_kernel_and_the_cgroup(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       32000000 kB\nMemAvailable:   20000000 kB\n")
    cgroup = tmp_path / "cgroup"
    cgroup.mkdir()
    assert memcheck.available_memory_bytes(meminfo, cgroup) == 20000000 * 1024
    (cgroup / "memory.max").write_text("max\n")
    assert memcheck.available_memory_bytes(meminfo, cgroup) == 20000000 * 1024
    (cgroup / "memory.max").write_text(f"{8 * 2**30}\n")
    (cgroup / "memory.current").write_text(f"{2 * 2**30}\n")
    assert memcheck.available_memory_bytes(meminfo, cgroup) == 6 * 2**30
    assert memcheck.available_memory_bytes(tmp_path / "none", tmp_path / "none") is None


def test_a_model_larger_than_memory_is_refused_with_both_figures():
    with pytest.raises(UnsupportedError, match=r"needs 810.0 GiB of memory, but 16.0 GiB is available"):
        memcheck.check_memory(810 * 2**30, "x", available_bytes=16 * 2**30)
    memcheck.check_memory(2**30, "x", available_bytes=16 * 2**30)


def test_a_checkpoint_loaded_in_a_wider_dtype_needs_more(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"\0" * 1000)
    (tmp_path / "config.json").write_text(json.dumps({"torch_dtype": "bfloat16"}))
    assert checkpoint_memory_bytes(tmp_path, "float32") == 2000
    assert checkpoint_memory_bytes(tmp_path, "bfloat16") == 1000
    assert checkpoint_memory_bytes(tmp_path, "float32", quantized=True) == 1000


def test_random_weights_of_a_huge_model_are_refused_before_allocating(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COMPRESS_CACHE": str(tmp_path / "cache")}
    started = time.monotonic()
    run = subprocess.run([sys.executable, str(ROOT / "cli.py"), "apply", "--model", "random:llama-3.1-405b",
                          "--method", "fp16", "--out-dir", str(tmp_path / "out")], capture_output=True, text=True,
                         cwd=tmp_path, env=env, timeout=120)
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
    assert run.stderr.startswith("error: random weights of llama-3.1-405b (float16): needs ")
    assert "GiB of memory, but" in run.stderr and run.stderr.count("\n") == 1
    assert time.monotonic() - started < 60 and not (tmp_path / "out").exists()
