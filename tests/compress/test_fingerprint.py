"""Source fingerprints change with any byte of any file, and a cached digest is reused only for the same file version."""

import os
from pathlib import Path

import pytest

from compress import fingerprint
from compress.sources import Source


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPRESS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(fingerprint, "RACY_NS", 0)  # files written by the test count as settled at once
    return tmp_path / "cache" / "fingerprints"


def _weights(folder: Path, size: int = 3 << 20) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text('{"model_type": "llama"}')
    file = folder / "model.safetensors"
    file.write_bytes(bytes(range(256)) * (size // 256))
    return file


def _flip_middle_byte(file: Path) -> None:
    """Change one byte in the middle of the file, keeping its size (what a partial-read hash misses)."""
    with open(file, "r+b") as f:
        f.seek(file.stat().st_size // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))


def test_a_byte_changed_in_the_middle_changes_the_fingerprint(tmp_path, cache):
    folder = tmp_path / "model"
    file = _weights(folder)
    source = Source("hf", folder, "m")
    before = source.fingerprint()
    assert source.fingerprint() == before  # stable
    _flip_middle_byte(file)
    assert source.fingerprint() != before


def test_a_change_with_the_mtime_set_back_still_rehashes(tmp_path, cache):
    file = _weights(tmp_path / "model")
    first = fingerprint.file_digest(file)
    st = file.stat()
    _flip_middle_byte(file)
    os.utime(file, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size, same mtime, same inode: ctime still moved
    assert fingerprint.file_digest(file) == fingerprint.hash_file(file) != first


def test_the_digest_of_an_unchanged_file_comes_from_the_cache(tmp_path, cache, monkeypatch):
    file = _weights(tmp_path / "model")
    digest = fingerprint.file_digest(file)
    assert digest == fingerprint.hash_file(file) and len(list(cache.glob("*.json"))) == 1
    reads = []
    monkeypatch.setattr(fingerprint, "hash_file", lambda path: reads.append(path) or "0" * 64)
    assert fingerprint.file_digest(file) == digest and reads == []


def test_a_file_changed_just_now_is_not_cached(tmp_path, cache, monkeypatch):
    monkeypatch.setattr(fingerprint, "RACY_NS", 60_000_000_000)
    file = _weights(tmp_path / "model")
    fingerprint.file_digest(file)
    assert not cache.exists() or not list(cache.glob("*.json"))


def test_a_corrupt_cache_entry_is_recomputed(tmp_path, cache):
    file = _weights(tmp_path / "model")
    digest = fingerprint.file_digest(file)
    entry = next(cache.glob("*.json"))
    entry.write_text("not json")
    assert fingerprint.file_digest(file) == digest


def test_bench_builds_a_new_artifact_after_a_byte_changes(tmp_path, cache):
    """The artifact key (bench's reuse and --resume key) follows the fingerprint."""
    from compress import apply, variants

    folder = tmp_path / "model"
    file = _weights(folder)
    variant, options = variants.parse("fp16"), apply.Options()
    before = apply.artifact_key(Source("hf", folder, "m"), variant, options, "cpu")
    _flip_middle_byte(file)
    assert apply.artifact_key(Source("hf", folder, "m"), variant, options, "cpu") != before
