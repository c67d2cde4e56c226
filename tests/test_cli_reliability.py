"""Bad input and faults through the real CLI, in a subprocess as a user runs it: one clear line, no traceback.

The model folder here asks for its own code (``auto_map`` and a custom ``model_type``) and carries
Python files that would write a marker file if anything imported them.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.compress.test_sources import LLAMA, model_folder

ROOT = Path(__file__).resolve().parents[1]
EVIL_CODE = "import pathlib\npathlib.Path({marker!r}).write_text('code ran')\n"


def compress(*args: str, stdin=None, cwd: Path = ROOT, timeout: int = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], stdin=stdin, cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


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
    # stdin attached and silent: a prompt would block here until the timeout
    run = compress(*command, "--model", str(folder), *extra, stdin=subprocess.PIPE, timeout=120)
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
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr and "error: no variant was measured" in run.stderr
    assert '"status": "failed"' in results.read_text()


def test_ctrl_c_in_apply_says_nothing_was_written(tiny_llama, tmp_path):
    import signal

    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "cli.py"), "apply", "--model", str(tiny_llama), "--method",
                             "wanda-50", "--out", str(out), "--device", "cpu"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:  # the step has started: its temporary folder exists
            if line.startswith("[1/1]"):
                break
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
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
