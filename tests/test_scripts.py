"""Every script in bench/ and scripts/ runs, as a user runs it: in a child process, with its
smallest arguments (a ``--quick`` mode, one run, a small file) on the tiny test model or the
default model, and prints what it says it prints. A script whose library calls went stale
(a changed signature, a renamed function) fails here rather than in a user's hands.

A new script without a row in ``SMOKE`` fails ``test_every_script_has_a_smoke_run``. Scripts
that need vLLM skip without its environment (``make setup`` builds ``.venv-vllm``); the
screenshot script skips without Chromium.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from dataclasses import dataclass
from pathlib import Path

import pytest

from compress.measure.vllm_runtime import vllm_present

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Smoke:
    args: tuple[str, ...]  # {tiny}: the tiny test model's folder, {tmp}: a scratch folder, {compress}: the CLI
    expect: str  # a line the script prints when it did its job
    needs: str | None = None  # "vllm" | "chromium"
    slow: bool = False  # more than a few seconds: marked integration
    timeout_s: int = 300


SMOKE = {
    "bench/apply_methods.py": Smoke(("--model", "{tiny}", "--methods", "fp16", "--calib-samples", "2",
                                     "--calib-seq-len", "16"), "fp16  wall", slow=True),
    "bench/fingerprint_cost.py": Smoke(("--size-gib", "0.02", "--dir", "{tmp}"), "cached"),
    "bench/harness_overhead.py": Smoke(("--quick",), "harness vs bare tok/s", slow=True),
    "bench/host_memory.py": Smoke(("import-llama_cpp",), '"added_mib"', slow=True),
    "bench/llama_build_speed.py": Smoke(("--quick",), "tg tok/s"),
    "bench/plan_local_speed.py": Smoke(("--runs", "1",), "catalog llama-3.2-1b"),
    "bench/plan_speed.py": Smoke(("--runs", "1",), "compress plan --model llama-2-7b --gpu t4: median"),
    "bench/predicted_vs_measured.py": Smoke((str(ROOT / "results" / "bench.jsonl"),), "pred tok/s"),
    "bench/quality_backtest.py": Smoke((), "published / predicted median"),
    "bench/quality_constants.py": Smoke((), "nf4 noise ratio over q4_0"),
    "bench/speed_backtest.py": Smoke((), "holdout: 27 figures"),
    "bench/serve_agreement.py": Smoke(("--model", "{tiny}", "--quick"), "end-to-end p50 ms",
                                      needs="vllm", slow=True, timeout_s=900),
    "bench/vllm_overhead.py": Smoke(("--model", "{tiny}", "--quick"), "harness vs bare tok/s",
                                    needs="vllm", slow=True, timeout_s=900),
    "scripts/measurements.py": Smoke(("--check",), ""),
    "scripts/report_screenshots.py": Smoke(("--out-dir", "{tmp}"), "report-390.png", needs="chromium", slow=True),
    "scripts/check-wheel.sh": Smoke(("{python}",), "plans like the checkout", slow=True, timeout_s=600),
    # Regenerating needs NVIDIA's AIConfigurator in an environment of its own: the help shows the script loads.
    "scripts/kernel_data.py": Smoke(("--help",), "--aiconfigurator"),
    "scripts/machine.sh": Smoke(("{compress}",), "vector extensions:", slow=True),
}
#: Scripts run by a test of their own below (they need a fresh environment or may install system packages).
OWN_TEST = {"scripts/build-llama.sh": "test_build_llama_installs_the_kept_wheel",
            "scripts/system-deps.sh": "test_system_deps_exits_zero"}


def _scripts() -> set[str]:
    found = {p for folder in ("bench", "scripts") for p in (ROOT / folder).iterdir()
             if p.is_file() and p.suffix in (".py", ".sh")}
    return {str(p.relative_to(ROOT)) for p in found}


def test_every_script_has_a_smoke_run():
    missing = _scripts() - set(SMOKE) - set(OWN_TEST)
    assert not missing, f"add a row to SMOKE in tests/test_scripts.py for {sorted(missing)}"
    assert not (set(SMOKE) | set(OWN_TEST)) - _scripts(), "SMOKE names a script that is gone"


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def run_script(path: str, args: list[str], tmp_path: Path, timeout_s: int) -> subprocess.CompletedProcess:
    command = ["bash", str(ROOT / path)] if path.endswith(".sh") else [sys.executable, str(ROOT / path)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    # cwd: anything a script writes beside itself (gptqmodel's ./logs) lands in the scratch folder
    return subprocess.run([*command, *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=timeout_s)


def _params():
    for path, smoke in SMOKE.items():
        marks = [pytest.mark.integration] if smoke.slow else []
        if smoke.needs == "chromium":
            marks.append(pytest.mark.browser)
        yield pytest.param(path, smoke, id=path, marks=marks)


@pytest.mark.parametrize(("path", "smoke"), list(_params()))
def test_script_runs(path, smoke, tmp_path, request):
    if smoke.needs == "vllm" and not vllm_present():
        pytest.skip("no vLLM environment (make setup builds .venv-vllm)")
    if smoke.needs == "chromium" and _chromium() is None:
        pytest.skip("headless Chromium not installed (scripts/system-deps.sh installs it)")
    names = {"{tmp}": str(tmp_path), "{python}": sys.executable, "{compress}": str(Path(sys.executable).parent / "compress")}
    if any("{tiny}" in a for a in smoke.args):
        names["{tiny}"] = str(request.getfixturevalue("tiny_llama"))
    args = [names.get(a, a) for a in smoke.args]
    done = run_script(path, args, tmp_path, smoke.timeout_s)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{path} {' '.join(args)} exited {done.returncode}:\n{output[-3000:]}"
    assert smoke.expect in output, f"{path} did not print {smoke.expect!r}:\n{output[-3000:]}"
    assert "Traceback" not in output and "failed after" not in output, output[-3000:]


@pytest.mark.integration
def test_build_llama_installs_the_kept_wheel(tmp_path):
    """Into a fresh environment, from the wheel ``make setup`` kept (compiling takes 8-20 minutes: not here)."""
    cache = subprocess.run(["bash", str(ROOT / "scripts" / "build-llama.sh"), "--print-cache"], capture_output=True,
                           text=True, check=True).stdout.strip()
    if not list(Path(cache).glob("llama_cpp_python-*.whl")):
        pytest.skip(f"no llama-cpp-python wheel kept in {cache}: make setup builds it")
    venv.create(tmp_path / "env", with_pip=True)
    python = tmp_path / "env" / "bin" / "python"
    done = run_script("scripts/build-llama.sh", [str(python)], tmp_path, timeout_s=300)
    assert done.returncode == 0, done.stderr
    assert f"installed from {cache}" in done.stdout and "compiling" not in done.stdout
    listed = subprocess.run([str(python), "-m", "pip", "list"], capture_output=True, text=True, check=True).stdout
    assert "llama_cpp_python" in listed.replace("-", "_")


def test_system_deps_exits_zero(tmp_path):
    if _chromium() is None and os.geteuid() == 0:
        pytest.skip("as root without Chromium this would install it with apt (make test runs it first)")
    done = run_script("scripts/system-deps.sh", [], tmp_path, timeout_s=60)
    assert done.returncode == 0, done.stderr
    # it installs nothing here: either Chromium is there (silent) or it says the browser test is skipped
    assert done.stdout == "" and (done.stderr == "" if _chromium() else "browser test will be skipped" in done.stderr)


@pytest.mark.integration
def test_vllm_command_answers_help():
    """``.venv-vllm/bin/vllm``, the command vLLM's documentation shows, runs (make setup installs a
    launcher where the CPU wheel's own command would fail on its missing ``vllm`` metadata)."""
    if not vllm_present():
        pytest.skip("no vLLM environment (make setup builds .venv-vllm)")
    from compress.measure.vllm_runtime import vllm_env, vllm_python

    command = vllm_python().with_name("vllm")
    assert command.is_file(), f"{command} is missing: run make setup"
    done = subprocess.run([str(command), "--help"], env=vllm_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-2000:]
    assert "serve" in done.stdout
