"""Bad input and faults through the real CLI, in a subprocess as a user runs it: one clear line, no traceback.

The model folder here asks for its own code (``auto_map`` and a custom ``model_type``) and carries
Python files that would write a marker file if anything imported them.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.compress.test_sources import LLAMA, model_folder

ROOT = Path(__file__).resolve().parents[1]
EVIL_CODE = "import pathlib\npathlib.Path({marker!r}).write_text('code ran')\n"


def compress(*args: str, stdin=None, cwd: Path = ROOT, timeout: int = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], stdin=stdin, cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def compress_with_stdin_open(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    """Run with a terminal-like stdin that stays open and says nothing: a prompt would wait until the timeout."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    with subprocess.Popen([sys.executable, str(ROOT / "cli.py"), *args], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, env=env, text=True) as proc:
        try:
            proc.wait(timeout=timeout)  # output is short: the pipes cannot fill up
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        out, err = proc.stdout.read(), proc.stderr.read()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def assert_one_clear_line(run: subprocess.CompletedProcess, *words: str) -> None:
    assert run.returncode != 0, run.stdout
    assert "Traceback" not in run.stderr, run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, run.stderr
    for word in words:
        assert word in errors[0], errors[0]


@pytest.fixture()
def remote_code_folder(tmp_path):
    marker = tmp_path / "MARKER"
    config = {**LLAMA, "model_type": "evil-llama",
              "auto_map": {"AutoConfig": "configuration_evil.EvilConfig",
                           "AutoModelForCausalLM": "modeling_evil.EvilForCausalLM"}}
    folder = model_folder(tmp_path / "evil", config)
    for name in ("configuration_evil.py", "modeling_evil.py"):
        (folder / name).write_text(EVIL_CODE.format(marker=str(marker)))
    return folder, marker


@pytest.mark.parametrize("command", [["apply", "--method", "fp16"], ["bench", "--methods", "fp16", "--tests", "ppl"]])
def test_remote_code_is_refused_with_stdin_open(remote_code_folder, tmp_path, command):
    folder, marker = remote_code_folder
    extra = ["--out", str(tmp_path / "out")] if command[0] == "apply" else \
        ["--results", str(tmp_path / "r.jsonl"), "--artifacts", str(tmp_path / "a")]
    run = compress_with_stdin_open(*command, "--model", str(folder), *extra)
    assert_one_clear_line(run, "asks to run custom code", "--trust-remote-code")
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_remote_code_is_refused_with_stdin_closed(remote_code_folder, tmp_path):
    folder, marker = remote_code_folder
    run = compress("apply", "--model", str(folder), "--method", "fp16", "--out", str(tmp_path / "out"),
                   stdin=subprocess.DEVNULL)
    assert_one_clear_line(run, "asks to run custom code", "--trust-remote-code")
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_remote_code_is_refused_when_yes_is_piped_in(remote_code_folder, tmp_path):
    folder, marker = remote_code_folder
    yes = subprocess.Popen(["yes"], stdout=subprocess.PIPE)
    try:
        run = compress("apply", "--model", str(folder), "--method", "fp16", "--out", str(tmp_path / "out"),
                       stdin=yes.stdout)
    finally:
        yes.kill()
        yes.wait()
    assert_one_clear_line(run, "asks to run custom code", "--trust-remote-code")
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_pickle_weights_are_refused(tmp_path):
    folder = model_folder(tmp_path / "m", LLAMA, weights="pytorch_model.bin")
    run = compress("apply", "--model", str(folder), "--method", "fp16", "--out", str(tmp_path / "out"))
    assert_one_clear_line(run, "only pickle weights", "safetensors")


def test_trusted_remote_code_runs_and_travels_with_the_artifact(tiny_llama, tmp_path):
    """With --trust-remote-code the folder's code is used (the marker appears) and copied into the artifact."""
    marker = tmp_path / "MARKER"
    folder = tmp_path / "custom"
    shutil.copytree(tiny_llama, folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="custom-llama", architectures=["CustomForCausalLM"],
                  auto_map={"AutoConfig": "configuration_custom.CustomConfig",
                            "AutoModelForCausalLM": "modeling_custom.CustomForCausalLM"})
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "configuration_custom.py").write_text(
        EVIL_CODE.format(marker=str(marker))
        + "from transformers import LlamaConfig\n\n\nclass CustomConfig(LlamaConfig):\n    model_type = 'custom-llama'\n")
    (folder / "modeling_custom.py").write_text(
        "from transformers import LlamaForCausalLM\n\nfrom .configuration_custom import CustomConfig\n\n\n"
        "class CustomForCausalLM(LlamaForCausalLM):\n    config_class = CustomConfig\n")
    refused = compress("apply", "--model", str(folder), "--method", "fp32", "--out", str(tmp_path / "no"))
    assert_one_clear_line(refused, "--trust-remote-code")
    assert not marker.exists()
    out = tmp_path / "art"
    run = compress("apply", "--model", str(folder), "--method", "fp32", "--out", str(out), "--trust-remote-code",
                   timeout=300)
    assert run.returncode == 0, run.stderr
    assert marker.exists() and (out / "configuration_custom.py").is_file()


