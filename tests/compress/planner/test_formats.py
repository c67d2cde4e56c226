"""Storage sizes from byte layouts, checked against published files."""

import pytest

from compress.methods.gguf import gguf_tensor_type, gguf_type_bytes
from compress.model.tensors import Tensor, tensors
from compress.planner import artifact_bytes, formats, load_model_spec

# TheBloke/Llama-2-7B-GGUF file sizes (decimal GB) and TheBloke/Llama-2-7B-GPTQ main branch
# (4-bit, group 128) model.safetensors, as listed on their Hugging Face model cards.
PUBLISHED_GB = {"q2_k": 2.83, "q3_k_s": 2.95, "q3_k_m": 3.30, "q3_k_l": 3.60, "q4_0": 3.83, "q4_k_s": 3.86,
                "q4_k_m": 4.08, "q5_0": 4.65, "q5_k_m": 4.78, "q6_k": 5.53, "q8_0": 7.16, "gptq-4-g128": 3.90}


@pytest.mark.parametrize(("variant", "gb"), PUBLISHED_GB.items())
def test_llama_2_7b_artifact_sizes_match_published_files(variant, gb):
    predicted_gb = artifact_bytes(load_model_spec("llama-2-7b"), variant) / 1e9
    assert predicted_gb == pytest.approx(gb, rel=0.02)


@pytest.mark.parametrize(("qtype", "bpw"), [("Q4_K", 4.5), ("Q6_K", 6.5625), ("Q8_0", 8.5), ("Q4_0", 4.5),
                                            ("Q5_K", 5.5), ("Q3_K", 3.4375), ("Q2_K", 2.625)])
def test_gguf_block_layouts(qtype, bpw):
    # GGML block structs: e.g. Q4_K = 144 bytes per 256 weights.
    assert gguf_type_bytes(qtype, 256 * 32) * 8 / (256 * 32) == bpw


def test_q4_k_m_mixes_q6_k_into_half_the_attn_v_and_ffn_down_layers():
    spec = load_model_spec("llama-2-7b")
    layer_types = {t.layer: gguf_tensor_type("Q4_K_M", t, spec)
                   for t in tensors(spec) if t.role == "attn_v"}
    assert sum(q == "Q6_K" for q in layer_types.values()) == 16
    output = next(t for t in tensors(spec) if t.role == "output")
    assert gguf_tensor_type("Q4_K_M", output, spec) == "Q6_K"


def test_k_quant_falls_back_when_rows_are_not_multiples_of_256():
    spec = load_model_spec("smollm2-135m")  # hidden 576 = 2.25 x 256
    q = next(t for t in tensors(spec) if t.role == "attn_q")
    assert gguf_tensor_type("Q4_K_M", q, spec) == "Q5_0"


def test_nf4_double_quant_bits():
    # QLoRA: 4 + 8/64 + 32/(64*256) bits per weight for quantized linears.
    t = Tensor("attn_q", 0, 4096, 4096)
    step = formats.variants.parse("nf4").steps[0]
    bits = 8 * formats.tensor_bytes(t, step, load_model_spec("llama-2-7b")) / t.numel
    assert bits == pytest.approx(4 + 8 / 64 + 32 / (64 * 256), abs=1e-4)


def test_gptq_keeps_embeddings_fp16():
    spec = load_model_spec("llama-2-7b")
    embed = next(t for t in tensors(spec) if t.role == "token_embd")
    step = formats.variants.parse("gptq-4-g128").steps[0]
    assert formats.tensor_bytes(embed, step, spec) == embed.numel * 2


def test_unstructured_pruning_saves_no_bytes():
    spec = load_model_spec("llama-2-7b")
    assert artifact_bytes(spec, "wanda-50") == artifact_bytes(spec, "fp16")
