"""Pruning the tiny Llama: exact sparsity, 2:4 in every group, a checkpoint that loads,
generates and feeds the next step, identical artifacts from identical inputs."""

import hashlib
import json

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from compress import apply, sources, variants
from compress.errors import UnsupportedError, UserInputError
from compress.loading import load_causal_lm, load_tokenizer

LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

pytestmark = pytest.mark.usefixtures("one_torch_thread")



def run(model, variant, out, text_file, **overrides):
    options = apply.Options(text=str(text_file), calib_samples=4, calib_seq_len=32)
    parsed = variants.parse(variant)
    if overrides:
        step = parsed.steps[-1]
        parsed = variants.Variant(parsed.name, parsed.steps[:-1] + (variants.Step(step.method, {**step.config, **overrides}),))
    return apply.run(sources.resolve(str(model)), parsed, out, options, log=lambda line: None)


def linear_weights(folder):
    tensors = load_file(folder / "model.safetensors")
    return {k: v for k, v in tensors.items() if k.endswith(".weight") and k.split(".")[-2] in LINEARS}


@pytest.mark.parametrize("algorithm", ["magnitude", "wanda", "sparsegpt"])
def test_unstructured_pruning_hits_the_sparsity_and_generates(tiny_llama, text_file, tmp_path, algorithm):
    manifest = run(tiny_llama, f"{algorithm}-50", tmp_path / "out", text_file)
    info = manifest["steps"][0]
    # Every linear has an even input width (256 or 512), so half of each is exact.
    assert info["sparsity_measured"] == 0.5
    weights = linear_weights(tmp_path / "out")
    assert len(weights) == 4 * 7
    assert all((w == 0).float().mean() == 0.5 for w in weights.values())
    assert "dense" in info["storage"]
    model = load_causal_lm(tmp_path / "out")
    ids = load_tokenizer(tmp_path / "out")("The history of", return_tensors="pt").input_ids
    assert model.generate(ids, max_new_tokens=4, do_sample=False).shape[1] == ids.shape[1] + 4


def test_2_4_holds_in_every_group_of_four(tiny_llama, text_file, tmp_path):
    manifest = run(tiny_llama, "sparsegpt-2:4", tmp_path / "out", text_file)
    assert manifest["steps"][0]["pattern"] == "2:4"
    for name, w in linear_weights(tmp_path / "out").items():
        zeros = (w.reshape(w.shape[0], -1, 4) == 0).sum(dim=-1)
        assert (zeros >= 2).all(), name


def test_wanda_prunes_differently_from_magnitude(tiny_llama, text_file, tmp_path):
    run(tiny_llama, "wanda-50", tmp_path / "wanda", text_file)
    run(tiny_llama, "magnitude-50", tmp_path / "magnitude", text_file)
    wanda, magnitude = linear_weights(tmp_path / "wanda"), linear_weights(tmp_path / "magnitude")
    assert any(not torch.equal(wanda[k] == 0, magnitude[k] == 0) for k in wanda)


def test_same_inputs_give_the_same_artifact(tiny_llama, text_file, tmp_path):
    digests = []
    for name in ("a", "b"):
        run(tiny_llama, "sparsegpt-50", tmp_path / name, text_file)
        digests.append(hashlib.sha256((tmp_path / name / "model.safetensors").read_bytes()).hexdigest())
    assert digests[0] == digests[1]


def test_the_output_feeds_a_following_step(tiny_llama, text_file, tmp_path):
    """`wanda-50+gptq-4` hands the pruned folder to the next step: it must be a complete HF input."""
    manifest = run(tiny_llama, "wanda-50+fp32", tmp_path / "out", text_file)
    assert [s["method"] for s in manifest["steps"]] == ["prune", "baseline"]
    weights = linear_weights(tmp_path / "out")
    assert all((w == 0).float().mean() == 0.5 for w in weights.values())


def test_an_unsupported_architecture_is_refused_and_nothing_written(tmp_path, text_file):
    from transformers import GPT2Config, GPT2LMHeadModel

    folder = tmp_path / "gpt2"
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=64)).save_pretrained(folder)
    with pytest.raises(UnsupportedError, match="'gpt2' is not supported.*llama"):
        run(folder, "wanda-50", tmp_path / "out", text_file)
    assert not (tmp_path / "out").exists()


def test_2_4_with_another_sparsity_is_refused(tiny_llama, text_file, tmp_path):
    with pytest.raises(UserInputError, match="2:4 pattern fixes sparsity at 0.5"):
        run(tiny_llama, "wanda-2:4", tmp_path / "out", text_file, sparsity=0.7)
    assert not (tmp_path / "out").exists()


def test_cli_prunes_the_tiny_model(tiny_llama, text_file, tmp_path):
    from cli import app

    out = tmp_path / "cli"
    result = CliRunner().invoke(app, ["apply", "--model", str(tiny_llama), "--method", "wanda-50", "--out", str(out),
                                      "--text", str(text_file), "--calib-samples", "8", "--calib-seq-len", "64"])
    assert result.exit_code == 0, result.output
    assert "wanda-50" in result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["steps"][0]["sparsity_measured"] == 0.5
    assert manifest["steps"][0]["perplexity_after"] > 0
