"""Output places are checked before any work; --force replaces only what compress wrote; stale
temporary folders of a killed run are cleaned, never a running one's."""

import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from compress import fsutil
from compress.errors import UserInputError
from tests.compress.test_sources import LLAMA, model_folder

ROOT = Path(__file__).resolve().parents[2]


def test_force_replaces_only_a_compress_artifact(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(UserInputError, match="holds files but no manifest.json: --force only replaces"):
        fsutil.check_output_dir(out, force=True)
    (out / "manifest.json").write_text("{}")
    fsutil.check_output_dir(out, force=True)


def test_the_current_folder_its_parents_and_the_source_are_refused(tmp_path, monkeypatch):
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    for out in (Path("."), Path(".."), tmp_path):
        with pytest.raises(UserInputError, match="is the current folder or holds it"):
            fsutil.check_output_dir(out, force=True)
    source = tmp_path / "model"
    source.mkdir()
    with pytest.raises(UserInputError, match="is the source model or holds it"):
        fsutil.check_output_dir(source, force=True, source=source)


def test_a_file_where_a_folder_is_expected_and_the_reverse(tmp_path):
    file = tmp_path / "f"
    file.write_text("x")
    with pytest.raises(UserInputError, match="exists and is a file"):
        fsutil.check_output_dir(file, force=True)
    with pytest.raises(UserInputError, match="is a folder: expected a file path"):
        fsutil.check_output_file(tmp_path)
    with pytest.raises(UserInputError, match="is a file, not a folder"):
        fsutil.check_output_file(file / "sub" / "report.html")
    with pytest.raises(UserInputError, match="is a file: expected a folder"):
        fsutil.check_output_folder(file)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_an_unwritable_parent_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(UserInputError, match="permission denied"):
        fsutil.check_output_file(locked / "r.jsonl")


def _old(path: Path) -> Path:
    path.mkdir()
    past = time.time() - 3600
    os.utime(path, (past, past))
    return path


def test_stale_partials_are_removed_but_not_others(tmp_path):
    stale = _old(tmp_path / ".out.abc123.partial")
    other_name = _old(tmp_path / ".other.abc123.partial")
    not_ours = _old(tmp_path / "out.partial")
    fresh = tmp_path / ".out.new.partial"
    fresh.mkdir()  # made after this process started: possibly another run's
    held = _old(tmp_path / ".out.held.partial")
    fd = os.open(held, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_EX)  # a running compress process holds its folder so
    try:
        assert fsutil.remove_stale_partials(tmp_path, "out") == [stale]
    finally:
        os.close(fd)
    assert other_name.exists() and not_ours.exists() and fresh.exists() and held.exists()
    assert set(fsutil.remove_stale_partials(tmp_path)) == {other_name, held}


def _cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})


def _one_line(run: subprocess.CompletedProcess, text: str) -> None:
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr and run.stderr.count("error:") == 1 and text in run.stderr, run.stderr


def test_commands_refuse_bad_output_places_before_working(tmp_path):
    source = model_folder(tmp_path / "m", LLAMA)
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "keep.txt").write_text("mine")
    folder = tmp_path / "a-folder"
    folder.mkdir()
    _one_line(_cli("apply", "--model", str(source), "--method", "fp32", "--out", str(keep), "--force"),
              "no manifest.json")
    assert (keep / "keep.txt").read_text() == "mine"
    _one_line(_cli("apply", "--model", str(source), "--method", "fp32", "--out", ".", "--force", cwd=tmp_path),
              "is the current folder")
    _one_line(_cli("apply", "--model", str(source), "--method", "fp32", "--out", str(source), "--force"),
              "is the source model")
    _one_line(_cli("bench", "--model", str(source), "--methods", "fp32", "--results", str(folder)),
              "--results")
    _one_line(_cli("report", "--results", str(folder / "x.jsonl"), "--out", str(folder)), "is a folder")
    _one_line(_cli("review", "--model", "llama-2-7b", "--gpu", "t4", "--out", str(folder)), "is a folder")
    _one_line(_cli("plan", "--model", "llama-2-7b", "--gpu", "t4", "-o", str(folder)), "is a folder")
    _one_line(_cli("probe", "--out", str(folder)), "is a folder")
