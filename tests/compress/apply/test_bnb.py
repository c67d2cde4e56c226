"""bitsandbytes NF4/FP4/INT8 on the tiny Llama, on the CPU: serialized checkpoints that reload
to the very model quantized in memory, generate text, and stay close to the original."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from compress.apply import Job, Options
from compress.errors import UnsupportedError, UserInputError
from compress.sources import Source

OPTIONS = Options(device="cpu", calib_samples=8, calib_seq_len=64)


@pytest.fixture(scope="module")
def eval_ids(tiny_llama: Path, corpus_text: str) -> object:
    import torch

    from compress.corpus import token_ids
    from compress.loading import load_tokenizer

    return torch.tensor(token_ids(load_tokenizer(tiny_llama), corpus_text, max_tokens=256)).view(2, 128)


def logits(model: object, ids: object) -> object:
    import torch

    with torch.no_grad():
        return model(ids).logits.float()


def relative_error(reference: object, other: object) -> float:
    return ((other - reference).norm() / reference.norm()).item()


@pytest.fixture(scope="module")
def nf4_cli(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from typer.testing import CliRunner

    import cli

    out = tmp_path_factory.mktemp("bnb") / "nf4-cli"
    result = CliRunner().invoke(cli.app, ["apply", "--model", str(tiny_llama), "--method", "nf4", "--out", str(out),
                                          "--device", "cpu", "--compute-dtype", "float32"])
    assert result.exit_code == 0, result.output
    return out


def test_cli_writes_a_serialized_nf4_checkpoint(nf4_cli: Path) -> None:
    manifest = json.loads((nf4_cli / "manifest.json").read_text())
    step = manifest["steps"][0]
    assert manifest["variant"] == "nf4" and manifest["runtime"] == "transformers"
    assert (step["quant_type"], step["double_quant"], step["compute_dtype"]) == ("nf4", True, "float32")
    config = json.loads((nf4_cli / "config.json").read_text())["quantization_config"]
    assert config["quant_method"] == "bitsandbytes" and config["load_in_4bit"]
    assert config["bnb_4bit_quant_type"] == "nf4" and config["bnb_4bit_use_double_quant"]
    # Packed: 4-bit codes are a quarter of the float32 source's linear weights plus absmax,
    # so the whole file is well under half the source.
    assert manifest["size_bytes"] < 0.5 * manifest["source_size_bytes"]


@pytest.mark.parametrize("quant_type, compute_dtype, bound", [
    # Bounds: measured relative logit error on the random-weight tiny model, with margin;
    # NF4 0.25, FP4 0.34 (FP4's grid fits normal weights worse), INT8 0.02.
    ("nf4", "float32", 0.35),
    ("fp4", "float16", 0.45),
    ("int8", "float16", 0.05),
])
def test_reload_matches_the_in_memory_quantized_model(tiny_llama: Path, tmp_path: Path, eval_ids: object,
                                                      quant_type: str, compute_dtype: str, bound: float) -> None:
    from compress.apply.bnb import STORAGE_DTYPE, apply, quantization_config
    from compress.apply.loaders import load_artifact
    from compress.loading import load_causal_lm

    double_quant = quant_type != "int8"
    config = {"quant_type": quant_type, "double_quant": double_quant, "compute_dtype": compute_dtype}
    info = apply(Job(Source("hf", tiny_llama, "tiny"), config, tmp_path, "cpu", OPTIONS, log=lambda _: None))
    assert info["format"] == "hf" and info["quant_type"] == quant_type

    in_memory = load_causal_lm(tiny_llama, dtype=STORAGE_DTYPE, device_map="cpu",
                               quantization_config=quantization_config(quant_type, double_quant, compute_dtype))
    reloaded, tokenizer = load_artifact(tmp_path, "cpu", dtype=STORAGE_DTYPE)
    layer = reloaded.model.layers[0].mlp.down_proj
    assert type(layer).__name__ == ("Linear8bitLt" if quant_type == "int8" else "Linear4bit")
    # Same packed weights, same kernels: identical logits, not merely close.
    assert logits(reloaded, eval_ids).equal(logits(in_memory, eval_ids))

    original = logits(load_causal_lm(tiny_llama), eval_ids)
    assert relative_error(original, logits(reloaded, eval_ids)) < bound

    prompt = tokenizer("The history of", return_tensors="pt")
    out = reloaded.generate(**prompt, max_new_tokens=6, do_sample=False)
    assert out.shape[1] == prompt["input_ids"].shape[1] + 6


@pytest.mark.parametrize("config, error, match", [
    ({"quant_type": "int4"}, UserInputError, "quant type must be one of nf4, fp4, int8"),
    ({"quant_type": "int8", "double_quant": True}, UnsupportedError, "double quantization applies to .* 4-bit"),
    ({"quant_type": "nf4", "compute_dtype": "float64"}, UserInputError, "--compute-dtype must be one of"),
])
def test_bad_settings_fail_with_one_line(config: dict, error: type, match: str) -> None:
    from compress.apply.bnb import bnb_settings

    with pytest.raises(error, match=match) as info:
        bnb_settings(config)
    assert "\n" not in str(info.value)
