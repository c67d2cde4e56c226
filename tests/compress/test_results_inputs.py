"""Results are found the same way by every view: --results (repeatable, comma lists), $COMPRESS_RESULTS, results/."""

from __future__ import annotations

import pytest

from compress import paths, results
from compress.errors import UserInputError


def _file(path, variant):
    results.append(path, results.record(model="m", variant=variant, test="tg32", metric="decode_tok_s", value=1.0))
    return path


def test_given_files_are_merged_and_each_record_keeps_its_file(tmp_path):
    a, b = _file(tmp_path / "a.jsonl", "q8_0"), _file(tmp_path / "b.jsonl", "nf4")
    inputs = paths.results_inputs([str(a), f"{b},{a}"])
    records = results.load(inputs, provenance=True)
    assert [(r["variant"], r["results_file"]) for r in records] == [("q8_0", str(a)), ("nf4", str(b))]
    assert "results_file" not in results.load(inputs)[0]  # what bench reads back to resume is as written


def test_the_environment_then_the_working_folder(tmp_path, monkeypatch):
    _file(tmp_path / "elsewhere" / "bench.jsonl", "q8_0")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COMPRESS_RESULTS", str(tmp_path / "elsewhere"))
    assert paths.results_inputs(None) == [tmp_path / "elsewhere"]
    monkeypatch.delenv("COMPRESS_RESULTS")
    with pytest.raises(UserInputError, match=r"tried --results \(not given\), \$COMPRESS_RESULTS \(not set\), "):
        paths.results_inputs(None)
    _file(tmp_path / "results" / "bench.jsonl", "nf4")
    assert paths.results_inputs(None) == [paths.Path("results")]


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(UserInputError, match="no results at .*missing.jsonl"):
        paths.results_inputs([str(tmp_path / "missing.jsonl")])
