"""A native crash in a runtime costs one variant, loudly, never the run.

The crashes are real signals, raised through :data:`compress.isolation.CRASH_ENV` at the
points where llama.cpp's kernels first run: the same child processes, the same records and
the same exit codes as a crash in the compiled code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from compress import apply, llamacpp, results, sources, variants
from compress.isolation import CRASH_ENV, ChildDied
from compress.measure import sweep
from compress.measure.settings import BenchSettings

ROOT = Path(__file__).resolve().parents[3]
SETTINGS = BenchSettings(ppl_tokens=256, ppl_context=128, ppl_stride=128, pp_tokens=16, tg_tokens=4, reps=1,
                         warmup=0, batch_sizes=(2,), threads=1, device="cpu", tests=("tg",), kld_top_k=0)
OPTIONS = apply.Options(device="cpu", calib_samples=4, calib_seq_len=64)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    return tmp_path_factory.mktemp("artifacts")


@pytest.fixture(autouse=True)
def _fresh_checks():
    llamacpp._CHECKED.clear()  # each test decides afresh how llama.cpp runs its files
    yield
    llamacpp._CHECKED.clear()


def _sweep(tiny_llama, path, artifacts, names="q8_0"):
    return sweep.run_sweep(sources.resolve(str(tiny_llama)), variants.parse_list(names), SETTINGS, OPTIONS, path,
                           artifacts, log=lambda line: None, isolate=True)


def test_a_crash_with_extra_buffer_types_reopens_without_them_and_every_record_says_so(
        tiny_llama, tmp_path, artifacts, monkeypatch):
    clean = _sweep(tiny_llama, tmp_path / "clean.jsonl", artifacts)
    assert clean and all(r["status"] == "ok" and r.get("extra_buffer_types") is True
                         for r in clean if r["test"] != "size")
    monkeypatch.setenv(CRASH_ENV, "llama.cpp-extra-bufts:SIGSEGV")
    written = _sweep(tiny_llama, tmp_path / "r.jsonl", artifacts)
    measured = [r for r in written if r["test"] != "size"]
    assert measured and all(r["status"] == "ok" for r in measured)
    for r in measured:
        assert r["extra_buffer_types"] is False and "died on SIGSEGV" in r["extra_buffer_types_why"]


def test_a_runtime_that_always_crashes_becomes_a_failure_naming_runtime_signal_and_cpu(
        tiny_llama, tmp_path, artifacts, monkeypatch):
    from compress.provenance import cpu_name

    monkeypatch.setenv(CRASH_ENV, "llama.cpp-open:SIGILL")
    path = tmp_path / "r.jsonl"
    _sweep(tiny_llama, path, artifacts, names="q8_0,fp32")
    stored = results.load(path)
    failed = [r for r in stored if r["status"] == "failed"]
    assert [(r["variant"], r["test"], r["runtime"]) for r in failed] == [("q8_0", "load", "llama.cpp")]
    assert failed[0]["error"].startswith("crashed: llama.cpp running ") and "SIGILL" in failed[0]["error"]
    assert cpu_name() in failed[0]["error"]
    assert any(r["variant"] == "fp32" and r["status"] == "ok" for r in stored)  # the sweep went on


def test_a_measuring_process_killed_by_a_signal_is_a_failed_record_and_the_sweep_goes_on(
        tiny_llama, tmp_path, artifacts, monkeypatch):
    monkeypatch.setenv(CRASH_ENV, "bench-variant:SIGSEGV")
    path = tmp_path / "r.jsonl"
    written = _sweep(tiny_llama, path, artifacts, names="fp32")
    assert [(r["variant"], r["test"], r["status"], r["signal"]) for r in written] == [
        ("fp32", "load", "failed", "SIGSEGV")]
    assert "the process measuring fp32 died on SIGSEGV" in written[0]["error"]


def test_check_opens_keeps_its_answer_per_file(tiny_llama, artifacts, tmp_path, monkeypatch):
    _sweep(tiny_llama, tmp_path / "r.jsonl", artifacts)  # builds the q8_0 artifact
    gguf = next(Path(artifacts).rglob("*.gguf"))
    assert llamacpp.check_opens(gguf, 1).extra_buffer_types is True
    monkeypatch.setenv(CRASH_ENV, "llama.cpp-open:SIGSEGV")
    assert llamacpp.check_opens(gguf, 1).extra_buffer_types is True  # answered from the first check
    llamacpp._CHECKED.clear()
    with pytest.raises(ChildDied, match="SIGSEGV"):
        llamacpp.check_opens(gguf, 1)
    monkeypatch.setenv(llamacpp.EXTRA_BUFTS_ENV, "0")
    assert llamacpp.check_opens(gguf, 1).extra_buffer_types is False  # the user's choice: no child at all


def test_bench_summarises_the_failed_variant_and_exits_some_failed(tiny_llama, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), CRASH_ENV: "llama.cpp-open:SIGSEGV"}
    path = tmp_path / "r.jsonl"
    run = subprocess.run([sys.executable, str(ROOT / "cli.py"), "bench", "--model", str(tiny_llama), "--methods",
                          "q8_0,fp32", "--tests", "tg", "--tg", "4", "--reps", "1", "--kld-top-k", "0",
                          "--results", str(path), "--artifacts", str(tmp_path / "a"), "--device", "cpu"],
                         env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 3, run.stderr  # compress.measure.outcome.SOME_FAILED
    assert "failed:\n  q8_0 load: crashed: llama.cpp running" in run.stderr
    assert "error: 1 test(s) of q8_0 failed" in run.stderr and "Traceback" not in run.stderr
    assert any(json.loads(line)["variant"] == "fp32" for line in path.read_text().splitlines())


CRASHING_TESTS = '''
import ctypes


def test_before():
    assert True


def test_native_crash():
    ctypes.string_at(0)


def test_after():
    assert True
'''


def test_a_native_crash_in_a_test_fails_that_test_alone(tmp_path):
    """The suite's own settings (pyproject's addopts) run tests in a worker process."""
    (tmp_path / "test_crashing.py").write_text(CRASHING_TESTS)
    run = subprocess.run([sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml"), "--rootdir",
                          str(tmp_path), "-p", "no:cacheprovider", str(tmp_path / "test_crashing.py")],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert "1 failed, 2 passed" in run.stdout, run.stdout[-3000:]
    assert "crashed while running 'test_crashing.py::test_native_crash'" in run.stdout
    assert "Segmentation fault" in run.stdout + run.stderr  # faulthandler names the signal
