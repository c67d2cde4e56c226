"""`compress doctor`: which runtimes work on this machine, each tried for real in a child process.

A runtime that imports may still crash on the first kernel it runs: a llama.cpp built for
another CPU, a bitsandbytes without a kernel for this one. Each check therefore runs a tiny
piece of real work (a forward pass, an eval, a quantized matmul) in a child process of its
own (:func:`compress.isolation.run_in_child`), so one crash is one failed row, named with
its signal, and the other checks still run. The header names the CPU and the vector
extensions that decide which kernels run.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import subprocess
from dataclasses import dataclass
from typing import Any

from compress.output import Table

OK, FAILED, MISSING = "ok", "failed", "not installed"


@dataclass(frozen=True)
class Check:
    runtime: str
    status: str
    version: str | None
    detail: str


def diagnose(timeout_s: float = 300.0) -> list[Check]:
    """Every runtime's check, in the order users meet them."""
    return [_check(name, function, distribution, timeout_s) for name, function, distribution in CHECKS] + [
        _vllm(timeout_s)]


def _check(name: str, function: Any, distribution: str, timeout_s: float) -> Check:
    from compress.isolation import run_in_child

    version = _version(distribution)
    if version is None:
        return Check(name, MISSING, None, f"pip package {distribution} is not installed")
    try:
        detail = run_in_child(function, what=f"the {name} check", timeout_s=timeout_s, quiet=True)
    except Exception as err:  # noqa: BLE001 - every failure is a row, never the end of the checks
        return Check(name, FAILED, version, " ".join(str(err).split()))
    return Check(name, OK, version, detail)


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _transformers() -> str:
    """A two-layer Llama built from a config (random weights), one forward pass in torch."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2)
    with torch.inference_mode():
        logits = LlamaForCausalLM(config).eval()(torch.arange(16)[None]).logits
    if not torch.isfinite(logits).all():
        raise ValueError("the forward pass gave non-finite logits")
    return f"forward pass of a 2-layer Llama on {torch.get_num_threads()} threads (torch {torch.__version__})"


def _llama_cpp() -> str:
    """The default model's own GGUF opened and evaluated, as bench does (crash check included)."""
    import llama_cpp

    from compress.llamacpp import check_opens
    from compress.measure.runtimes import physical_cores
    from compress.sources import default_model_path

    features = _llama_features(llama_cpp.llama_print_system_info().decode(errors="replace"))
    try:
        gguf = default_model_path()
    except Exception as err:  # noqa: BLE001 - no GGUF here: the build is still worth naming
        return f"built with {features}; not run: {err}"
    check = check_opens(gguf, physical_cores())
    how = "with extra CPU buffer types" if check.extra_buffer_types else f"WITHOUT extra buffer types: {check.why}"
    return f"{gguf.name} ran {how}; built with {features}"


def _llama_features(system_info: str) -> str:
    """The instruction sets llama.cpp's CPU backend was compiled with, as one line."""
    from compress.llamacpp import build_features

    return " ".join(build_features(system_info)) or "no optional instruction sets"


def _onnxruntime() -> str:
    """A one-node MatMul graph built with onnx.helper, run in an InferenceSession on the CPU."""
    import numpy as np
    import onnx
    import onnxruntime
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "doctor",
                              [helper.make_tensor_value_info("a", TensorProto.FLOAT, [4, 8]),
                               helper.make_tensor_value_info("b", TensorProto.FLOAT, [8, 2])],
                              [helper.make_tensor_value_info("c", TensorProto.FLOAT, [4, 2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = min(model.ir_version, 9)
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    a, b = np.ones((4, 8), np.float32), np.ones((8, 2), np.float32)
    (out,) = session.run(None, {"a": a, "b": b})
    if not np.allclose(out, a @ b):
        raise ValueError(f"MatMul gave {out.ravel()[:2]}, expected 8.0")
    return f"MatMul graph on {', '.join(session.get_providers())} (onnx {onnx.__version__})"


def _bitsandbytes() -> str:
    """An NF4 4-bit linear layer quantized and run on this machine's device."""
    import bitsandbytes as bnb
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    dense = torch.nn.Linear(128, 64, bias=False)
    layer = bnb.nn.Linear4bit(128, 64, bias=False, quant_type="nf4", compute_dtype=torch.float32)
    layer.weight = bnb.nn.Params4bit(dense.weight.data, requires_grad=False, quant_type="nf4")
    layer = layer.to(device)
    x = torch.randn(2, 128, device=device)
    with torch.inference_mode():
        error = (layer(x).float().cpu() - dense(x.cpu())).abs().max().item()
    if not error < 1.0:
        raise ValueError(f"the NF4 layer's output differs from the dense layer's by {error:.3g}")
    return f"NF4 linear layer on {device}, max |error| {error:.3f} against fp32"


def _ray() -> str:
    """Ray imported (a cluster is not started: that takes seconds and the tests cover it)."""
    import ray

    return f"imported (ray {ray.__version__}); clusters start with `compress bench --cluster`"


def _vllm(timeout_s: float) -> Check:
    """vLLM lives in an environment of its own: it is imported there, in a process of its own."""
    from compress.errors import CompressError
    from compress.measure.vllm_runtime import vllm_python

    try:
        python = vllm_python()
    except CompressError as err:
        return Check("vllm", MISSING, None, str(err).split(":")[0])
    code = "import vllm, sys; sys.stdout.write(vllm.__version__)"
    try:
        run = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return Check("vllm", FAILED, None, f"`import vllm` in {python} took over {timeout_s:g} s")
    if run.returncode != 0 and "No module named 'vllm'" in run.stderr:
        return Check("vllm", MISSING, None, f"{python.parent.parent} has no vllm: run `make setup`")
    if run.returncode != 0:
        last = (run.stderr.strip().splitlines() or ["no output"])[-1]
        return Check("vllm", FAILED, None, f"`import vllm` in {python} failed: {last}")
    return Check("vllm", OK, run.stdout.strip(), f"imported in {python.parent.parent} (engines start in bench)")


#: (row name, check, pip distribution whose version is shown)
CHECKS = (
    ("transformers", _transformers, "transformers"),
    ("llama.cpp", _llama_cpp, "llama_cpp_python"),
    ("onnxruntime", _onnxruntime, "onnxruntime"),
    ("bitsandbytes", _bitsandbytes, "bitsandbytes"),
    ("ray", _ray, "ray"),
)


def doctor_table(checks: list[Check]) -> Table:
    from compress.isolation import cpu_summary
    from compress.measure.runtimes import physical_cores

    failed = [c.runtime for c in checks if c.status == FAILED]
    verdict = (f"{len(failed)} runtime(s) failed here: {', '.join(failed)}" if failed
               else "every installed runtime ran here")
    return Table(title=f"compress doctor: {cpu_summary()}, {physical_cores()} cores",
                 columns=["runtime", "version", "status", "detail"],
                 rows=[[c.runtime, c.version, c.status, c.detail] for c in checks], notes=[verdict],
                 name="doctor")
