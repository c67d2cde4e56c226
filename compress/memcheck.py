"""Room checks before a large allocation: a model built or loaded in memory, a checkpoint written to disk.

Without them, a model far larger than the machine is allocated until the kernel's OOM
killer ends the process (no message, exit 137) or the disk fills mid-write. With them,
the command says in one line how much it needs and how much there is, before it starts.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from compress.errors import UnsupportedError

GIB = 2**30


def available_memory_bytes(meminfo: Path = Path("/proc/meminfo"),
                           cgroup: Path = Path("/sys/fs/cgroup")) -> int | None:
    """Memory this process may still take: the kernel's ``MemAvailable`` (proc(5)), lowered to
    what the cgroup v2 limit leaves (``memory.max`` - ``memory.current``) in a container;
    None where neither can be read."""
    found = []
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit = (cgroup / "memory.max").read_text().strip()
        if limit != "max":
            found.append(int(limit) - int((cgroup / "memory.current").read_text().strip()))
    except (OSError, ValueError):
        pass
    return max(min(found), 0) if found else None


def check_memory(needed_bytes: int, what: str, available_bytes: int | None = None) -> None:
    """Refuse ``what`` when it needs more memory than is available, in one line with both figures."""
    available = available_memory_bytes() if available_bytes is None else available_bytes
    if available is not None and needed_bytes > available:
        raise UnsupportedError(f"{what}: needs {needed_bytes / GIB:,.1f} GiB of memory, but {available / GIB:,.1f} GiB "
                               "is available: expected a model that fits; free memory, or pick a smaller model or "
                               "dtype")


def check_disk(needed_bytes: int, folder: Path, what: str) -> None:
    """Refuse ``what`` when the file system of ``folder`` (or its nearest existing parent) has less free room."""
    where = Path(os.path.abspath(folder))
    while not where.exists() and where != where.parent:
        where = where.parent
    try:
        free = shutil.disk_usage(where).free
    except OSError:
        return
    if needed_bytes > free:
        raise UnsupportedError(f"{what}: needs {needed_bytes / GIB:,.1f} GiB of disk in {where}, but "
                               f"{free / GIB:,.1f} GiB is free: free space or set COMPRESS_CACHE to a larger disk")
