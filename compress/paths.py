"""Where the suite keeps its files: caches and measurement results.

- caches: ``$COMPRESS_CACHE`` or ``~/.cache/compress``;
- results (``bench.jsonl``, reports): ``$COMPRESS_RESULTS`` or ``results/`` in the working
  directory; ``compress bench`` writes there, and the views (plan, pareto, report, review) read
  every ``*.jsonl`` there unless given ``--results`` (:func:`results_inputs`);
- ``compress probe``'s ``probe.json``: in the cache root (``$COMPRESS_RESULTS`` when set),
  where the planner reads it: a measurement of this machine, not of the source tree.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    """A folder under the cache root, created on first use."""
    root = Path(os.environ.get("COMPRESS_CACHE") or Path.home() / ".cache" / "compress")
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def results_dir() -> Path:
    """The results folder: ``$COMPRESS_RESULTS`` or ``results`` (relative to the working directory)."""
    return Path(os.environ.get("COMPRESS_RESULTS") or "results")


def probe_file() -> Path:
    """``probe.json``: ``$COMPRESS_RESULTS/probe.json`` if set, else in the cache root (not created here)."""
    env = os.environ.get("COMPRESS_RESULTS")
    if env:
        return Path(env) / "probe.json"
    return Path(os.environ.get("COMPRESS_CACHE") or Path.home() / ".cache" / "compress") / "probe.json"


def results_file(name: str = "bench.jsonl") -> Path:
    """A file in :func:`results_dir`, e.g. the default ``results/bench.jsonl``."""
    return results_dir() / name


def results_inputs(given: Sequence[Path | str] | None = None) -> list[Path]:
    """The results files and folders a view reads: each ``--results`` (repeatable, each a file,
    a folder of ``*.jsonl`` or a comma list of those), else ``$COMPRESS_RESULTS``, else
    ``results/`` of the working directory.

    Raises one line naming every place tried when none of them exists.
    """
    from compress.errors import UserInputError

    named = [Path(part.strip()).expanduser() for text in given or () for part in str(text).split(",") if part.strip()]
    if named:
        missing = [str(p) for p in named if not p.exists()]
        if missing:
            raise UserInputError(f"no results at {', '.join(missing)}: expected a bench JSON Lines file or a folder "
                                 "of them; run `compress bench` first, or check the --results path")
        return named
    env = os.environ.get("COMPRESS_RESULTS")
    place = Path(env).expanduser() if env else Path("results")
    if not place.exists() or (place.is_dir() and not any(place.glob("*.jsonl"))):
        tried = (f"--results (not given), $COMPRESS_RESULTS={env}" if env else
                 f"--results (not given), $COMPRESS_RESULTS (not set), {Path.cwd() / 'results'}")
        raise UserInputError(f"no bench records found: tried {tried}; run `compress bench` first, or pass "
                             "--results FILE (repeatable) or set COMPRESS_RESULTS")
    return [place]


#: Where ``compress apply`` writes a variant unless ``--out-dir`` says otherwise.
ARTIFACTS_DIR = "artifacts"


def safe_name(name: str, fill: str = "-", keep: str = "._+-") -> str:
    """``name`` with every run of characters other than letters, digits and ``keep`` made
    ``fill``: a model name may come from a folder or a Hub id."""
    safe = re.sub(f"[^A-Za-z0-9{re.escape(keep)}]+", fill, name).strip(fill)
    return safe or "model"


def artifact_dir(source_name: str, variant: str) -> Path:
    """The folder ``compress apply`` writes a variant of the model ``source_name`` to by default."""
    return Path(ARTIFACTS_DIR) / f"{safe_name(source_name)}-{variant.replace(':', '_').replace('+', '_')}"


def gguf_file_name(source_name: str, qtype: str) -> str:
    """The name ``compress apply`` gives a GGUF file inside its folder: ``<model>.<TYPE>.gguf``."""
    return f"{safe_name(source_name)}.{qtype.upper()}.gguf"
