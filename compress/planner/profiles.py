"""Where the data files live and how they are read.

Every hardware, format, runtime and quality number the planner uses is in ``profiles/``
(TOML, read with the standard library). ``COMPRESS_PROFILES`` points at another folder;
``COMPRESS_RESULTS`` at another results folder (for ``probe.json``).
"""

from __future__ import annotations

import os
import re
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any

from compress.errors import UserInputError


def profiles_dir() -> Path:
    """The profiles folder: ``$COMPRESS_PROFILES`` or ``<repo>/profiles``."""
    return _profiles_dir(os.environ.get("COMPRESS_PROFILES"))


@lru_cache(maxsize=8)
def _profiles_dir(env: str | None) -> Path:
    return Path(env) if env else Path(__file__).resolve().parents[2] / "profiles"


def results_dir() -> Path:
    """The results folder, where ``compress probe`` writes ``probe.json``."""
    env = os.environ.get("COMPRESS_RESULTS")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "results"


@lru_cache(maxsize=None)
def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise UserInputError(f"missing profile file {path}; set COMPRESS_PROFILES to the profiles folder") from None
    except tomllib.TOMLDecodeError as err:
        raise UserInputError(f"profile file {path} is not valid TOML: {err}") from None


def load(name: str) -> dict[str, Any]:
    """One profile file by its path relative to the profiles folder, e.g. ``formats.toml``.

    Files are read once per process (the planner asks for the same tables many times).
    """
    return _load(profiles_dir(), name)


@lru_cache(maxsize=None)
def _load(folder: Path, name: str) -> dict[str, Any]:
    return _read(folder / name)


def load_folder(name: str) -> list[tuple[Path, dict[str, Any]]]:
    """Every ``*.toml`` in a profiles sub-folder, sorted by file name."""
    return _load_folder(profiles_dir(), name)


@lru_cache(maxsize=None)
def _load_folder(folder: Path, name: str) -> list[tuple[Path, dict[str, Any]]]:
    return [(p, _read(p)) for p in sorted((folder / name).glob("*.toml"))]


def profile_citations(name: str) -> dict[str, str]:
    """The sources a profile file cites in its header comments, ``# [tag] citation``, by tag.

    Each number in the file names its tag in a trailing comment (``# [ds]``); this gives the
    citations themselves, for ``compress gpus --format json``. Empty where the file is absent.
    """
    return _citations(profiles_dir() / name)


@lru_cache(maxsize=None)
def _citations(path: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        m = re.match(r"#\s*\[([^\]]+)\]\s*(.+)", line.strip())
        if m:
            found.setdefault(m.group(1), m.group(2).strip())
    return found