def test_bench_exits_non_zero_when_no_variant_was_measured(tiny_llama, tmp_path):
    """Group size 96 divides none of the tiny model's widths (256, 512): the only variant fails in apply."""
    results = tmp_path / "r.jsonl"
    run = compress("bench", "--model", str(tiny_llama), "--methods", "gptq-4-g96", "--tests", "ppl",
                   "--results", str(results), "--artifacts", str(tmp_path / "a"), "--device", "cpu", timeout=300)
    assert run.returncode == 4, run.stderr  # compress.measure.outcome.NOTHING_MEASURED
    assert "Traceback" not in run.stderr and "error: nothing was measured" in run.stderr
    assert "gptq-4-g96 apply:" in run.stderr  # the summary names the variant, the test and the cause
    assert '"status": "failed"' in results.read_text()


@pytest.mark.parametrize("venv", ["missing", "a file"])
def test_bench_exits_non_zero_when_the_runtime_cannot_start(tiny_llama, tmp_path, venv):
    """--runtime vllm without a vLLM environment: only the artifact's size is known, nothing was measured."""
    where = tmp_path / "venv"
    if venv == "a file":
        where.write_text("not a venv")
    results = tmp_path / "r.jsonl"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "COMPRESS_VLLM_VENV": str(where)}
    run = subprocess.run([sys.executable, str(ROOT / "cli.py"), "bench", "--model", str(tiny_llama), "--methods",
                          "fp32", "--tests", "ppl", "--kld-top-k", "0", "--runtime", "vllm", "--results", str(results),
                          "--artifacts", str(tmp_path / "a"), "--device", "cpu"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 4, run.stderr  # compress.measure.outcome.NOTHING_MEASURED
    assert "Traceback" not in run.stderr and "error: nothing was measured" in run.stderr


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_in_apply_says_nothing_was_written(tiny_llama, tmp_path, signum):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "cli.py"), "apply", "--model", str(tiny_llama), "--method",
                             "wanda-50", "--out", str(out), "--device", "cpu"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:  # the step has started: its temporary folder exists
            if line.startswith("[1/1]"):
                break
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signum, err
    assert f"interrupted: nothing was written to {out}" in err and "Traceback" not in err
    assert not out.exists() and not list(tmp_path.glob(".out.*.partial"))


def test_a_write_that_runs_out_of_room_is_one_line_and_leaves_nothing(tmp_path):
    """A file-size limit stands in for a full disk: the plan file cannot be written whole."""
    import resource

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))

    out = tmp_path / "plan.json"
    run = subprocess.run([sys.executable, str(ROOT / "cli.py"), "plan", "--model", "llama-2-7b", "--gpu", "t4",
                          "-o", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=120, preexec_fn=limit,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert_one_clear_line(run, "File too large", "free space")
    assert run.returncode == 1 and not out.exists() and not list(tmp_path.iterdir())


@pytest.mark.parametrize("method", ["fp32", "gguf-f16", "q8_0"])
def test_apply_that_runs_out_of_room_is_one_line(tiny_llama, tmp_path, method):
    """safetensors reports a failed write as its own exception type, the errno only in its text; the
    GGUF writer and llama.cpp's quantizer meet the same limit in their own ways."""
    import resource

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, 1_000_000))

    out = tmp_path / "out"
    run = subprocess.run([sys.executable, str(ROOT / "cli.py"), "apply", "--model", str(tiny_llama), "--method",
                          method, "--out-dir", str(out), "--device", "cpu"], cwd=ROOT, capture_output=True, text=True,
                         timeout=300, preexec_fn=limit, env={**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"})
    assert_one_clear_line(run, "free space")
    assert run.returncode == 1 and not list(tmp_path.iterdir())


def test_pareto_and_report_skip_bad_lines_with_a_warning(tmp_path):
    from compress import results

    path = tmp_path / "r.jsonl"
    good = results.record(model="m", model_fingerprint="f", variant="fp32", device="cpu", runtime="rt", test="ppl",
                          metric="perplexity", unit="", higher_is_better=False, value=20.0)
    path.write_bytes(json.dumps(good).encode() + b"\n\xff\xfe\n[1]\n{\"torn\n")
    for args in (["pareto", "--results", str(path)], ["report", "--results", str(path), "--out", str(tmp_path / "r.html")]):
        run = compress(*args)
        assert run.returncode == 0, run.stderr
        assert "Traceback" not in run.stderr
        for line in (2, 3, 4):
            assert f"warning: {path}:{line}: skipped" in run.stderr


def test_a_killed_apply_leaves_a_partial_folder_that_the_next_apply_removes(tiny_llama, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    args = [sys.executable, str(ROOT / "cli.py"), "apply", "--model", str(tiny_llama), "--method", "fp32",
            "--out", str(out), "--device", "cpu"]
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:
            if line.startswith("[1/1]"):
                break
        proc.kill()  # SIGKILL: nothing in the process can clean up
        proc.wait(timeout=60)
    finally:
        proc.kill()
    partials = list(tmp_path.glob(".out.*.partial"))
    assert len(partials) == 1 and not out.exists()
    time.sleep(1.1)  # the next run starts after the folder's last change, to the second /proc reports
    run = compress("apply", "--model", str(tiny_llama), "--method", "fp32", "--out", str(out), "--device", "cpu",
                   timeout=300)
    assert run.returncode == 0, run.stderr
    assert not partials[0].exists() and (out / "manifest.json").is_file()


@pytest.mark.parametrize(("args", "words"), [
    (("apply", "--model", "", "--method", "fp32"), ("--model is empty", "expected a local")),
    (("apply", "--model", "default", "--method", "fp32", "--seed", "-1"), ("--seed must be a whole number from 0",)),
    (("apply", "--model", "default", "--method", "fp32", "--seed", str(2**32)), ("--seed", "4,294,967,295")),
    (("bench", "--model", "", "--methods", "fp32"), ("--model is empty",)),
    (("bench", "--endpoint", "http://127.0.0.1:9", "--rate", "inf"), ("--rate must be a number", "got inf")),
    (("bench", "--endpoint", "http://127.0.0.1:9", "--rate", "nan"), ("--rate must be a number",)),
    (("bench", "--methods", "fp32", "--cluster", "local:100000"), ("--cluster local:N takes a whole number of CPUs",)),
    (("review", "--model", "llama-2-7b", "--gpu", "t4", "-o", "x.pdf"), ("expected a file name ending in .md",)),
    (("plan", "--model", "llama-2-7b", "--gpu", "t4", "-o", "plan.md"), ("expected a file name ending in .json",)),
])
def test_out_of_range_options_are_one_line_before_any_work(tmp_path, args, words):
    run = compress(*args, "--results", str(tmp_path / "r.jsonl")) if args[0] == "bench" else compress(*args, cwd=tmp_path)
    assert_one_clear_line(run, *words)
    assert run.returncode == 2 and list(tmp_path.iterdir()) == []  # nothing written


def test_views_skip_records_with_fields_of_the_wrong_type_and_refuse_dev_zero(tmp_path):
    from compress import results

    path = tmp_path / "r.jsonl"
    good = results.record(model="m", model_fingerprint="f", variant="fp32", device="cpu", runtime="rt", test="ppl",
                          metric="perplexity", unit="", higher_is_better=False, value=20.0)
    bad = [{**good, "model": 7}, {**good, "value": "fast"}, {**good, "timestamp": {"at": 1}},
           {**good, "model": "[" * 50_000}]
    path.write_text("".join(json.dumps(r) + "\n" for r in [good, *bad])
                    + '{"schema": "compress.result/1", "model": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    for args in (["pareto", "--results", str(path)], ["report", "--results", str(path), "-o", str(tmp_path / "r.html")],
                 ["review", "--model", "llama-2-7b", "--gpu", "t4", "--results", str(path)]):
        run = compress(*args)
        assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr
        for line in (2, 3, 4, 6):
            assert f"warning: {path}:{line}: skipped" in run.stderr, run.stderr
    started = time.monotonic()
    assert_one_clear_line(compress("pareto", "--results", "/dev/zero", timeout=30), "is not a regular file")
    assert time.monotonic() - started < 30


def test_bench_against_a_server_that_drips_bytes_ends_in_one_line(tmp_path):
    """Headers, then one byte a second: a read timeout never fires, the request's deadline does."""
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def drip() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            try:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
                while True:
                    time.sleep(1)
                    conn.sendall(b"x")
            except OSError:
                conn.close()

    threading.Thread(target=drip, daemon=True).start()
    try:
        started = time.monotonic()
        run = compress("bench", "--endpoint", f"http://127.0.0.1:{server.getsockname()[1]}/v1",
                       "--results", str(tmp_path / "r.jsonl"), timeout=90)
        assert_one_clear_line(run, "/v1/models sent no whole reply within 10 s")
        assert time.monotonic() - started < 60
    finally:
        server.close()


def test_force_leaves_a_folder_whose_manifest_compress_did_not_write(tiny_llama, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "manifest.json").write_text('{"hello": 1}')
    (out / "data.txt").write_text("keep me")
    run = compress("apply", "--model", str(tiny_llama), "--method", "fp32", "--out-dir", str(out), "--force")
    assert_one_clear_line(run, "is not an artifact written by compress", "--force only replaces those")
    assert (out / "data.txt").read_text() == "keep me"
