"""One definition of FLOPs and KV-cache bytes for the planner and the bench."""

from __future__ import annotations

from pathlib import Path

import pytest

from compress import formulas, variants
from compress.measure import metrics
from compress.measure.context import BenchEnvironment
from compress.planner import load_model_spec, memory, roofline


def test_matmul_params_leave_the_input_embedding_out():
    # SmolLM2-135M (tied): 134,515,008 parameters; the 49,152 x 576 table is both the input
    # embedding (left out) and the output head (counted back in) -> unchanged, while the same
    # counts untied lose the table: 134,515,008 - 28,311,552 = 106,203,456.
    assert formulas.matmul_params(134_515_008, 49_152, 576, tied_embeddings=True) == 134_515_008
    assert formulas.matmul_params(134_515_008, 49_152, 576, tied_embeddings=False) == 106_203_456
    # Llama-2-7B (untied): 6,738,415,616 - 32,000 x 4,096 = 6,607,343,616.
    spec = load_model_spec("llama-2-7b")
    assert spec.params == 6_738_415_616
    assert spec.matmul_params == 6_607_343_616


def test_prefill_flops_by_hand():
    # 3 tokens, N = 1000, 2 layers, d_attn 4: token i attends to i positions (1 + 2 + 3 = 6):
    # 3 * 2 * 1000 + 4 * 2 * 4 * 6 = 6000 + 192 = 6192.
    assert formulas.prefill_flops(1000, 3, layers=2, attention_dim=4) == 6192
    assert formulas.prefill_flops(1000, 3, layers=2, attention_dim=4, batch=2) == 2 * 6192


def test_decode_flops_by_hand():
    # Llama-2-7B, one token against 512 cached positions: 2 x 6,607,343,616 matmul weights
    # + 4 x 32 layers x 512 positions x 4,096 (32 heads x 128) = 13,214,687,232 + 268,435,456.
    spec = load_model_spec("llama-2-7b")
    one = 13_214_687_232 + 268_435_456
    assert roofline.decode_flops(spec.matmul_params, 1, spec.layers, spec.heads, spec.head_dim, 512) == one
    assert roofline.decode_flops(spec.matmul_params, 4, spec.layers, spec.heads, spec.head_dim, 512) == 4 * one
    # The bench's MFU divides by the same count.
    assert metrics.flops_per_token(spec.matmul_params, spec.layers, 512, spec.heads * spec.head_dim) == one


@pytest.mark.parametrize("model", ["llama-3-8b", "mistral-7b", "gemma-2-9b"])
def test_planner_and_bench_count_the_same_kv_cache(model):
    # The bench's decode MBU reads the KV cache through the same sliding-window rule as the planner.
    spec = load_model_spec(model)
    env = BenchEnvironment(source=None, settings=None, device="cpu", threads=1, fingerprint="", where={},
                           results_path=Path("results.jsonl"), spec=spec)
    shape = env.shape(variants.parse("fp16"))
    for tokens in (1024, 8192, 32768):
        measured = metrics.kv_cache_bytes(shape.layers, shape.kv_heads, shape.head_dim, tokens, 2,
                                          sliding_window=shape.sliding_window,
                                          sliding_window_layers=shape.sliding_window_layers)
        assert measured == memory.kv_cache_bytes(spec, tokens, 1, 2)
    # The bench's MFU counts the matmul weights by hand: untied models lose the input table
    # (Llama-3-8B: 8,030,261,248 - 128,256 x 4,096; Mistral-7B: 7,241,732,096 - 32,000 x 4,096),
    # a tied one keeps it as the output head (Gemma-2-9B).
    expected = {"llama-3-8b": 7_504_924_672, "mistral-7b": 7_110_660_096, "gemma-2-9b": 9_241_705_984}
    assert shape.matmul_params == expected[model]


def test_sliding_window_by_hand():
    # Gemma-2-9B-like: 42 layers, 21 with a 4096 window, 8 KV heads x 256, 2 bytes, 8192 tokens:
    # 2 * 8 * 256 * 2 = 8192 B per token-layer; (21 * 4096 + 21 * 8192) token-layers.
    assert formulas.kv_cache_bytes(42, 8, 256, 8192, 2, sliding_window=4096, sliding_window_layers=21) == \
        (21 * 4096 + 21 * 8192) * 8192
    # No window: every layer keeps every token.
    assert formulas.kv_cache_bytes(42, 8, 256, 8192, 2) == 42 * 8192 * 8192


@pytest.mark.parametrize("model, variant", [("mixtral-8x7b", "q4_k_m"), ("llama-3-8b", "fp16"), ("smollm2-135m", "q8_0")])
def test_bench_mbu_and_the_planner_count_the_same_decode_bytes(model, variant):
    """One formula: the planner's speed and bench's MBU read the same weight bytes per decode step,
    for a mixture of experts (two of eight experts a token), an untied embedding and a tied one."""
    from compress import variants
    from compress.formulas import decode_weight_bytes
    from compress.measure.context import model_shape
    from compress.planner import formats
    from compress.planner.predict import _read_bytes
    from compress.planner.spec import load_model_spec

    spec = load_model_spec(model)
    stored = formats.weight_bytes(spec, variants.parse(variant))
    shape = model_shape(formats.variant_spec(spec, variants.parse(variant)))
    for batch in (1, 4):
        assert shape.decode_weight_bytes(stored, batch) == pytest.approx(_read_bytes(spec, stored, batch), rel=1e-12)
    read = decode_weight_bytes(stored, spec.params, spec.vocab, spec.hidden, spec.tied_embeddings, spec.layers,
                               spec.intermediate, spec.experts, spec.experts_per_token)
    if spec.experts > 1:
        assert read < 0.4 * stored  # Mixtral reads about 13B of its 47B parameters a token
    elif not spec.tied_embeddings:
        assert read == pytest.approx(stored * (1 - spec.vocab * spec.hidden / spec.params))
    else:
        assert read == stored  # a tied table is read whole by the output head
