"""Appends are whole or absent; readers skip a damaged line with a warning naming file and line."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from compress import fsutil, results
from compress.errors import RuntimeFailure

ROOT = Path(__file__).resolve().parents[2]


def test_a_short_write_is_cut_back_and_reported(tmp_path, monkeypatch):
    path = tmp_path / "r.jsonl"
    fsutil.append_jsonl(path, {"n": 1})
    before = path.read_bytes()
    real_write = os.write
    monkeypatch.setattr(fsutil.os, "write", lambda fd, data: real_write(fd, data[: len(data) // 2]))
    with pytest.raises(RuntimeFailure, match="wrote .* of .* bytes.*left as it was"):
        fsutil.append_jsonl(path, {"n": 2, "pad": "x" * 400})
    assert path.read_bytes() == before
    monkeypatch.undo()
    fsutil.append_jsonl(path, {"n": 3})
    assert [r["n"] for r in fsutil.read_jsonl(path)] == [1, 3]


def test_a_file_size_limit_leaves_no_torn_record(tmp_path):
    """A real short write: the kernel stops at RLIMIT_FSIZE mid-record (Python ignores SIGXFSZ)."""
    path = tmp_path / "r.jsonl"
    script = (
        "import resource, sys\n"
        "from compress import fsutil\n"
        "from compress.errors import RuntimeFailure\n"
        f"p = {str(path)!r}\n"
        "fsutil.append_jsonl(p, {'n': 1})\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (200, 200))\n"
        "try:\n"
        "    fsutil.append_jsonl(p, {'n': 2, 'pad': 'x' * 483})\n"
        "except RuntimeFailure as err:\n"
        "    print(err)\n"
        "    sys.exit(3)\n"
    )
    run = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert run.returncode == 3, run.stderr
    assert "could not append a record" in run.stdout and "Traceback" not in run.stderr
    assert path.read_text() == json.dumps({"n": 1}) + "\n"


def test_an_append_after_a_torn_line_starts_a_new_line(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_bytes(b'{"n": 1}\n{"n": 2, "tor')
    fsutil.append_jsonl(path, {"n": 3})
    warnings = []
    assert [r["n"] for r in fsutil.read_jsonl(path, warn=warnings.append)] == [1, 3]
    assert warnings == [f"warning: {path}:2: skipped a line that is not valid JSON (Unterminated string starting at)"]


def test_bad_lines_are_skipped_with_one_warning_each(tmp_path, capsys):
    path = tmp_path / "r.jsonl"
    good = results.record(model="m", variant="v", value=1.0)
    path.write_bytes(b"\n".join([json.dumps(good).encode(), b"\xff\xfe not utf-8", b"[1, 2]", b"42", b"{oops", b"",
                                 json.dumps(good).encode()]) + b"\n")
    assert len(results.load(path)) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"warning: {path}:2: skipped a line that is not UTF-8 text",
                   f"warning: {path}:3: skipped a JSON list: expected a record (an object)",
                   f"warning: {path}:4: skipped a JSON int: expected a record (an object)",
                   f"warning: {path}:5: skipped a line that is not valid JSON (Expecting property name enclosed in double quotes)"]


@pytest.fixture(params=[0o022, 0o027, 0o002])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def test_written_files_and_folders_respect_the_umask(tmp_path, umask):
    fsutil.atomic_write_text(tmp_path / "plan.json", "{}")
    fsutil.append_jsonl(tmp_path / "bench.jsonl", {"a": 1})
    with fsutil.atomic_dir(tmp_path / "artifact") as folder:
        (folder / "x").write_text("x")
    assert (tmp_path / "plan.json").stat().st_mode & 0o777 == 0o666 & ~umask
    assert (tmp_path / "bench.jsonl").stat().st_mode & 0o777 == 0o666 & ~umask
    assert (tmp_path / "artifact").stat().st_mode & 0o777 == 0o777 & ~umask
    assert fsutil.current_umask() == umask
