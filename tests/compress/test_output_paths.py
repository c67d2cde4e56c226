"""Output places are checked before any work; --force replaces only what compress wrote; stale
temporary folders of a killed run are cleaned, never a running one's."""

import fcntl
import json
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


#: The fields every manifest of `compress apply` carries (compress/apply/__init__.py, run).
_MANIFEST = {"schema": "compress.artifact/1", "variant": "q8_0", "steps": [], "format": "gguf",
             "runtime": "llama.cpp", "source": {"kind": "hf"}}


def test_force_replaces_only_a_compress_artifact(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(UserInputError, match="not an artifact written by compress .no manifest.json"):
        fsutil.check_output_dir(out, force=True)
    # A file that only has the name is not enough: the schema and the fields must be ours.
    for manifest in ({}, {"hello": 1}, {**_MANIFEST, "schema": "other/1"}, {**_MANIFEST, "steps": "x"}, [1]):
        (out / "manifest.json").write_text(json.dumps(manifest))
        with pytest.raises(UserInputError, match="--force only replaces those"):
            fsutil.check_output_dir(out, force=True)
    (out / "manifest.json").write_text("{" * 100_000)
    with pytest.raises(UserInputError, match="--force only replaces those"):
        fsutil.check_output_dir(out, force=True)
    (out / "manifest.json").write_text(json.dumps(_MANIFEST))
    fsutil.check_output_dir(out, force=True)


def test_an_output_is_never_an_input_nor_inside_an_input_folder(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    weights = model / "model.safetensors"
    weights.write_bytes(b"weights")
    results = tmp_path / "good.jsonl"
    results.write_text("{}\n")
    link = tmp_path / "link.jsonl"
    os.link(results, link)
    inputs = {"--model": model, "--results": results}
    for out, relation in ((weights, "is inside"), (model / "new.jsonl", "is inside"), (results, "is the input"),
                          (link, "is the input"), (tmp_path / "x" / ".." / "good.jsonl", "is the input")):
        with pytest.raises(UserInputError, match=f"{relation} .*pick another path"):
            fsutil.check_not_input(out, inputs, "--output")
    fsutil.check_not_input(tmp_path / "report.html", inputs, "--output")
    fsutil.check_not_input(tmp_path, inputs, "--artifacts")  # a cache folder above the model: nothing replaced
    with pytest.raises(UserInputError, match="holds the input of --model"):
        fsutil.check_not_input(tmp_path, inputs, "--out-dir", replaced=True)
    with pytest.raises(UserInputError, match="is inside the source model"):
        fsutil.check_output_dir(model / "out", force=False, source=model)
    assert weights.read_bytes() == b"weights" and results.read_text() == "{}\n"


def test_outputs_are_tried_not_guessed_and_the_trial_leaves_nothing(tmp_path):
    # /proc refuses new entries for a reason other than permissions: mkdir and open say ENOENT.
    with pytest.raises(UserInputError, match="--results /proc/r.jsonl: cannot write there"):
        fsutil.check_output_file(Path("/proc/r.jsonl"), "--results")
    with pytest.raises(UserInputError, match="--artifacts /proc/a: cannot write there"):
        fsutil.check_output_folder(Path("/proc/a"), "--artifacts")
    with pytest.raises(UserInputError, match="cannot write there"):
        fsutil.check_output_dir(Path("/proc/a/b"), force=False)
    fsutil.check_output_file(tmp_path / "new" / "deeper" / "r.jsonl")
    fsutil.check_output_folder(tmp_path / "cache" / "artifacts")
    fsutil.check_output_dir(tmp_path / "out" / "model", force=False)
    assert list(tmp_path.iterdir()) == []  # every folder and file the checks made is gone again
    existing = tmp_path / "r.jsonl"
    existing.write_text("kept\n")
    fsutil.check_output_file(existing)
    assert existing.read_text() == "kept\n"
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(UserInputError, match="cannot write there"):  # no reader: refused, never blocked on
        fsutil.check_output_file(tmp_path / "fifo")


def test_an_output_name_must_match_its_format(tmp_path):
    with pytest.raises(UserInputError, match=r"expected a file name ending in .md or .html, got .pdf"):
        fsutil.check_output_file(tmp_path / "x.pdf", "--output", suffixes=(".md", ".html"))
    fsutil.check_output_file(tmp_path / "x.HTML", "--output", suffixes=(".md", ".html"))


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
    with pytest.raises(UserInputError, match="Permission denied"):
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


def test_commands_never_write_over_their_inputs(tmp_path):
    source = model_folder(tmp_path / "m", LLAMA)
    weights = source / "model.safetensors"
    weights_bytes = weights.read_bytes()
    records = tmp_path / "good.jsonl"
    records.write_text('{"schema": "compress.result/1", "model": "m", "variant": "fp32", "test": "ppl"}\n')
    kept = records.read_text()
    _one_line(_cli("bench", "--model", str(source), "--methods", "fp32", "--results", str(weights)),
              f"--results {weights} is inside the input of --model")
    _one_line(_cli("bench", "--model", str(source), "--methods", "fp32", "--artifacts", str(source / "cache")),
              "--artifacts")
    assert not (source / "cache").exists()
    _one_line(_cli("report", "--results", str(records), "-o", str(records)), "expected a file name ending in .html")
    # The same file under a name of the right format, and through a hard link: still refused.
    for named in ("same.md", "same.json", "same.html"):
        os.link(records, tmp_path / named)
    _one_line(_cli("review", "--model", "llama-2-7b", "--gpu", "t4", "--results", str(records), "-o",
                   str(tmp_path / "same.md")), "is the input of --results")
    _one_line(_cli("report", "--results", str(records), "-o", str(tmp_path / "same.html")), "is the input of --results")
    _one_line(_cli("plan", "--model", "llama-2-7b", "--gpu", "t4", "--results", str(records), "-o",
                   str(tmp_path / "same.json")), "is the input of --results")
    _one_line(_cli("review", "--model", "llama-2-7b", "--gpu", "t4", "-o", str(tmp_path / "x.pdf")),
              "expected a file name ending in .md or .markdown or .html, got .pdf")
    assert records.read_text() == kept and weights.read_bytes() == weights_bytes


def test_output_places_under_proc_are_refused_before_working():
    for args in (("bench", "--model", "default", "--methods", "fp32", "--results", "/proc/r.jsonl"),
                 ("bench", "--model", "default", "--methods", "fp32", "--artifacts", "/proc/a"),
                 ("apply", "--model", "default", "--method", "fp32", "--out-dir", "/proc/a"),
                 ("report", "--results", "/proc/self/status", "-o", "/proc/r.html"),
                 ("plan", "--model", "llama-2-7b", "--gpu", "t4", "-o", "/proc/p.json"),
                 ("probe", "-o", "/proc/p.json")):
        _one_line(_cli(*args), "cannot write there")


def test_artifact_paths_have_one_sanitising_rule():
    from compress import paths
    from compress.planner.serving import artifact_name

    assert paths.safe_name("org/My Model!") == "org-My-Model" and paths.safe_name("///") == "model"
    assert paths.artifact_dir("org/My Model", "prune-50+q4_k_m").as_posix() == "artifacts/org-My-Model-prune-50_q4_k_m"
    # The file a review tells llama-server to open is the one apply writes.
    candidate = {"variant": "q4_k_m", "runtime": "llama.cpp", "config": {"qtype": "q4_k_m"}}
    assert artifact_name("org/My Model", candidate) == \
        f"artifacts/org-My-Model-q4_k_m/{paths.gguf_file_name('org/My Model', 'Q4_K_M')}"
    assert paths.gguf_file_name("org/My Model", "q4_k_m") == "org-My-Model.Q4_K_M.gguf"
