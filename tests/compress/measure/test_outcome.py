"""How a bench run ends: the summary of failures and the exit code."""

from __future__ import annotations

from compress.measure.outcome import NOTHING_MEASURED, SOME_FAILED, outcome


def _rec(variant, test, status, error=None):
    return {"variant": variant, "test": test, "status": status, "error": error}


def test_a_run_with_every_figure_exits_zero_and_lists_skips_only():
    result = outcome([_rec("fp32", "ppl", "ok"), _rec("onnx", "tg32", "skipped", "unsupported: no KV cache")])
    assert result.exit_code == 0
    assert result.lines("r.jsonl") == ["skipped:", "  onnx tg32: unsupported: no KV cache"]


def test_one_failed_variant_is_named_with_its_cause_and_exits_some_failed():
    result = outcome([_rec("fp32", "ppl", "ok"),
                      _rec("q8_0", "load", "failed", "crashed: llama.cpp running x.gguf died on SIGSEGV on Xeon")])
    assert result.exit_code == SOME_FAILED == 3
    lines = result.lines("r.jsonl", width=80)
    assert "  q8_0 load: crashed: llama.cpp running x.gguf died on SIGSEGV on Xeon" in lines
    assert lines[-1].startswith("error: 1 test(s) of q8_0 failed") and all(len(line) <= 80 for line in lines)


def test_nothing_measured_has_its_own_code():
    result = outcome([_rec("q8_0", "apply", "failed", "out of memory: x")])
    assert result.exit_code == NOTHING_MEASURED == 4 and result.lines("r")[-1].startswith("error: nothing was measured")
    assert outcome([]).exit_code == NOTHING_MEASURED


def test_a_long_cause_is_wrapped_whole_not_cut():
    cause = "crashed: " + " ".join(f"word{i}" for i in range(40))
    lines = outcome([_rec("v", "load", "failed", cause)]).lines("r", width=60)
    body = " ".join(" ".join(lines[1:-1]).split())
    assert "word39" in body and all(len(line) <= 60 for line in lines)


def test_an_artifact_size_alone_is_no_measurement():
    """The size is read off the disk; a runtime that never started measured nothing."""
    result = outcome([_rec("fp32", "size", "ok"), _rec("fp32", "load", "skipped", "unsupported: no vLLM here")])
    assert result.exit_code == 4
