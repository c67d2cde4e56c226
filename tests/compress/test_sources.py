"""A model folder is checked before anything loads it: no custom code, no pickles, no nonsense sizes."""

import json
import struct
from pathlib import Path

import pytest

from compress import sources
from compress.errors import UserInputError

LLAMA = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 256, "intermediate_size": 512,
         "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 512,
         "max_position_embeddings": 1024}


def write_safetensors(file: Path) -> None:
    """A valid one-tensor safetensors file (8-byte header length, JSON header, data)."""
    header = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    file.write_bytes(struct.pack("<Q", len(header)) + header + b"\0\0\0\0")


def model_folder(root: Path, config: dict, weights: str = "model.safetensors") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps(config))
    if weights.endswith(".safetensors"):
        write_safetensors(root / weights)
    else:
        (root / weights).write_bytes(b"\x80\x04pickle")
    return root


def test_a_plain_llama_folder_resolves(tmp_path):
    source = sources.resolve(str(model_folder(tmp_path / "m", LLAMA)))
    assert source.kind == "hf"


@pytest.mark.parametrize("config", [
    {**LLAMA, "auto_map": {"AutoModelForCausalLM": "modeling_x.X"}},
    {**LLAMA, "model_type": "not-a-transformers-model"},
])
def test_a_folder_asking_for_its_own_code_is_refused(tmp_path, config):
    folder = model_folder(tmp_path / "m", config)
    with pytest.raises(UserInputError, match="asks to run custom code.*--trust-remote-code") as err:
        sources.resolve(str(folder))
    assert "\n" not in str(err.value)
    assert sources.resolve(str(folder), trust_remote_code=True).path == folder.resolve()


def test_a_tokenizer_config_with_auto_map_is_refused(tmp_path):
    folder = model_folder(tmp_path / "m", LLAMA)
    (folder / "tokenizer_config.json").write_text(json.dumps({"auto_map": {"AutoTokenizer": ["tok.T", None]}}))
    with pytest.raises(UserInputError, match="tokenizer_config.json has an auto_map"):
        sources.resolve(str(folder))


def test_pickle_only_weights_are_refused(tmp_path):
    folder = model_folder(tmp_path / "m", LLAMA, weights="pytorch_model.bin")
    with pytest.raises(UserInputError, match=r"only pickle weights \(pytorch_model.bin\).*expected .safetensors"):
        sources.resolve(str(folder))


def test_a_config_that_is_not_an_object_is_refused(tmp_path):
    folder = model_folder(tmp_path / "m", LLAMA)
    (folder / "config.json").write_text("[1, 2]")
    with pytest.raises(UserInputError, match="holds a JSON list: expected an object"):
        sources.resolve(str(folder))
