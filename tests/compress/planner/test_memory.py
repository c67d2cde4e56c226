"""Seed formula worked examples and hand-computed KV-cache sizes."""

import pytest

from compress.planner import load_model_spec
from compress.planner.memory import kv_cache_bytes, seed_formula, seed_memory_gb


def test_seed_formula_worked_examples():
    assert seed_memory_gb(7e9, 16) == pytest.approx(16.8, abs=1e-9)  # Llama-2-7B FP16
    assert seed_memory_gb(7e9, 8) == pytest.approx(8.4, abs=1e-9)  # Llama-2-7B 8-bit
    assert seed_memory_gb(1.23e9, 16) == pytest.approx(2.952, abs=1e-9)  # Llama-3.2-1B FP16, ~2.95 GB


def test_plan_seed_shows_nominal_7b():
    rows = seed_formula(load_model_spec("llama-2-7b"))["rows"]
    assert [r["memory_gb_nominal"] for r in rows[:2]] == [16.8, 8.4]


def test_kv_cache_gqa_by_hand():
    # Llama-3-8B: 32 layers, 8 KV heads (GQA, 32 query heads), head_dim 128, fp16 (2 bytes).
    # 2 (K,V) * 32 layers * 8 kv_heads * 128 head_dim * 8192 tokens * 1 seq * 2 bytes
    #   = 2 * 32 * 8 * 128 = 65,536 elements per token; * 2 bytes = 131,072 B/token (128 KiB);
    #   * 8192 tokens = 1,073,741,824 B = exactly 1 GiB.
    spec = load_model_spec("llama-3-8b")
    assert kv_cache_bytes(spec, 8192, 1, 2) == 1_073_741_824
    # batch 4 with an 8-bit cache: 4 * 1 GiB / 2 = 2 GiB
    assert kv_cache_bytes(spec, 8192, 4, 1) == 2 * 1_073_741_824


def test_kv_cache_sliding_window():
    # Mistral-7B: window 4096 on every layer -> 32k context costs as much as 4096 tokens.
    # 2 * 32 * 8 * 128 * 4096 * 2 B = 512 MiB
    spec = load_model_spec("mistral-7b")
    assert kv_cache_bytes(spec, 32768) == kv_cache_bytes(spec, 4096) == 512 * 2**20
    # Gemma-2-9B: 21 of 42 layers use a 4096 window; at 8192 tokens:
    # 2 * 8 kv * 256 hd * 2 B = 8192 B per token-layer; (21 * 4096 + 21 * 8192) * 8192 B
    gemma = load_model_spec("gemma-2-9b")
    assert kv_cache_bytes(gemma, 8192) == (21 * 4096 + 21 * 8192) * 8192
