"""Content digests of model files, computed once and cached.

A source's fingerprint decides whether bench reuses an artifact and whether
``--resume`` skips a test, so it must change when any byte of a weight file
changes. Hashing a 7B checkpoint whole takes tens of seconds, so the digest of a
file is cached under ``$COMPRESS_CACHE/fingerprints``, keyed by the file's
resolved path, size, modification and change times (ns), device and inode: a
rewrite, an in-place edit (which moves mtime and ctime), a replacement by rename
(a new inode), even an edit whose mtime was set back (ctime still moves) all
miss the cache and rehash. A file changed in the last few seconds is hashed but
not cached: file times tick at the kernel's clock resolution (milliseconds), so
two writes that close together could share a time stamp.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from pathlib import Path

#: Files at most this large are hashed on every call; caching them would cost more than it saves.
CACHE_MIN_BYTES = 1 << 20
_CHUNK_BYTES = 8 << 20
#: A file modified more recently than this is not cached (its time stamp may not yet tell versions apart).
RACY_NS = 2_000_000_000


def hash_file(path: Path) -> str:
    """The SHA-256 of the whole file, read in 8 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def cache_key(path: Path) -> str:
    """The identity of one version of a file: resolved path, size, mtime and ctime in ns, device, inode."""
    st = os.stat(path)
    ident = f"{Path(path).resolve()}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\0{st.st_dev}\0{st.st_ino}"
    return hashlib.sha256(ident.encode()).hexdigest()[:32]


def _settled(path: Path) -> bool:
    """Whether the file has not changed for :data:`RACY_NS`, so its time stamps identify this version."""
    st = os.stat(path)
    return time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) > RACY_NS


def _entry(key: str) -> Path:
    from compress.paths import cache_dir

    return cache_dir("fingerprints") / f"{key}.json"


def cached_digest(path: Path) -> str | None:
    """SHA-256 of ``path`` if it costs no read through a large file: a small file is hashed,
    a large one answered from the cache, or None where this version was never hashed."""
    path = Path(path)
    if path.stat().st_size < CACHE_MIN_BYTES:
        return hash_file(path)
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        cached = json.loads(_entry(cache_key(path)).read_text())["sha256"]
        if isinstance(cached, str) and len(cached) == 64:
            return cached
    return None


def file_digest(path: Path) -> str:
    """SHA-256 of ``path``, from the cache when this exact version of the file was hashed before."""
    path = Path(path)
    if (known := cached_digest(path)) is not None:
        return known
    key = cache_key(path)  # a large file not hashed before: the version about to be read
    digest = hash_file(path)
    if cache_key(path) == key and _settled(path):  # unchanged while we read it: safe to remember
        with contextlib.suppress(OSError):
            from compress.fsutil import atomic_write_text

            atomic_write_text(_entry(key), json.dumps({"path": str(path.resolve()), "sha256": digest}))
    return digest
