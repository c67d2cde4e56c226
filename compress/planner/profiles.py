"""Where the data files live and how they are read.

Every hardware, format, runtime and quality number the planner uses is in ``profiles/``
(TOML, read with the standard library). In a source checkout that is the top-level
``profiles/`` folder; an installed wheel carries the same files as the package data
``compress.profiles`` (pyproject.toml maps the folder into the wheel), found through
``importlib.resources``. ``COMPRESS_PROFILES`` points at another folder. ``compress
probe``'s ``probe.json`` is found by :func:`compress.paths.probe_file` (the compress cache).
"""

from __future__ import annotations

import importlib.resources
import os
import re
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any

from compress.errors import UserInputError
from compress.paths import probe_file as probe_path
from compress.paths import results_dir

__all__ = ["load", "load_folder", "probe_path", "profiles_dir", "read_file", "results_dir"]


#: The profiles folder of a source checkout, beside the ``compress`` package.
CHECKOUT_PROFILES = Path(__file__).resolve().parents[2] / "profiles"


def profiles_dir() -> Path:
    """The profiles folder: ``$COMPRESS_PROFILES``, the checkout's ``profiles/``, or the
    installed package data ``compress.profiles``."""
    return _profiles_dir(os.environ.get("COMPRESS_PROFILES"))


@lru_cache(maxsize=8)
def _profiles_dir(env: str | None) -> Path:
    if env:
        return Path(env)
    # The checkout comes first: with an editable install of another checkout in the same
    # environment, the import system could resolve compress.profiles to that one's data.
    if (CHECKOUT_PROFILES / "formats.toml").is_file():
        return CHECKOUT_PROFILES
    # The package data has no __init__.py (a data folder), so it is found through its parent
    # package; a wheel installs into a folder, so it is a real directory.
    data = Path(str(importlib.resources.files("compress") / "profiles"))
    if not (data / "formats.toml").is_file():
        raise UserInputError(f"no profiles: neither {CHECKOUT_PROFILES} nor the package data {data} exists; "
                             "reinstall compress or set COMPRESS_PROFILES to the profiles folder")
    return data


@lru_cache(maxsize=None)
def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise UserInputError(f"missing profile file {path}; set COMPRESS_PROFILES to the profiles folder") from None
    except tomllib.TOMLDecodeError as err:
        raise UserInputError(f"profile file {path} is not valid TOML: {err}") from None


def read_file(path: Path) -> dict[str, Any]:
    """Any TOML file (a user's GPU profile), read once per process like the profiles."""
    return _read(Path(path).resolve())


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
    tag = None
    for line in lines:
        m = re.match(r"#\s*\[([^\]]+)\]\s*(.+)", line.strip())
        if m:
            tag = m.group(1) if m.group(1) not in found else None
            if tag:
                found[tag] = m.group(2).strip()
        elif tag and re.match(r"#\s{2,}\S", line):  # an indented comment line continues the citation
            found[tag] += " " + line.lstrip("#").strip()
        else:
            tag = None
    return found
