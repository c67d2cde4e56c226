"""The bench sweep on the tiny model: records, reproducible perplexity, failures, interrupt and resume."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from compress import apply, results, sources, variants
from compress.measure import suite, sweep
from compress.measure.settings import BenchSettings, plan_tests

TINY = BenchSettings(ppl_tokens=256, ppl_context=128, ppl_stride=128, pp_tokens=32, tg_tokens=8, reps=2, warmup=1,
                     batch_sizes=(2,), threads=1, device="cpu")
OPTIONS = apply.Options(device="cpu", calib_samples=4, calib_seq_len=64)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    return tmp_path_factory.mktemp("artifacts")


def _sweep(tiny_llama, results_path, artifacts, names="fp32", resume=False, settings=TINY):
    source = sources.resolve(str(tiny_llama))
    return sweep.run_sweep(source, variants.parse_list(names), settings, OPTIONS, results_path, artifacts,
                           resume=resume, log=lambda line: None)


def _ok(records, metric):
    return [r for r in records if r["metric"] == metric and r["status"] == "ok"]


def test_sweep_writes_one_flat_record_per_metric(tiny_llama, tmp_path, artifacts):
    path = tmp_path / "bench.jsonl"
    written = _sweep(tiny_llama, path, artifacts)
    stored = results.load(path)
    assert stored == json.loads(json.dumps(written))  # what was returned is what was appended
    metrics = {r["metric"] for r in stored}
    assert {"perplexity", "ttft_ms", "prefill_tok_s", "decode_tok_s", "tpot_ms", "itl_ms", "throughput_tok_s",
            "peak_memory_bytes", "artifact_bytes"} <= metrics
    assert {r["test"] for r in stored} == {"size", "ppl", "pp32", "tg8", "batch2", "memory"}
    tg = _ok(stored, "decode_tok_s")[0]
    assert tg["stats"]["n"] == 2 and len(tg["samples"]) == 2  # warm-up excluded: reps only
    assert tg["value"] == tg["stats"]["median"]
    assert tg["higher_is_better"] is True and _ok(stored, "ttft_ms")[0]["higher_is_better"] is False
    assert len(_ok(stored, "itl_ms")[0]["samples"]) == 2 * 8  # every step of every timed repetition
    ppl = _ok(stored, "perplexity")[0]
    assert ppl["params"]["context"] == 128 and ppl["params"]["stride"] == 128 and ppl["params"]["tokens"] == 256
    assert ppl["params"]["scored_tokens"] == 254  # two disjoint windows of 128, first token of each unscored
    # a random 512-token model is close to uniform: perplexity near the vocabulary size
    assert 300 < ppl["value"] < 900
    for r in stored:
        assert r["model_fingerprint"] and r["artifact_key"] and r["device"] == "cpu" and r["threads"] == 1
        assert r["runtime"] == "transformers" and r["schema"] == results.SCHEMA


def test_perplexity_is_identical_on_rerun(tiny_llama, tmp_path, artifacts):
    only_ppl = replace(TINY, tests=("ppl",))
    first = _ok(_sweep(tiny_llama, tmp_path / "a.jsonl", artifacts, settings=only_ppl), "perplexity")[0]["value"]
    second = _ok(_sweep(tiny_llama, tmp_path / "b.jsonl", artifacts, settings=only_ppl), "perplexity")[0]["value"]
    assert first == second  # to the last digit: same tokens, same windows, float64 NLL sums


def test_a_failing_variant_becomes_a_failed_record_and_the_sweep_goes_on(tiny_llama, tmp_path, artifacts, monkeypatch):
    real = sweep._ensure_artifact

    def ensure(source, variant, folder, options, log):
        if variant.name == "fp16":
            raise RuntimeError("simulated kernel crash")
        return real(source, variant, folder, options, log)

    monkeypatch.setattr(sweep, "_ensure_artifact", ensure)
    path = tmp_path / "bench.jsonl"
    _sweep(tiny_llama, path, artifacts, names="fp16,fp32", settings=replace(TINY, tests=("ppl",)))
    stored = results.load(path)
    failed = [r for r in stored if r["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["variant"] == "fp16" and failed[0]["test"] == "apply"
    assert "simulated kernel crash" in failed[0]["error"]
    assert _ok(stored, "perplexity")[0]["variant"] == "fp32"


def test_a_failing_test_is_recorded_and_the_next_test_runs(tiny_llama, tmp_path, artifacts, monkeypatch):
    def oom(ctx):
        raise MemoryError("cannot allocate 9 TiB")

    monkeypatch.setattr(suite, "run_prefill", oom)
    path = tmp_path / "bench.jsonl"
    _sweep(tiny_llama, path, artifacts, settings=replace(TINY, tests=("pp", "tg")))
    stored = results.load(path)
    failed = [r for r in stored if r["status"] == "failed"]
    assert [r["test"] for r in failed] == ["pp32"] and failed[0]["error"].startswith("out of memory")
    assert _ok(stored, "decode_tok_s")


def test_interrupted_sweep_resumes_without_losing_or_redoing_work(tiny_llama, tmp_path, artifacts, monkeypatch):
    path = tmp_path / "bench.jsonl"
    settings = replace(TINY, tests=("ppl", "tg"))
    real_decode = suite.run_decode

    def interrupted(ctx):
        raise KeyboardInterrupt  # as if the user pressed Ctrl-C during the decode test

    monkeypatch.setattr(suite, "run_decode", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _sweep(tiny_llama, path, artifacts, settings=settings)
    before = results.load(path)
    assert {r["test"] for r in before} == {"size", "ppl"}
    # a writer killed mid-line leaves a torn final line; it must be skipped, not crash the resume
    with open(path, "a", encoding="utf-8") as f:
        f.write('{"schema": "compress.result/1", "test": "tg8", "sta')
    monkeypatch.setattr(suite, "run_decode", real_decode)
    resumed = _sweep(tiny_llama, path, artifacts, settings=settings, resume=True)
    assert {r["test"] for r in resumed} == {"tg8", "memory"}  # ppl and size were not redone
    after = results.load(path)
    assert after[: len(before)] == before  # nothing recorded before the interruption was lost
    assert _sweep(tiny_llama, path, artifacts, settings=settings, resume=True) == []  # all done now


def test_resume_redoes_a_test_whose_records_were_cut_short(tiny_llama, tmp_path, artifacts):
    path = tmp_path / "bench.jsonl"
    settings = replace(TINY, tests=("tg",))
    _sweep(tiny_llama, path, artifacts, settings=settings)
    lines = path.read_text().splitlines()
    # keep only the first record of the tg group, as if killed after writing one of its lines
    tg_lines = [i for i, line in enumerate(lines) if json.loads(line)["test"] == "tg8"]
    path.write_text("\n".join(line for i, line in enumerate(lines) if i not in tg_lines[1:]) + "\n")
    again = _sweep(tiny_llama, path, artifacts, settings=settings, resume=True)
    assert {r["test"] for r in again} == {"tg8"}


def test_resume_does_not_reuse_records_made_with_other_settings(tiny_llama, tmp_path, artifacts):
    path = tmp_path / "bench.jsonl"
    _sweep(tiny_llama, path, artifacts, settings=replace(TINY, tests=("ppl",)))
    other = replace(TINY, tests=("ppl",), ppl_tokens=384)
    again = _sweep(tiny_llama, path, artifacts, settings=other, resume=True)
    assert {r["test"] for r in again} == {"ppl", "memory"}
    assert plan_tests(other, 2)["ppl"]["settings_key"] != plan_tests(TINY, 1)["ppl"]["settings_key"]


def test_completed_tests_needs_the_whole_group():
    group = [{"test_id": "a", "test_records": 2, "status": "ok", "model_fingerprint": "m", "artifact_key": "k",
              "test": "tg8", "params": {"settings_key": "s"}}]
    assert sweep.completed_tests(group) == set()
    assert sweep.completed_tests(group * 2) == {("m", "k", "tg8", "s")}
    assert sweep.completed_tests([{**group[0], "test_records": 1, "status": "failed"}]) == set()


def test_bench_settings_round_trip_and_validation():
    assert BenchSettings.from_dict(TINY.to_dict()) == TINY
    assert BenchSettings.for_device("cuda").pp_tokens == 512 and BenchSettings.for_device("cpu").pp_tokens == 128
    with pytest.raises(Exception, match="ppl_stride"):
        BenchSettings(ppl_stride=1024)


def test_bench_and_pareto_commands_on_the_tiny_model(tiny_llama, tmp_path, artifacts, monkeypatch, capsys):
    from typer.testing import CliRunner

    from cli import app

    path = tmp_path / "bench.jsonl"
    args = ["bench", "--model", str(tiny_llama), "--methods", "fp32", "--results", str(path), "--artifacts",
            str(artifacts), "--device", "cpu", "--threads", "1", "--ppl-tokens", "256", "--ppl-context", "128",
            "--pp", "16", "--tg", "4", "--reps", "1", "--warmup", "0", "--tests", "ppl,tg"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Measured variants" in result.output and "fp32" in result.output
    rec = _ok(results.load(path), "perplexity")[0]
    assert rec["params"]["stride"] == 128 and rec["bench_settings"]["tg_tokens"] == 4
    # the command measures each variant in a process of its own, so its peak RSS is its own
    assert _ok(results.load(path), "peak_memory_bytes")[0]["params"]["process"] == "own"
    again = CliRunner().invoke(app, [*args, "--resume", "--format", "json"])
    assert again.exit_code == 0 and json.loads(again.stdout)["written"] == []
    shown = CliRunner().invoke(app, ["pareto", "--results", str(path), "--format", "csv"])
    assert shown.exit_code == 0 and shown.output.splitlines()[0].startswith("variant,device,runtime,ppl")
    # A missing results file is a domain error (one line, exit 2), not a crash.
    import cli

    monkeypatch.setattr("sys.argv", ["compress", "pareto", "--results", str(tmp_path / "none.jsonl")])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert err.startswith("error: no results at ") and "none.jsonl" in err and err.count("\n") == 1


def test_killed_bench_process_resumes_without_loss(tiny_llama, tmp_path, artifacts):
    """SIGKILL a real `compress bench` once its first test is on disk; --resume keeps that and does the rest."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": str(root)}
    path = tmp_path / "bench.jsonl"

    def command(reps):
        return [sys.executable, "-m", "cli", "bench", "--model", str(tiny_llama), "--methods", "fp32", "--results",
                str(path), "--artifacts", str(artifacts), "--device", "cpu", "--threads", "1", "--ppl-tokens", "256",
                "--ppl-context", "128", "--tg", "8", "--reps", str(reps), "--warmup", "0", "--tests", "ppl,tg"]

    # 500 repetitions of tg8 take minutes: the kill lands in the middle of that test
    proc = subprocess.Popen(command(500), cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and not any(r["test"] == "ppl" for r in results.load(path)):
            time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    before = results.load(path)
    assert "ppl" in {r["test"] for r in before} and "tg8" not in {r["test"] for r in before}
    # the repetitions are a tg setting only, so the recorded ppl test still matches
    resumed = subprocess.run([*command(2), "--resume"], cwd=root, capture_output=True, text=True, env=env)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    after = results.load(path)
    assert after[: len(before)] == before  # nothing written before the kill was lost
    assert [r["test"] for r in after[len(before):] if r["metric"] == "perplexity"] == []  # ppl not redone
    assert {r["test"] for r in after[len(before):]} == {"tg8", "memory"}


KLD_METRICS = ("kld_mean", "kld_p99", "kld_max", "same_top_pct", "delta_p_rms_pct", "ln_ppl_ratio")


def test_kld_records_for_every_runtime_and_repeatable(tiny_llama, tmp_path, artifacts):
    only_ppl = replace(TINY, tests=("ppl",))
    first = _sweep(tiny_llama, tmp_path / "a.jsonl", artifacts, names="fp32,fp16,q4_k_m", settings=only_ppl)
    for variant in ("fp32", "fp16", "q4_k_m"):
        got = {r["metric"]: r for r in first if r["variant"] == variant and r["status"] == "ok"}
        assert set(KLD_METRICS) <= set(got), variant
        assert got["same_top_pct"]["higher_is_better"] is True and got["kld_mean"]["higher_is_better"] is False
        assert got["kld_mean"]["params"]["tokens"] == got["perplexity"]["params"]["scored_tokens"] == 254
        assert got["perplexity"]["params"]["convention"] == "compress"
    by = {(r["variant"], r["metric"]): r["value"] for r in first if r["status"] == "ok"}
    # The baseline is the float32 source model: the fp32 variant is the same model, bit for bit.
    assert by[("fp32", "kld_max")] == 0.0 and by[("fp32", "same_top_pct")] == 100.0
    assert by[("q4_k_m", "kld_mean")] > by[("fp16", "kld_mean")] > 0
    # ln(PPL ratio) is the log of the two perplexities' ratio on the same tokens.
    assert by[("q4_k_m", "ln_ppl_ratio")] == pytest.approx(
        __import__("math").log(by[("q4_k_m", "perplexity")] / by[("fp32", "perplexity")]), abs=1e-9)
    again = _sweep(tiny_llama, tmp_path / "b.jsonl", artifacts, names="fp16,q4_k_m", settings=only_ppl)
    for r in again:
        if r["status"] == "ok" and r["metric"] in KLD_METRICS:
            assert r["value"] == by[(r["variant"], r["metric"])]  # to the last digit


def test_llama_cpp_convention_records_say_so(tiny_llama, tmp_path, artifacts):
    settings = replace(TINY, tests=("ppl",), ppl_convention="llama.cpp")
    records = _sweep(tiny_llama, tmp_path / "c.jsonl", artifacts, names="fp32", settings=settings)
    ppl = _ok(records, "perplexity")[0]
    # The tiny tokenizer adds no BOS: 256 tokens, 2 chunks of 128, 63 scored tokens each (128 - 1 - 64).
    assert ppl["params"]["convention"] == "llama.cpp" and ppl["params"]["scored_tokens"] == 126
    assert _ok(records, "kld_max")[0]["value"] == 0.0
