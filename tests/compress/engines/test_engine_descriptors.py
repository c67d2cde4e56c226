"""Every engine descriptor answers what the rest of the system asks of it, and the data
files name only registered engines."""

from __future__ import annotations

import ast
import importlib.util
import tomllib
from pathlib import Path

import pytest

from compress import engines
from compress.errors import UserInputError
from compress.planner.serving import serving_command

ROOT = Path(__file__).resolve().parents[3]
PROFILES = ROOT / "profiles"


def _toml(name: str) -> dict:
    return tomllib.loads((PROFILES / name).read_text())


@pytest.mark.parametrize("name", list(engines.ENGINES))
def test_each_descriptor_is_complete(name):
    d = engines.engine(name)
    assert d.name == name and d.formats
    runtimes = _toml("runtimes.toml")
    assert name in runtimes["runtime"], f"{name} has no [runtime.{name}] table in profiles/runtimes.toml"
    assert d.profile() == runtimes["runtime"][name]
    if d.adapter is not None:  # the class is defined in the module it names, without importing it
        module, _, cls = d.adapter.partition(":")
        spec = importlib.util.find_spec(module)
        assert spec is not None and spec.origin
        tree = ast.parse(Path(spec.origin).read_text())
        assert cls in {n.name for n in tree.body if isinstance(n, ast.ClassDef)}
    if d.gpu_rule is not None:
        assert d.gpu_rule in _toml("kernels.toml")


def test_the_data_files_name_only_registered_engines():
    runtimes, kernels = _toml("runtimes.toml"), _toml("kernels.toml")
    named = {e for table in runtimes["engines"].values() for served in table.values() for e in served}
    named |= set(runtimes["batch_efficiency"]) | set(runtimes["tensor_parallel"]["engines"])
    named |= {e for rule in kernels.values() for e in rule.get("engines", ())}
    assert named <= set(engines.ENGINES), f"unregistered engines in profiles/: {named - set(engines.ENGINES)}"
    for table in runtimes["runtime"]:
        assert table in engines.ENGINES


@pytest.mark.parametrize("fmt, method, config, expected", [
    ("hf", "gptq", {"bits": 4}, ["vllm", "transformers"]),
    ("hf", "bnb", {"quant_type": "nf4"}, ["vllm", "transformers"]),  # vLLM loads pre-quantized NF4
    ("hf", "bnb", {"quant_type": "int8"}, ["transformers"]),
    ("hf", "baseline", {"dtype": "float16"}, ["vllm", "transformers", "mlx"]),
    ("gguf", "gguf", {"qtype": "q4_k_m"}, ["llama.cpp"]),
    ("onnx", "onnx", {}, ["onnxruntime"]),
])
def test_loading_lists_the_engines_that_open_an_artifact(fmt, method, config, expected):
    assert engines.loading(fmt, method, config) == expected


def test_unknown_names_fail_with_the_valid_ones():
    assert engines.check("any") == "any" and engines.check("llama.cpp") == "llama.cpp"
    with pytest.raises(UserInputError, match="vllm, llama.cpp"):
        engines.check("vllmm")
    with pytest.raises(UserInputError, match="cannot run mlx"):
        engines.adapter("mlx")
    assert "mlx" not in engines.measurable() and "vllm" in engines.measurable()


def test_serving_commands_come_from_the_engines():
    gguf = {"variant": "q4_k_m", "runtime": "llama.cpp", "kernel": "llama.cpp", "method": "gguf",
            "config": {"qtype": "q4_k_m"}}
    assert serving_command("tiny", gguf, 4096, batch=2) == \
        "llama-server -m artifacts/tiny-q4_k_m/tiny.Q4_K_M.gguf -c 8192 -np 2 -ngl 99"
    gptq = {"variant": "gptq-4-g128", "runtime": "vllm", "kernel": "marlin", "method": "gptq",
            "config": {"bits": 4}, "memory": {"engine_memory_fraction": 0.5}}
    assert serving_command("tiny", gptq, 2048, gpus=2) == (
        "vllm serve artifacts/tiny-gptq-4-g128 --max-model-len 2048 --max-num-seqs 1 "
        "--quantization gptq_marlin --tensor-parallel-size 2 --gpu-memory-utilization 0.5")
    onnx = {"variant": "onnx-int8", "runtime": "onnxruntime", "kernel": "ort_int8", "method": "onnx", "config": {}}
    assert serving_command("tiny", onnx, 2048) is None
