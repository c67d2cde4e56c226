"""GPTQ and AWQ through GPTQModel on the tiny Llama, and GPTQ-4 on the default model.

Calibration is 8 windows of 64 tokens so each quantization takes seconds. The
tiny model has random weights, so its outputs are noise; what is checked is that
quantized logits stay close to the original ones, with bounds measured here and
given margin (see each test).
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from compress import apply, variants
from compress.apply import Job, Options
from compress.errors import UnsupportedError
from compress.sources import Source

FAST = Options(device="cpu", calib_samples=8, calib_seq_len=64)
CLI_CALIBRATION = ["--device", "cpu", "--calib-samples", "8", "--calib-seq-len", "64"]


def run_cli(args: list[str]) -> object:
    from typer.testing import CliRunner

    import cli

    return CliRunner().invoke(cli.app, args)


def relative_logit_error(base: object, other: object, ids: object) -> float:
    """‖logits_other − logits_base‖ / ‖logits_base‖ over a batch of token ids."""
    import torch

    with torch.no_grad():
        a = base(ids).logits.float()
        b = other(ids).logits.float()
    return ((b - a).norm() / a.norm()).item()


@pytest.fixture(scope="module")
def eval_ids(tiny_llama: Path, corpus_text: str) -> object:
    import torch

    from compress.corpus import token_ids
    from compress.loading import load_tokenizer

    ids = token_ids(load_tokenizer(tiny_llama), corpus_text, max_tokens=256)
    return torch.tensor(ids).view(2, 128)


@pytest.fixture(scope="module")
def tiny_base(tiny_llama: Path) -> object:
    from compress.loading import load_causal_lm

    return load_causal_lm(tiny_llama)


@pytest.fixture(scope="module")
def gptq4_cli(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gptq") / "gptq4-cli"
    result = run_cli(["apply", "--model", str(tiny_llama), "--method", "gptq-4-g128", "--out", str(out),
                      *CLI_CALIBRATION])
    assert result.exit_code == 0, result.output
    return out


def quantize(tiny_llama: Path, out: Path, variant: str) -> dict:
    return apply.run(Source("hf", tiny_llama, "tiny"), variants.parse(variant), out, FAST, log=lambda _: None)


def test_cli_writes_a_gptq_checkpoint_and_manifest(gptq4_cli: Path) -> None:
    manifest = json.loads((gptq4_cli / "manifest.json").read_text())
    assert manifest["variant"] == "gptq-4-g128"
    step = manifest["steps"][0]
    assert (step["bits"], step["group_size"], step["desc_act"]) == (4, 128, False)
    assert "vllm" in step["loads_in"]
    config = json.loads((gptq4_cli / "config.json").read_text())["quantization_config"]
    assert (config["quant_method"], config["bits"], config["group_size"]) == ("gptq", 4, 128)
    assert (gptq4_cli / "model.safetensors").is_file() and (gptq4_cli / "tokenizer.json").is_file()
    assert not (Path.cwd() / "logs").exists() or not any((Path.cwd() / "logs").glob("gptq_log_*"))


def test_gptq4_loads_in_transformers_generates_and_stays_close(gptq4_cli: Path, tiny_base: object,
                                                               eval_ids: object) -> None:
    from compress.apply.loaders import load_artifact

    model, tokenizer = load_artifact(gptq4_cli, "cpu", dtype="float32")
    assert type(model.model.layers[0].mlp.down_proj).__module__.startswith("gptqmodel")
    prompt = tokenizer("The history of", return_tensors="pt")
    out = model.generate(**prompt, max_new_tokens=8, do_sample=False)
    assert out.shape[1] == prompt["input_ids"].shape[1] + 8
    assert tokenizer.decode(out[0, -8:])
    # Measured 0.27 here (random weights make every layer's 4-bit error count);
    # a broken packing or scale gives ~1.0.
    assert relative_logit_error(tiny_base, model, eval_ids) < 0.4


def test_gptq_is_seeded_same_inputs_same_tensors(gptq4_cli: Path, tiny_llama: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    quantize(tiny_llama, tmp_path / "again", "gptq-4-g128")
    first, second = load_file(gptq4_cli / "model.safetensors"), load_file(tmp_path / "again" / "model.safetensors")
    assert first.keys() == second.keys()
    assert all(first[name].equal(second[name]) for name in first)


def test_gptq8_logits_close_to_the_original(tiny_llama: Path, tmp_path: Path, tiny_base: object,
                                            eval_ids: object) -> None:
    from compress.apply.loaders import load_artifact

    quantize(tiny_llama, tmp_path / "g8", "gptq-8-g128")
    model, _ = load_artifact(tmp_path / "g8", "cpu", dtype="float32")
    # 8-bit steps are 16× finer than 4-bit ones; measured 0.015 (bfloat16 storage included).
    assert relative_logit_error(tiny_base, model, eval_ids) < 0.05


def test_gptq_act_order_per_channel_and_damping(tiny_llama: Path, tmp_path: Path) -> None:
    """desc_act, group size -1 and a damping override reach the checkpoint and it loads."""
    from dataclasses import replace

    from compress.apply.loaders import load_artifact

    variant = variants.parse("gptq-4-g128-act")
    step = replace(variant.steps[0], config={**variant.steps[0].config, "group_size": -1, "damp_percent": 0.1})
    manifest = apply.run(Source("hf", tiny_llama, "tiny"), variants.Variant("gptq-4-g-1-act", (step,)),
                         tmp_path / "act", FAST, log=lambda _: None)
    assert manifest["steps"][0]["damp_percent"] == pytest.approx(0.1)
    config = json.loads((tmp_path / "act" / "config.json").read_text())["quantization_config"]
    assert (config["desc_act"], config["group_size"]) == (True, -1)
    model, tokenizer = load_artifact(tmp_path / "act", "cpu")
    prompt = tokenizer("The history of", return_tensors="pt")
    assert model.generate(**prompt, max_new_tokens=2, do_sample=False).shape[1] == prompt["input_ids"].shape[1] + 2


def _job(tiny_llama: Path, tmp_path: Path, config: dict) -> Job:
    return Job(Source("hf", tiny_llama, "tiny"), config, tmp_path, "cpu", FAST, log=lambda _: None)


@pytest.mark.parametrize("config, match", [
    ({"bits": 4, "group_size": 96, "desc_act": False}, "group size 96 does not divide .*hidden_size 256"),
    ({"bits": 4, "group_size": 0, "desc_act": False}, "positive integer or -1"),
    ({"bits": 5, "group_size": 128, "desc_act": False}, "GPTQ takes bits 2, 3, 4, 8, got 5"),
    ({"bits": 4, "group_size": 128, "desc_act": False, "damp_percent": 1.5}, r"--damp .* in \(0, 1\)"),
])
def test_gptq_refuses_bad_settings_before_work(tiny_llama: Path, tmp_path: Path, config: dict, match: str) -> None:
    from compress.apply.gptq import apply_gptq
    from compress.errors import UserInputError

    with pytest.raises(UserInputError, match=match):
        apply_gptq(_job(tiny_llama, tmp_path, config))
    assert not any(tmp_path.iterdir())


def test_cli_group_size_not_dividing_width_is_one_clear_error(tiny_llama: Path, tmp_path: Path) -> None:
    result = run_cli(["apply", "--model", str(tiny_llama), "--method", "gptq-4-g128", "--group-size", "384",
                      "--out", str(tmp_path / "bad"), *CLI_CALIBRATION])
    assert isinstance(result.exception, UnsupportedError)
    assert "does not divide" in str(result.exception) and "\n" not in str(result.exception)
    assert not (tmp_path / "bad").exists()


# --- AWQ ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def awq_cli(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("awq") / "awq4-cli"
    result = run_cli(["apply", "--model", str(tiny_llama), "--method", "awq-4-g128", "--out", str(out),
                      *CLI_CALIBRATION])
    assert result.exit_code == 0, result.output
    return out


def test_awq_checkpoint_loads_in_transformers_and_generates(awq_cli: Path, tiny_base: object,
                                                            eval_ids: object) -> None:
    from compress.apply.loaders import load_artifact

    manifest = json.loads((awq_cli / "manifest.json").read_text())
    assert manifest["steps"][0]["zero_point"] is True and "vllm" in manifest["steps"][0]["loads_in"]
    config = json.loads((awq_cli / "config.json").read_text())["quantization_config"]
    assert (config["quant_method"], config["bits"], config["zero_point"]) == ("awq", 4, True)
    model, tokenizer = load_artifact(awq_cli, "cpu", dtype="float32")
    prompt = tokenizer("The history of", return_tensors="pt")
    assert model.generate(**prompt, max_new_tokens=6, do_sample=False).shape[1] == prompt["input_ids"].shape[1] + 6
    # Measured 0.22 (asymmetric 4-bit with activation-aware scales); broken kernels give ~1.0.
    assert relative_logit_error(tiny_base, model, eval_ids) < 0.35


def test_awq_refuses_bits_other_than_4(tiny_llama: Path, tmp_path: Path) -> None:
    from compress.apply.gptq import apply_awq

    with pytest.raises(UnsupportedError, match="AWQ takes bits 4, got 3"):
        apply_awq(_job(tiny_llama, tmp_path, {"bits": 3, "group_size": 128, "zero_point": True}))


# --- the default model ----------------------------------------------------------------------------

VARIANT = "gptq-4-g64"


@pytest.mark.integration
def test_default_model_gptq4_size_and_perplexity(tmp_path: Path) -> None:
    """GPTQ-4 on SmolLM2-135M: size as the planner predicts, perplexity within a measured band.

    Group 64, not 128: the model's hidden size 576 is 4.5 groups of 128, which
    apply refuses (torch's int4 CPU kernel and vLLM both need whole groups; a
    g128 checkpoint forced past the check fails with "expect K to be divisible by
    qGroupSize, got K:576"). 64 divides 576 and 1536.
    """
    from compress import sources
    from compress.apply.loaders import load_artifact
    from compress.corpus import default_text, token_ids
    from compress.loading import hf_checkpoint, load_causal_lm
    from compress.measure.perplexity import model_perplexity
    from compress.planner import artifact_bytes, load_model_spec

    source = sources.resolve("default")
    options = Options(device="cpu", calib_samples=32, calib_seq_len=256)
    manifest = apply.run(source, variants.parse(VARIANT), tmp_path / "gptq", options, log=lambda _: None)

    # The planner counts packed int4 weights, fp16 group scales and zeros and fp16 for the
    # rest; GPTQModel adds only the JSON configs and its quant_log.csv, so 10% is ample.
    predicted = artifact_bytes(load_model_spec(sources.DEFAULT_CATALOG_NAME), VARIANT)
    assert manifest["size_bytes"] == pytest.approx(predicted, rel=0.10), (manifest["size_bytes"], predicted)

    base = load_causal_lm(hf_checkpoint(source))
    quantized, tokenizer = load_artifact(tmp_path / "gptq", "cpu", dtype="float32")
    ids = token_ids(tokenizer, default_text("eval"), max_tokens=2048)
    base_ppl, gptq_ppl = model_perplexity(base, ids, 512), model_perplexity(quantized, ids, 512)
    # Measured here (seed 0, 32 × 256 calibration tokens, 2,048 eval tokens): base 21.96,
    # GPTQ-4 g64 27.52, ratio 1.25. The weights sit on the Q4_1 grid (asymmetric, group 32),
    # which symmetric group-64 4-bit cannot reproduce, so the loss is real. The run is seeded
    # and repeats; the band is set from that one measurement, not from a spread over seeds:
    # below 1.10 the quantization did not happen, far above 1.45 it is broken.
    assert 1.10 <= gptq_ppl / base_ppl <= 1.45, (base_ppl, gptq_ppl)


def _apply_on_a_terminal(args: list[str]) -> str:
    """Run ``cli.py apply ARGS`` with stdout and stderr on a pseudo-terminal; what it showed."""
    root = Path(__file__).resolve().parents[3]
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "cli.py", "apply", *args], stdout=follower, stderr=follower, cwd=root,
                            env={**os.environ, "PYTHONPATH": str(root), "TERM": "xterm", "COLUMNS": "100"})
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(timeout=300) == 0, b"".join(chunks).decode(errors="replace")
    os.close(leader)
    return b"".join(chunks).decode(errors="replace")


def test_the_layer_bar_shows_on_a_terminal(tiny_llama, tmp_path):
    """GPTQModel writes to a log file; the bar over layers still reaches the terminal, with
    the time elapsed and the estimate of the time left."""
    shown = _apply_on_a_terminal(["--model", str(tiny_llama), "--method", "gptq-4-g64", "--out-dir",
                                  str(tmp_path / "gptq"), *CLI_CALIBRATION])
    assert "GPTQ: quantizing layers" in shown and "/4" in shown
    assert "elapsed," in shown and "left" in shown
