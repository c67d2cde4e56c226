"""Distillation: the loss formula on hand-made logits, and teacher → student runs on the
tiny Llama after training it briefly so that it has something to teach."""

import hashlib
import json
import math

import pytest
import torch
from typer.testing import CliRunner

from compress import apply, sources, variants
from compress.apply import distill
from compress.errors import UserInputError
from compress.loading import load_causal_lm, load_tokenizer

pytestmark = pytest.mark.usefixtures("one_torch_thread")



@pytest.fixture(scope="module")
def teacher(tiny_llama, tmp_path_factory):
    """The tiny Llama after 60 AdamW steps on calibration text: a random teacher's logits teach nothing."""
    from compress.corpus import default_text

    folder = tmp_path_factory.mktemp("teacher")
    tokenizer = load_tokenizer(tiny_llama)
    model = load_causal_lm(tiny_llama)
    ids = torch.tensor(tokenizer(default_text("calibration")[:150_000])["input_ids"][: 60 * 8 * 64]).reshape(60, 8, 64)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    torch.manual_seed(0)
    model.train()
    for batch in ids:
        loss = model(batch, labels=batch, use_cache=False).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def run(model, variant, out, text_file, **overrides):
    options = apply.Options(text=str(text_file), calib_samples=8, calib_seq_len=64)
    step = variants.parse(variant).steps[0]
    step = variants.Step(step.method, {**step.config, **overrides})
    return apply.run(sources.resolve(str(model)), variants.Variant(variant, (step,)), out, options, log=lambda line: None)


def test_loss_is_cross_entropy_alone_at_alpha_0():
    s, t, y = torch.randn(5, 11), torch.randn(5, 11), torch.randint(0, 11, (5,))
    loss, _, ce = distill.distillation_loss(s, t, y, temperature=3.0, alpha=0.0)
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(s, y))
    torch.testing.assert_close(ce, loss)


def test_kl_term_is_zero_for_equal_logits_and_scaled_by_t_squared():
    s, y = torch.randn(2, 5, 11), torch.randint(0, 11, (2, 5))
    _, kl, _ = distill.distillation_loss(s, s.clone(), y)
    assert float(kl) == pytest.approx(0, abs=1e-6)
    t = torch.randn(2, 5, 11)
    loss, kl, _ = distill.distillation_loss(s, t, y, temperature=2.0, alpha=1.0)
    assert float(kl) > 0
    torch.testing.assert_close(loss, 4 * kl)
    # The KL of the softened distributions, per token position (Hinton et al. 2015).
    p_t, p_s = torch.softmax(t / 2, -1), torch.softmax(s / 2, -1)
    expected = (p_t * (p_t.log() - p_s.log())).sum(-1).mean()
    torch.testing.assert_close(kl, expected)


@pytest.mark.parametrize("key, value", [("steps", 0), ("lr", -1.0), ("temperature", 0.0), ("alpha", 1.5)])
def test_bad_hyperparameters_are_refused(key, value):
    with pytest.raises(UserInputError):
        distill.settings({key: value})


def test_distillation_improves_the_layer_dropped_student(teacher, text_file, tmp_path):
    # Pure KL (alpha 1) so the student is pulled towards the teacher, not past it on the text.
    info = run(teacher, "distill-2", tmp_path / "out", text_file, steps=30, lr=3e-4, alpha=1.0)["steps"][0]
    assert info["student_layers"] == 2 and len(info["dropped_layers"]) == 2
    assert info["perplexity_teacher"] < info["perplexity_before"]
    # Measured: KL 0.022 → 0.0016 and perplexity 218 → 209 (teacher 209) on the held-out tokens.
    assert info["kl_to_teacher_after"] < 0.3 * info["kl_to_teacher_before"]
    assert info["perplexity_after"] < info["perplexity_before"]
    assert info["loss_last"] < info["loss_first"]
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["num_hidden_layers"] == 2
    model = load_causal_lm(tmp_path / "out")
    ids = load_tokenizer(tmp_path / "out")("The history of", return_tensors="pt").input_ids
    assert model.generate(ids, max_new_tokens=4, do_sample=False).shape[1] == ids.shape[1] + 4


def test_same_inputs_give_the_same_student(teacher, text_file, tmp_path):
    digests = []
    for name in ("a", "b"):
        run(teacher, "distill-3", tmp_path / name, text_file, steps=3)
        digests.append(hashlib.sha256((tmp_path / name / "model.safetensors").read_bytes()).hexdigest())
    assert digests[0] == digests[1]


def test_an_interrupted_run_resumes_from_its_checkpoint(teacher, text_file, tmp_path, monkeypatch):
    run(teacher, "distill-3", tmp_path / "straight", text_file, steps=4)
    monkeypatch.setattr(distill, "CHECKPOINT_EVERY", 2)
    calls = []
    real_loss = distill.distillation_loss

    def failing_at_step_3(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(distill, "distillation_loss", failing_at_step_3)
    with pytest.raises(KeyboardInterrupt):
        run(teacher, "distill-3", tmp_path / "resumed", text_file, steps=4)
    assert not (tmp_path / "resumed").exists()
    monkeypatch.setattr(distill, "distillation_loss", real_loss)
    info = run(teacher, "distill-3", tmp_path / "resumed", text_file, steps=4)["steps"][0]
    straight = json.loads((tmp_path / "straight" / "manifest.json").read_text())["steps"][0]
    assert info["loss_last"] == straight["loss_last"]
    assert (tmp_path / "resumed" / "model.safetensors").read_bytes() == (tmp_path / "straight" / "model.safetensors").read_bytes()


def test_another_local_student_with_the_same_tokenizer(teacher, text_file, tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    student = tmp_path / "student"
    config = LlamaConfig.from_pretrained(teacher)
    config.num_hidden_layers, config.intermediate_size = 1, 256
    LlamaForCausalLM(config).save_pretrained(student)
    load_tokenizer(teacher).save_pretrained(student)
    info = run(teacher, "distill-1", tmp_path / "out", text_file, steps=5, lr=1e-3, student=str(student))["steps"][0]
    assert info["student"] == str(student)
    assert info["perplexity_after"] < info["perplexity_before"]

    tokenizer = load_tokenizer(teacher)
    tokenizer.add_tokens(["<extra>"])
    tokenizer.save_pretrained(student)
    with pytest.raises(UserInputError, match="different tokenizer from the teacher"):
        run(teacher, "distill-1", tmp_path / "refused", text_file, steps=5, student=str(student))
    assert not (tmp_path / "refused").exists()


def test_a_student_as_deep_as_the_teacher_is_refused(teacher, text_file, tmp_path):
    with pytest.raises(UserInputError, match="between 1 and 3 layers"):
        run(teacher, "distill-4", tmp_path / "out", text_file)


def test_cli_distills_with_a_progress_line(teacher, text_file, tmp_path):
    from cli import app

    out = tmp_path / "cli"
    result = CliRunner().invoke(app, ["apply", "--model", str(teacher), "--method", "distill-2", "--out", str(out),
                                      "--text", str(text_file), "--calib-samples", "8", "--calib-seq-len", "64",
                                      "--steps", "4"])
    assert result.exit_code == 0, result.output
    assert "step 4/4: loss" in result.output
    assert "perplexity on" in result.output
    assert math.isfinite(json.loads((out / "manifest.json").read_text())["steps"][0]["perplexity_after"])
