"""Layer dropping on the tiny Llama: fewer layers, smaller files, the surviving layers
unchanged, clean refusals; and once on the real default model."""

import hashlib
import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from compress import apply, sources, variants
from compress.errors import UserInputError
from compress.fsutil import dir_size_bytes
from compress.loading import hf_checkpoint, load_causal_lm, load_tokenizer

pytestmark = pytest.mark.usefixtures("one_torch_thread")



def run(model, variant, out, text_file=None, samples=4, seq_len=32):
    options = apply.Options(text=str(text_file) if text_file else None, calib_samples=samples, calib_seq_len=seq_len)
    return apply.run(sources.resolve(str(model)), variants.parse(variant), out, options, log=lambda line: None)


def test_dropping_writes_a_smaller_model_that_generates(tiny_llama, text_file, tmp_path):
    out = tmp_path / "out"
    manifest = run(tiny_llama, "layerdrop-2", out, text_file)
    info = manifest["steps"][0]
    assert json.loads((out / "config.json").read_text())["num_hidden_layers"] == 2
    assert info["layers_before"] == 4 and info["layers_after"] == 2 and len(info["importance"]) == 4
    # Each tiny layer holds 0.66M of the model's 2.9M parameters (embeddings and head 0.26M each).
    assert manifest["size_bytes"] < 0.6 * manifest["source_size_bytes"]
    model = load_causal_lm(out)
    assert len(model.model.layers) == 2
    ids = load_tokenizer(out)("The history of", return_tensors="pt").input_ids
    assert model.generate(ids, max_new_tokens=4, do_sample=False).shape[1] == ids.shape[1] + 4


def test_the_least_influential_layers_go_and_the_rest_are_kept_intact(tiny_llama, text_file, tmp_path):
    info = run(tiny_llama, "layerdrop-1", tmp_path / "out", text_file)["steps"][0]
    scores = info["importance"]
    assert info["dropped_layers"] == [scores.index(min(scores))]
    before = load_file(tiny_llama / "model.safetensors")
    after = load_file(tmp_path / "out" / "model.safetensors")
    for new, old in enumerate(info["kept_layers"]):
        torch.testing.assert_close(after[f"model.layers.{new}.mlp.down_proj.weight"],
                                   before[f"model.layers.{old}.mlp.down_proj.weight"], rtol=0, atol=0)
    assert not any(k.startswith("model.layers.3.") for k in after)


def test_same_inputs_give_the_same_artifact(tiny_llama, text_file, tmp_path):
    digests = []
    for name in ("a", "b"):
        run(tiny_llama, "layerdrop-2", tmp_path / name, text_file)
        digests.append(hashlib.sha256((tmp_path / name / "model.safetensors").read_bytes()).hexdigest())
    assert digests[0] == digests[1]


@pytest.mark.parametrize("n", [4, 7])
def test_dropping_every_layer_or_more_is_refused(tiny_llama, tmp_path, n):
    with pytest.raises(UserInputError, match="has 4 decoder layers: can drop between 1 and 3"):
        run(tiny_llama, f"layerdrop-{n}", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cli_refusal_is_one_line_and_exit_code_2(tiny_llama, tmp_path):
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-c", "import cli; cli.main()", "apply", "--model", str(tiny_llama),
                             "--method", "layerdrop-4", "--out", str(out)], capture_output=True, text=True)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: the model has 4 decoder layers: can drop between 1 and 3, got 4"]
    assert not out.exists() and not list(tmp_path.glob(".out.*"))


def test_cli_drops_layers_of_the_tiny_model(tiny_llama, text_file, tmp_path):
    from cli import app

    out = tmp_path / "cli"
    result = CliRunner().invoke(app, ["apply", "--model", str(tiny_llama), "--method", "layerdrop-1", "--out", str(out),
                                      "--text", str(text_file), "--calib-samples", "8", "--calib-seq-len", "64"])
    assert result.exit_code == 0, result.output
    assert "layerdrop-1" in result.output
    assert json.loads((out / "config.json").read_text())["num_hidden_layers"] == 3


@pytest.mark.integration
def test_layerdrop_6_on_the_default_model(tmp_path):
    """SmolLM2-135M, 30 → 24 layers: 6 of 30 blocks (3.5M parameters each) leave the checkpoint."""
    manifest = run("default", "layerdrop-6", tmp_path / "out", samples=4, seq_len=128)
    info = manifest["steps"][0]
    assert info["layers_after"] == 24 and len(info["dropped_layers"]) == 6
    # The source is a 98 MB Q4_1 GGUF; compare with the float32 checkpoint the step actually read.
    dense = dir_size_bytes(hf_checkpoint(sources.resolve("default")))
    assert 0.75 * dense < manifest["size_bytes"] < 0.85 * dense
    assert info["perplexity_before"] < info["perplexity_after"] < 10 * info["perplexity_before"]
