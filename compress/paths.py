"""Where the suite keeps its caches: ``$COMPRESS_CACHE`` or ``~/.cache/compress``."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    """A folder under the cache root, created on first use."""
    root = Path(os.environ.get("COMPRESS_CACHE") or Path.home() / ".cache" / "compress")
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
