"""One architecture table feeds the planner's specs, the methods' layouts, the random-weight
builder and the GGUF writer."""

from __future__ import annotations

import pytest

from compress import arch, gguf_writer, synthetic
from compress.errors import UnsupportedError
from compress.planner.spec import spec_from_config


def _config(model_type: str, hf_class: str, **extra):
    return {"architectures": [hf_class], "model_type": model_type, "hidden_size": 256, "num_attention_heads": 4,
            "num_hidden_layers": 4, "intermediate_size": 512, "vocab_size": 512, **extra}


def test_names_are_unique():
    for key in ("name", "model_type", "hf_class"):
        values = [getattr(a, key) for a in arch.TABLE]
        assert len(values) == len(set(values)), key


def test_planner_specs_read_the_table():
    gemma2 = spec_from_config(_config("gemma2", "Gemma2ForCausalLM", sliding_window=64), name="g", origin="test")
    assert (gemma2.architecture, gemma2.norms_per_layer, gemma2.sliding_window_layers) == ("gemma2", 4, 2)
    qwen2 = spec_from_config(_config("qwen2", "Qwen2ForCausalLM"), name="q", origin="test")
    assert qwen2.qkv_bias and qwen2.architecture == "qwen2"
    assert not spec_from_config(_config("qwen2", "Qwen2ForCausalLM", attention_bias=False), name="q",
                                origin="test").qkv_bias
    gemma3 = spec_from_config(_config("gemma3_text", "Gemma3ForCausalLM"), name="g3", origin="test")
    assert gemma3.architecture == "gemma3"
    unknown = spec_from_config(_config("falcon", "FalconForCausalLM"), name="f", origin="test")
    assert (unknown.architecture, unknown.norms_per_layer, unknown.qkv_bias) == ("falcon", 2, False)


def test_other_tables_are_views_of_the_one_table():
    assert synthetic.CONFIGS == {"llama": "LlamaConfig", "mistral": "MistralConfig", "qwen2": "Qwen2Config"}
    assert {name: graph.name for name, graph in gguf_writer.ARCHITECTURES.items()} == {
        "LlamaForCausalLM": "llama", "MistralForCausalLM": "llama", "Qwen2ForCausalLM": "qwen2"}
    assert arch.lookup("phi3").linears[0] == "self_attn.qkv_proj"
    with pytest.raises(UnsupportedError, match="'mixtral' is not supported .* expected one of gemma, gemma2"):
        arch.lookup("mixtral")
