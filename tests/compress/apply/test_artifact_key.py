"""The artifact key changes with everything that decides an artifact, the device type included."""

from __future__ import annotations

from compress import apply, variants
from compress.sources import Source


def test_device_type_is_part_of_the_key(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    source = Source("hf", tmp_path, "tiny")
    nf4, options = variants.parse("nf4"), apply.Options()
    cpu = apply.artifact_key(source, nf4, options, "cpu")
    # bitsandbytes computes in float32 on the CPU and float16 on CUDA by default: not the same artifact.
    assert apply.artifact_key(source, nf4, options, "cuda") != cpu
    assert apply.artifact_key(source, nf4, options, "cuda:1") == apply.artifact_key(source, nf4, options, "cuda")
    assert apply.artifact_key(source, variants.parse("nf4-nodq"), options, "cpu") != cpu
    assert apply.artifact_key(source, nf4, apply.Options(seed=1), "cpu") != cpu


def test_a_gguf_source_key_follows_its_dequantized_copy(tmp_path, monkeypatch):
    from compress import loading

    path = tmp_path / "m.gguf"
    path.write_bytes(b"GGUF")
    source, q8, options = Source("gguf", path, "m"), variants.parse("q8_0"), apply.Options()
    before = apply.artifact_key(source, q8, options, "cpu")
    monkeypatch.setattr(loading, "DEQUANTIZED_VERSION", loading.DEQUANTIZED_VERSION + 1)
    assert apply.artifact_key(source, q8, options, "cpu") != before
