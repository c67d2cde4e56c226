"""FP8 and INT8 W8A8 compressed-tensors checkpoints through llm-compressor on the tiny Llama.

What vLLM needs to load them is checked in the files themselves, without vLLM: the config's
quantization_config (vLLM's CompressedTensorsConfig reads quant_method, format and each
config group's weights / input_activations), and the tensors (8-bit weights with one scale
per output channel, no static activation scales). W8A8 calibrates on 8 windows of 64 tokens.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from compress import apply, variants
from compress.apply import Job, Options
from compress.apply.llm_compressor import apply_w8a8
from compress.sources import Source

FAST = Options(device="cpu", calib_samples=8, calib_seq_len=64)
LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@pytest.fixture(scope="module")
def fp8(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory, one_torch_thread: None) -> tuple[Path, dict]:
    """Through the CLI, by its variant name (FP8 needs no calibration: seconds)."""
    from typer.testing import CliRunner

    import cli

    out = tmp_path_factory.mktemp("fp8") / "artifact"
    result = CliRunner().invoke(cli.app, ["apply", "--model", str(tiny_llama), "--method", "fp8", "--out", str(out),
                                          "--device", "cpu"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["variant"] == "fp8"
    return out, manifest["steps"][0]


@pytest.fixture(scope="module")
def w8a8(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory, one_torch_thread: None) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("w8a8") / "artifact"
    manifest = apply.run(Source("hf", tiny_llama, "tiny"), variants.parse("w8a8-int8"), out, FAST, log=lambda _: None)
    return out, manifest["steps"][0]


def tensors(folder: Path) -> dict:
    from safetensors.torch import load_file

    out = {}
    for file in folder.glob("*.safetensors"):
        out.update(load_file(file))
    return out


def quantization_config(folder: Path) -> dict:
    return json.loads((folder / "config.json").read_text())["quantization_config"]


def check_layout(folder: Path, weight_dtype: object) -> None:
    """Every decoder linear layer: 8-bit weight [out, in] + 16-bit weight_scale [out, 1]; the
    head and embeddings stay 16-bit; dynamic activations leave no input_scale behind."""
    import torch

    found = tensors(folder)
    linear = [k for k in found if k.endswith(".weight") and k.split(".")[-2] in LINEAR]
    assert len(linear) == 4 * len(LINEAR)  # 4 layers in the tiny Llama
    for key in linear:
        weight, scale = found[key], found[key.removesuffix("weight") + "weight_scale"]
        assert weight.dtype == weight_dtype
        assert tuple(scale.shape) == (weight.shape[0], 1) and scale.dtype == torch.float16
    assert found["lm_head.weight"].dtype == torch.float16 and found["model.embed_tokens.weight"].dtype == torch.float16
    assert not [k for k in found if "input_scale" in k or "zero_point" in k]


def check_scheme(q: dict, fmt: str, kind: str) -> None:
    # The keys vLLM 0.32's CompressedTensorsConfig.from_config reads (compressed_tensors.py).
    assert q["quant_method"] == "compressed-tensors" and q["format"] == fmt
    assert q["ignore"] == ["lm_head"]
    (group,) = q["config_groups"].values()
    assert group["targets"] == ["Linear"]
    weights, acts = group["weights"], group["input_activations"]
    assert (weights["type"], weights["num_bits"], weights["strategy"], weights["symmetric"], weights["dynamic"]) == \
        (kind, 8, "channel", True, False)
    assert (acts["type"], acts["num_bits"], acts["strategy"], acts["dynamic"]) == (kind, 8, "token", True)


def relative_logit_error(tiny_llama: Path, artifact: Path) -> float:
    import torch

    from compress.loading import load_causal_lm

    base = load_causal_lm(tiny_llama)
    from transformers import AutoModelForCausalLM

    quantized = AutoModelForCausalLM.from_pretrained(str(artifact), dtype=torch.float32, trust_remote_code=False)
    ids = torch.arange(1, 129).view(2, 64)
    with torch.no_grad():
        a, b = base(ids).logits.float(), quantized(ids).logits.float()
    return ((b - a).norm() / a.norm()).item()


def test_fp8_writes_a_float_quantized_checkpoint(fp8: tuple[Path, dict]) -> None:
    import torch

    folder, info = fp8
    check_scheme(quantization_config(folder), "float-quantized", "float")
    check_layout(folder, torch.float8_e4m3fn)
    assert info["runtime"] == "transformers" and "vllm" in info["loads_in"] and info["quant_format"] == "float-quantized"


def test_w8a8_writes_an_int_quantized_checkpoint(w8a8: tuple[Path, dict]) -> None:
    import torch

    folder, info = w8a8
    check_scheme(quantization_config(folder), "int-quantized", "int")
    check_layout(folder, torch.int8)
    assert info["smoothing_strength"] == 0.8 and info["quant_format"] == "int-quantized"


def test_planner_sizes_the_artifacts(tiny_llama: Path, fp8: tuple[Path, dict], w8a8: tuple[Path, dict]) -> None:
    # profiles/formats.toml [fp8]/[w8a8] against the files written: tensor bytes match; the
    # safetensors header (names, shapes, offsets as JSON) adds a few kB.
    from compress.planner import load_model_spec
    from compress.planner.formats import weight_bytes

    spec = load_model_spec(str(tiny_llama))
    for folder, name in ((fp8[0], "fp8"), (w8a8[0], "w8a8-int8")):
        on_disk = sum(f.stat().st_size for f in folder.glob("*.safetensors"))
        assert 0 <= on_disk - weight_bytes(spec, name) < 16_384, name


def test_transformers_loads_both_close_to_the_original(tiny_llama: Path, fp8: tuple[Path, dict],
                                                       w8a8: tuple[Path, dict]) -> None:
    # compressed-tensors decompresses into 16-bit Linear layers on the CPU. Bounds measured on
    # this tiny random-weight model (fp8 0.084: E4M3 keeps 3 mantissa bits; int8 0.021), with
    # margin; an unquantized copy would give ~0 and a broken one ~1.
    assert relative_logit_error(tiny_llama, fp8[0]) < 0.15
    assert relative_logit_error(tiny_llama, w8a8[0]) < 0.05


def test_smoothing_strength_out_of_range_is_a_user_error(tiny_llama: Path, tmp_path: Path) -> None:
    from compress.errors import UserInputError

    with pytest.raises(UserInputError, match="SmoothQuant strength"):
        apply_w8a8(Job(Source("hf", tiny_llama, "tiny"), {"smoothing_strength": 1.5}, tmp_path, "cpu", FAST))
