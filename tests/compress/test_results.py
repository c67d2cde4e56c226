"""The results store: whole-line appends, torn lines skipped, concurrent writers never interleave."""

from __future__ import annotations

import json
import multiprocessing

from compress import results
from compress.measure.sweep import completed_tests


def _writer(path, worker, count):
    for i in range(count):
        results.append(path, results.record(worker=worker, i=i, payload="x" * 2000))


def test_torn_final_line_is_skipped_and_the_next_append_starts_a_fresh_line(tmp_path):
    path = tmp_path / "bench.jsonl"
    results.append(path, results.record(test="ppl", value=1.0))
    with open(path, "a", encoding="utf-8") as f:
        f.write('{"schema": "compress.result/1", "test": "tg32", "val')  # a writer killed mid-line
    assert [r["test"] for r in results.load(path)] == ["ppl"]
    results.append(path, results.record(test="pp128", value=2.0))
    assert [r["test"] for r in results.load(path)] == ["ppl", "pp128"]
    assert path.read_text().endswith("\n")


def test_concurrent_appends_stay_whole(tmp_path):
    path = tmp_path / "bench.jsonl"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(path, w, 40)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    lines = path.read_text().splitlines()
    assert len(lines) == 160 and all(json.loads(line)["payload"] == "x" * 2000 for line in lines)
    assert sorted((r["worker"], r["i"]) for r in results.load(path)) == [(w, i) for w in range(4) for i in range(40)]


def test_records_are_self_describing_and_strict_json(tmp_path):
    path = tmp_path / "bench.jsonl"
    results.append(path, results.record(metric="decode_tok_s", unit="tok/s", higher_is_better=True, value=3.0))
    rec = results.load(path)[0]
    assert rec["schema"] == results.SCHEMA and rec["status"] == "ok" and rec["timestamp"]
    try:
        results.append(path, results.record(value=float("nan")))
    except ValueError:
        pass  # NaN is not JSON: the store refuses it rather than write an unreadable line
    else:
        raise AssertionError("a NaN value was written")


def test_a_failed_test_is_not_complete_but_a_skipped_one_is():
    base = {"model_fingerprint": "m", "artifact_key": "k", "params": {"settings_key": "s"}, "test_records": 1}
    assert completed_tests([{**base, "test": "batch4", "status": "skipped", "test_id": "a"}]) == {("m", "k", "batch4", "s")}
    assert completed_tests([{**base, "test": "ppl", "status": "failed", "test_id": "b"}]) == set()


def test_records_with_fields_of_the_wrong_type_are_skipped_naming_file_line_and_field(tmp_path, capsys):
    path = tmp_path / "bench.jsonl"
    results.append(path, results.record(model="m", variant="fp32", test="ppl", value=1.0))
    bad = [{"model": 7}, {"value": "fast"}, {"timestamp": {"at": 1}}, {"higher_is_better": 1}, {"value": True},
           {"stats": [1]}]
    with open(path, "a", encoding="utf-8") as f:
        for fields in bad:
            f.write(json.dumps(results.record(**{"model": "m", "variant": "fp32", "test": "ppl", **fields})) + "\n")
        f.write('{"schema": "compress.result/1", "value": NaN}\n')
        f.write('{"schema": "compress.result/1", "model": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
        f.write(json.dumps({"schema": "other/1", "model": 7}) + "\n")  # another tool's record: not ours to judge
    assert [r["test"] for r in results.load(path)] == ["ppl"]
    warnings = capsys.readouterr().err.splitlines()
    assert warnings == [
        f"warning: {path}:2: skipped a record: field 'model' is a JSON number: expected text",
        f"warning: {path}:3: skipped a record: field 'value' is a JSON string: expected a number",
        f"warning: {path}:4: skipped a record: field 'timestamp' is a JSON object: expected text",
        f"warning: {path}:5: skipped a record: field 'higher_is_better' is a JSON number: expected true or false",
        f"warning: {path}:6: skipped a record: field 'value' is a JSON boolean: expected a number",
        f"warning: {path}:7: skipped a record: field 'stats' is a JSON list: expected an object",
        f"warning: {path}:8: skipped a record: field 'value' is nan: expected a finite number",
        f"warning: {path}:9: skipped a line nested deeper than 64 levels",
    ]


def test_a_results_path_that_is_not_a_regular_file_is_refused_not_read_forever():
    import pytest

    from compress.errors import UserInputError

    with pytest.raises(UserInputError, match="/dev/zero is not a regular file"):
        results.load("/dev/zero")


def test_newest_takes_the_latest_timestamp_and_file_order_on_ties():
    records = [
        {"variant": "q4", "timestamp": "2026-01-02T00:00:00", "value": 2},
        {"variant": "q4", "timestamp": "2026-01-01T00:00:00", "value": 1},  # older, later in the file
        {"variant": "q8", "timestamp": "2026-01-03T00:00:00", "value": 3},
        {"variant": "q8", "timestamp": "2026-01-03T00:00:00", "value": 4},  # same stamp: the later wins
        {"variant": "fp16", "timestamp": "2026-01-09T00:00:00", "value": 5},
    ]
    newest = results.newest(records, lambda r: r["variant"] if r["variant"] != "fp16" else None)
    assert {k: r["value"] for k, r in newest.items()} == {"q4": 2, "q8": 4}
    assert list(newest) == ["q4", "q8"]  # oldest first


def test_a_failure_record_has_every_figure_field_empty_and_its_reason():
    rec = results.failure("out of memory", status="skipped", model="m", variant="q4", test="ppl")
    assert rec["status"] == "skipped" and rec["error"] == "out of memory" and rec["test"] == "ppl"
    figure = results.record(metric="perplexity", unit="", higher_is_better=False, value=1.0, stats={}, samples=[1.0],
                            predicted=None, prediction_error_pct=None, test_id="x", test_records=1)
    assert set(figure) <= set(rec)  # a reader finds the same keys in either
    assert all(rec[k] is None for k in ("metric", "unit", "value", "stats", "predicted")) and rec["samples"] == []
