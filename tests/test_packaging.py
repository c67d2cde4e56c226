"""The wheel carries every package and the profiles data (scripts/check-wheel.sh installs it
and plans from another folder; this checks the listing it depends on, in milliseconds)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _setuptools() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_and_profiles_folder_is_listed():
    listed = set(_setuptools()["packages"])
    packages = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "compress").rglob("__init__.py")}
    assert packages <= listed, f"add {sorted(packages - listed)} to [tool.setuptools] packages in pyproject.toml"
    folders = {"compress.profiles", *(f"compress.profiles.{p.name}" for p in (ROOT / "profiles").iterdir() if p.is_dir())}
    assert folders <= listed
    data = _setuptools()["package-data"]
    assert all(data.get(name) == ["*.toml"] for name in folders)
    assert _setuptools()["package-dir"] == {"compress.profiles": "profiles"}


def test_checkout_reads_its_own_profiles(monkeypatch):
    from compress.planner import profiles

    monkeypatch.delenv("COMPRESS_PROFILES", raising=False)
    assert profiles.profiles_dir() == ROOT / "profiles"
