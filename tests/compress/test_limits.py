"""Every size read from a config.json or a GGUF header is bounded; plan, apply and bench say so in one line."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from compress import limits, sources
from compress.errors import UserInputError
from compress.planner.spec import load_model_spec
from tests.compress.test_sources import LLAMA, model_folder

ROOT = Path(__file__).resolve().parents[2]

BAD_CONFIGS = {
    "huge layers": ({**LLAMA, "num_hidden_layers": 10**9}, "num_hidden_layers must be a whole number from 1 to 1,000"),
    "negative layers": ({**LLAMA, "num_hidden_layers": -3}, "num_hidden_layers"),
    "zero heads": ({**LLAMA, "num_attention_heads": 0}, "num_attention_heads"),
    "text width": ({**LLAMA, "hidden_size": "wide"}, "hidden_size must be a whole number"),
    "fractional width": ({**LLAMA, "hidden_size": 255.5}, "hidden_size"),
    "bool vocab": ({**LLAMA, "vocab_size": True}, "vocab_size"),
    "huge vocab": ({**LLAMA, "vocab_size": 10**12}, "vocab_size"),
    "huge context": ({**LLAMA, "max_position_embeddings": 10**10}, "max_position_embeddings"),
    "huge experts": ({**LLAMA, "num_local_experts": 10**7}, "num_local_experts"),
    "nested text_config": ({"model_type": "llama", "text_config": {**LLAMA, "intermediate_size": 0}}, "intermediate_size"),
    "kv heads not dividing": ({**LLAMA, "num_key_value_heads": 3}, r"num_attention_heads \(4\) must be a multiple of num_key_value_heads \(3\)"),
    "not an object": ([1, 2, 3], "expected an object"),
    "architectures not a list": ({**LLAMA, "architectures": {"a": 1}}, "architectures must be a list"),
}


@pytest.mark.parametrize("name", BAD_CONFIGS)
def test_the_planner_refuses_a_bad_config_in_one_line(tmp_path, name):
    config, message = BAD_CONFIGS[name]
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserInputError, match=message) as err:
        load_model_spec(str(tmp_path))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("name", [n for n in BAD_CONFIGS if n != "architectures not a list"])
def test_apply_and_bench_refuse_the_same_configs(tmp_path, name):
    config, message = BAD_CONFIGS[name]
    folder = model_folder(tmp_path / "m", {} if not isinstance(config, dict) else config)
    (folder / "config.json").write_text(config if isinstance(config, str) else json.dumps(config))
    with pytest.raises(UserInputError, match=message if name != "not an object" else "holds a JSON list"):
        sources.resolve(str(folder))


@pytest.mark.parametrize(("text", "message"), [
    ("[" * 100_000 + "]" * 100_000, "nests deeper than 64 levels"),
    ('{"model_type": ' + "[" * 100_000, "nests deeper than 64 levels"),
    (json.dumps({k: v for k, v in LLAMA.items() if k != "model_type"}), "model_type is missing: expected the name"),
    (json.dumps({**LLAMA, "model_type": 7}), "model_type is 7: expected the name"),
])
def test_a_config_nested_too_deep_or_without_model_type_is_one_line(tmp_path, text, message):
    folder = model_folder(tmp_path / "m", LLAMA)
    (folder / "config.json").write_text(text)
    with pytest.raises(UserInputError, match=message) as err:
        sources.resolve(str(folder))
    assert "\n" not in str(err.value)
    if "deeper" in message:
        with pytest.raises(UserInputError, match=message):
            load_model_spec(str(folder))


def test_sane_values_pass_and_nulls_mean_absent():
    limits.check_config({**LLAMA, "num_key_value_heads": None, "head_dim": None, "sliding_window": None}, "c")
    limits.check_config({**LLAMA, "hidden_size": 16384, "vocab_size": 262_144, "num_local_experts": 384}, "c")


def write_gguf(path: Path, block_count: int, embedding_length: int | str = 64) -> Path:
    import numpy as np
    from gguf import GGUFWriter

    writer = GGUFWriter(str(path), "llama")
    writer.add_block_count(block_count)
    if isinstance(embedding_length, str):
        writer.add_string("llama.embedding_length", embedding_length)
    else:
        writer.add_embedding_length(embedding_length)
    writer.add_feed_forward_length(128)
    writer.add_head_count(4)
    writer.add_head_count_kv(2)
    writer.add_context_length(256)
    writer.add_tensor("token_embd.weight", np.zeros((32, 64), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_a_gguf_header_with_a_huge_layer_count_is_refused(tmp_path):
    path = write_gguf(tmp_path / "huge.gguf", 10**9)
    with pytest.raises(UserInputError, match="block_count must be a whole number from 1 to 1,000"):
        sources.resolve(str(path))
    with pytest.raises(UserInputError, match="layers must be a whole number from 1 to 1,000"):
        load_model_spec(str(path))
    assert load_model_spec(str(write_gguf(tmp_path / "ok.gguf", 2))).layers == 2


def _plan(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), "plan", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)


def test_plan_cli_gives_one_line_for_a_huge_config_and_too_many_gpus(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({**LLAMA, "num_hidden_layers": 10**9}))
    run = _plan("--model", str(tmp_path), "--gpu", "t4")
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and "num_hidden_layers" in run.stderr, run.stderr
    run = _plan("--model", "llama-2-7b", "--gpu", "t4", "--gpus", "100000")
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and "--gpus must be from 1 to 64" in run.stderr, run.stderr


def test_a_gguf_header_with_a_text_width_is_refused(tmp_path):
    path = write_gguf(tmp_path / "text.gguf", 2, embedding_length="wide")
    with pytest.raises(UserInputError, match="embedding_length must be a whole number"):
        sources.resolve(str(path))
    with pytest.raises(UserInputError, match="a size is not a whole number"):
        load_model_spec(str(path))


def test_a_gguf_whose_architecture_is_a_number_is_refused(tmp_path):
    import numpy as np
    from gguf import GGUFValueType, GGUFWriter
    from gguf.gguf_writer import GGUFValue

    path = tmp_path / "arch.gguf"
    writer = GGUFWriter(str(path), "llama")
    writer.kv_data[0]["general.architecture"] = GGUFValue(7, GGUFValueType.UINT32)
    writer.add_tensor("token_embd.weight", np.zeros((32, 64), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    for read in (sources.resolve, load_model_spec):
        with pytest.raises(UserInputError, match="general.architecture is 7: expected the name of an architecture"):
            read(str(path))
