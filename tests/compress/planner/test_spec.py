"""Model specs: catalog, parameter arithmetic, config.json and GGUF inputs."""

import json

import numpy as np
import pytest

from compress.errors import UserInputError
from compress.planner import spec as specs
from compress.model.spec import param_count
from compress.planner.spec import load_model_spec

REQUIRED = ["llama-2-7b", "llama-2-13b", "llama-2-70b", "llama-3-8b", "llama-3-70b", "llama-3.1-8b",
            "llama-3.1-70b", "llama-3.1-405b", "llama-3.2-1b", "llama-3.2-3b", "mistral-7b", "mixtral-8x7b",
            "qwen2.5-0.5b", "qwen2.5-1.5b", "qwen2.5-3b", "qwen2.5-7b", "qwen2.5-14b", "qwen2.5-32b",
            "qwen2.5-72b", "gemma-2-2b", "gemma-2-9b", "gemma-2-27b", "phi-3-mini", "phi-3-medium",
            "smollm2-135m", "smollm2-360m", "smollm2-1.7b"]


def test_catalog_has_the_required_models():
    assert set(REQUIRED) <= set(specs.catalog())
    assert len(specs.catalog()) >= 20


@pytest.mark.parametrize("name", REQUIRED)
def test_param_count_from_architecture_matches_published(name):
    # Published counts: the Hugging Face model card page of each model (params_source).
    s = load_model_spec(name)
    assert s.params_published and s.params_source.startswith("https://huggingface.co/")
    assert abs(s.params / s.params_published - 1) < 0.02


def test_param_count_by_hand_llama_2_7b():
    # embed 32000*4096 + lm_head 32000*4096 + 32 * (4*4096*4096 + 3*4096*11008 + 2*4096) + 4096
    s = load_model_spec("llama-2-7b")
    assert param_count(s) == 2 * 32000 * 4096 + 32 * (4 * 4096 * 4096 + 3 * 4096 * 11008 + 2 * 4096) + 4096


def test_moe_active_params():
    s = load_model_spec("mixtral-8x7b")
    assert 12.8e9 < s.active_params < 13.0e9  # "12.9B active" (Mixtral model card)


def test_aliases_and_hf_ids_resolve():
    assert load_model_spec("Llama2-7B").name == "llama-2-7b"
    assert load_model_spec("meta-llama/Llama-3.1-8B").name == "llama-3.1-8b"


def test_unknown_model_suggests_close_names():
    with pytest.raises(UserInputError, match="did you mean 'llama-2-7b'"):
        load_model_spec("lama-2-7b")


def test_spec_round_trips_through_dict():
    s = load_model_spec("gemma-2-9b")
    assert specs.ModelSpec.from_dict(s.to_dict()) == s


def test_local_config_json(tmp_path):
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 576,
              "num_attention_heads": 9, "num_key_value_heads": 3, "num_hidden_layers": 30,
              "intermediate_size": 1536, "vocab_size": 49152, "tie_word_embeddings": True,
              "max_position_embeddings": 8192}
    (tmp_path / "config.json").write_text(json.dumps(config))
    s = load_model_spec(str(tmp_path))
    assert s.origin == "config.json" and s.head_dim == 64
    assert s.params == load_model_spec("smollm2-135m").params


def test_local_gguf_metadata(tmp_path):
    gguf = pytest.importorskip("gguf")
    path = tmp_path / "tiny.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny")
    writer.add_block_count(2)
    writer.add_embedding_length(256)
    writer.add_feed_forward_length(512)
    writer.add_head_count(4)
    writer.add_head_count_kv(2)
    writer.add_context_length(2048)
    writer.add_tensor("token_embd.weight", np.zeros((100, 256), dtype=np.float32))
    for i in range(2):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", np.zeros(256, dtype=np.float32))
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", np.zeros(256, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    s = load_model_spec(str(path))
    assert (s.layers, s.hidden, s.heads, s.kv_heads, s.head_dim, s.intermediate, s.vocab) == (2, 256, 4, 2, 64, 512, 100)
    assert s.tied_embeddings and s.max_context == 2048 and s.origin == "gguf"


def test_missing_gguf_is_a_clear_error(tmp_path):
    with pytest.raises(UserInputError, match="no such GGUF file"):
        load_model_spec(str(tmp_path / "none.gguf"))
