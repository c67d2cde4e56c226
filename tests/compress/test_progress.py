"""Progress on stderr only for a terminal and without --quiet; library noise hidden unless --verbose."""

from __future__ import annotations

import logging
import os
import pty
import subprocess
import sys
from pathlib import Path

from compress import progress

ROOT = Path(__file__).resolve().parents[2]
BNB_LINE = "Failed to load CPU gemm_4bit_forward from kernels-community: No module named 'kernels'"


def _emit_bnb_warning(env: dict[str, str]) -> str:
    """The warning bitsandbytes logs on import on AVX512-BF16 CPUs, sent through its own logger."""
    code = ("from compress.progress import quiet_third_party; quiet_third_party(); import logging; "
            f"logging.getLogger('bitsandbytes.backends.cpu.ops').warning({BNB_LINE!r})")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **env}).stderr


def test_bitsandbytes_kernel_warning_hidden_unless_verbose():
    assert BNB_LINE not in _emit_bnb_warning({})
    assert BNB_LINE in _emit_bnb_warning({progress.VERBOSE_ENV: "1"})


def test_no_progress_when_stderr_is_not_a_terminal(capsys):
    assert not progress.enabled()  # pytest captures stderr: not a terminal
    with progress.steps("windows", 3) as done:
        for _ in range(3):
            done()
    assert capsys.readouterr().err == ""


def _bar_on_a_terminal(env: dict[str, str]) -> bytes:
    """Run a 3-step bar with stderr on a pseudo-terminal; what the terminal received."""
    code = ("from compress.progress import steps\n"
            "with steps('windows', 3) as done:\n"
            "    [done() for _ in range(3)]\n")
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=follower, stdout=subprocess.DEVNULL, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "TERM": "xterm", **env})
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=30)
    os.close(leader)
    return b"".join(chunks)


def test_progress_on_a_terminal_and_quiet_turns_it_off():
    shown = _bar_on_a_terminal({})
    assert b"windows" in shown and b"3/3" in shown and b"elapsed," in shown and b"left" in shown
    assert b"windows" not in _bar_on_a_terminal({progress.QUIET_ENV: "1"})


def test_quiet_third_party_leaves_loggers_alone_when_verbose(monkeypatch):
    logger = logging.getLogger("bitsandbytes")
    before = logger.level
    monkeypatch.setenv(progress.VERBOSE_ENV, "1")
    logger.setLevel(logging.NOTSET)
    progress.quiet_third_party()
    assert logger.level == logging.NOTSET
    logger.setLevel(before)
