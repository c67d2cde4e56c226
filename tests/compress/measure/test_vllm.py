"""vLLM as a runtime: the offline engine's log-probabilities and timings, and ``vllm serve`` under load.

Integration tests: they need the vLLM environment (``make setup`` builds ``.venv-vllm``) and
take about a minute per engine start on a 2-core CPU (``--enforce-eager`` skips graph
compilation). Every server binds 127.0.0.1, serves a bounded load, and the tests check that
no process of its group is left and its port is free afterwards, also after a failed start
and after Ctrl-C.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from compress.errors import RuntimeFailure
from compress.measure import childproc, loadgen, serving
from compress.measure.vllm_runtime import VllmRuntime, vllm_present


pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not vllm_present(), reason="no vLLM environment (make setup builds .venv-vllm)")]

EAGER = ["--enforce-eager"]  # no graph compilation: a start takes about half as long
# Prompt log-probabilities of vLLM's fp32 CPU kernels vs transformers' eager fp32 on the tiny
# Llama: the same math in another summation order, ~1e-5 apart; a wrong token alignment is ~1 off.
LOGPROB_ATOL = 1e-3


@pytest.fixture(scope="module")
def default_folder():
    from compress import sources
    from compress.loading import hf_checkpoint

    return hf_checkpoint(sources.resolve("default"))


def _left_behind(pgid: int, port: int) -> list[str]:
    problems = []
    if childproc.group_alive(pgid):
        problems.append(f"process group {pgid} still has processes")
    if childproc.port_in_use(port):
        problems.append(f"port {port} still accepts connections")
    return problems


def test_offline_engine_scores_and_times_the_tiny_model(tiny_llama):
    import torch
    from transformers import AutoModelForCausalLM

    ids = [int(i) for i in np.random.default_rng(0).integers(1, 500, size=48)]
    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama), dtype=torch.float32).eval()
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), dim=-1)
    expected = [float(logp[i - 1, ids[i]]) for i in range(1, len(ids))]

    runtime = VllmRuntime(tiny_llama, {"format": "hf", "steps": [{"dtype": "fp32"}]}, "cpu", threads=2,
                          n_ctx=128, enforce_eager=True)
    pgid = runtime._proc.pid
    try:
        got = runtime.prompt_logprobs(ids)
        assert got[0] is None
        np.testing.assert_allclose(got[1:], expected, atol=LOGPROB_ATOL)
        timed = runtime.timed_generate([ids[:4], ids[4:8]], max_tokens=6, reps=2, warmup=1)
        assert len(timed["run_s"]) == 2 and min(timed["run_s"]) > 0
        assert runtime.peak_memory_bytes() > 0
    finally:
        runtime.close()
    assert not childproc.group_alive(pgid)


def test_served_load_on_the_default_model_and_nothing_left_after(default_folder):
    prompts = [list(range(100 + 40 * i, 132 + 40 * i)) for i in range(4)]  # 4 prompts of 32 token ids
    generous = {"output_tokens": 8, "slo_ttft_ms": 600_000.0, "slo_itl_ms": 600_000.0}
    with serving.VllmServer(default_folder, "float32", 256, threads=2, extra_args=EAGER) as server:
        pgid, port = server.proc.pid, server.port
        assert server.url.startswith("http://127.0.0.1:")
        assert loadgen.served_model(server.url) == server.served_name
        closed = serving.run_serve_test("serve-c2", {"concurrency": 2, **generous}, server.url,
                                        server.served_name, prompts)
        opened = serving.run_serve_test("serve-rate4", {"rate_per_s": 4.0, **generous}, server.url,
                                        server.served_name, prompts)
    for figures in (closed, opened):
        by = {f["metric"]: f for f in figures}
        assert by["ttft_ms"]["stats"]["n"] == 4 and by["ttft_ms"]["extra"]["failed"] == 0
        assert by["throughput_tok_s"]["extra"]["output_tokens"] == 4 * 8
        assert by["itl_ms"]["stats"]["n"] == 4 * 7  # 8 streamed tokens: 7 gaps a request
        # every request meets a 10-minute SLO: goodput is the request throughput
        assert by["goodput_req_s"]["value"] == pytest.approx(by["request_throughput_req_s"]["value"])
        assert {"median", "p90", "p99"} <= set(by["e2e_ms"]["stats"])
    assert _left_behind(pgid, port) == []


def test_a_failed_start_leaves_nothing_running(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["NoSuchForCausalLM"],
                                                      "model_type": "no-such-model"}))
    server = serving.VllmServer(tmp_path, "float32", 128, threads=2, extra_args=EAGER, start_timeout_s=300)
    started = time.monotonic()
    with pytest.raises(RuntimeFailure, match="vllm serve exited"):
        with server:
            pass
    assert time.monotonic() - started < 300
    assert _left_behind(server.proc.pid, server.port) == []


def test_ctrl_c_while_the_server_starts_leaves_nothing_running(default_folder, tmp_path):
    script = tmp_path / "start.py"
    script.write_text(textwrap.dedent(f"""
        from compress.measure import serving

        class Announcing(serving.VllmServer):
            def _wait_healthy(self):
                print(self.proc.pid, self.port, flush=True)
                super()._wait_healthy()

        with Announcing({str(default_folder)!r}, "float32", 256, threads=2, extra_args=["--enforce-eager"]):
            pass
    """))
    repo = Path(serving.__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(repo)})
    try:
        pgid, port = (int(x) for x in proc.stdout.readline().split())
        time.sleep(8)  # the server is importing vLLM / loading the model
        assert childproc.group_alive(pgid)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) != 0  # ended by KeyboardInterrupt, after stopping the server
    finally:
        if proc.poll() is None:
            proc.kill()
    assert _left_behind(pgid, port) == []
