"""Where the suite keeps its files: caches and measurement results.

- caches: ``$COMPRESS_CACHE`` or ``~/.cache/compress``;
- results (``bench.jsonl``, reports): ``$COMPRESS_RESULTS`` or ``results/`` in the working
  directory; ``compress bench`` writes there;
- ``compress probe``'s ``probe.json``: in the cache root (``$COMPRESS_RESULTS`` when set),
  where the planner reads it: a measurement of this machine, not of the source tree.
"""

from __future__ import annotations

import os
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
