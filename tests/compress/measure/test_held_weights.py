"""The weight bytes a decode step reads, as the transformers runtime holds them."""

from __future__ import annotations

from compress.measure.runtimes import open_runtime


def test_a_16_bit_checkpoint_is_held_and_read_as_float32_on_the_cpu(tiny_llama, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    half = tmp_path / "fp16"
    AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float16).save_pretrained(half)
    for tokenizer_file in tiny_llama.glob("tokenizer*"):
        (half / tokenizer_file.name).write_bytes(tokenizer_file.read_bytes())
    stored = sum(p.stat().st_size for p in half.glob("*.safetensors"))
    runtime = open_runtime(half, {"runtime": "transformers"}, "cpu", threads=1, n_ctx=64)
    try:
        params = sum(p.numel() for p in runtime.model.parameters())
        assert runtime.held_weight_bytes() >= 4 * params
        assert runtime.held_weight_bytes() > 1.9 * stored  # float32 in memory, half of that on disk
    finally:
        runtime.close()
