"""llama.cpp's quantizer runs where a signal can stop it: Ctrl-C or SIGTERM during the native call
ends it at once, with nothing of its output left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from compress.errors import RuntimeFailure

ROOT = Path(__file__).resolve().parents[2]

pytest.importorskip("llama_cpp")

# The quantizer opens its input with fopen, which on a FIFO with no writer blocks inside the native
# call until one comes: a native call that never returns on its own, without a large model.
_WAIT_IN_QUANTIZER = """
import signal, sys
from pathlib import Path
from compress import llamacpp

def stop(signum, frame):
    raise KeyboardInterrupt
signal.signal(signal.SIGTERM, stop)  # as `compress apply` does
try:
    llamacpp.quantize_gguf(Path(sys.argv[1]), Path(sys.argv[2]), "Q8_0")
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(130)
"""


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_the_native_quantizer_stops_it_at_once(signum, tmp_path):
    fifo, out = tmp_path / "model.F32.gguf", tmp_path / "model.Q8_0.gguf"
    os.mkfifo(fifo)
    proc = subprocess.Popen([sys.executable, "-c", _WAIT_IN_QUANTIZER, str(fifo), str(out)], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not _children(proc.pid) and time.monotonic() < deadline:  # the quantizer process has started
            time.sleep(0.1)
        children = _children(proc.pid)
        assert children, "no quantizer process started"
        time.sleep(2)  # it is inside llama_model_quantize, blocked on the FIFO
        started = time.monotonic()
        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert time.monotonic() - started < 15
    assert proc.returncode == 130 and stdout == "interrupted\n", stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    assert not out.exists()
    # The quantizer process (and multiprocessing's resource tracker) end with it.
    deadline = time.monotonic() + 10
    while any(_alive(c) for c in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(c) for c in children)


def test_a_quantizer_that_fails_is_one_line(tmp_path):
    from compress import llamacpp

    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 60)
    with pytest.raises(RuntimeFailure, match=r"llama.cpp could not quantize bad.gguf to Q8_0") as err:
        llamacpp.quantize_gguf(bad, tmp_path / "out.gguf", "Q8_0")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "out.gguf").exists()


def _quantize_in_daemon(src: str, dst: str, queue) -> None:
    from compress import llamacpp

    try:
        llamacpp.quantize_gguf(Path(src), Path(dst), "Q8_0")
        queue.put("ok")
    except RuntimeFailure as err:
        queue.put(str(err))


def test_a_daemonic_process_quantizes_in_place(tmp_path):
    """A daemonic process may start no child: the quantizer runs in it, its failures still one line."""
    import multiprocessing

    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 60)
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    proc = context.Process(target=_quantize_in_daemon, args=(str(bad), str(tmp_path / "out.gguf"), queue), daemon=True)
    proc.start()
    answer = queue.get(timeout=120)
    proc.join(timeout=30)
    assert answer.startswith("llama.cpp could not quantize bad.gguf to Q8_0"), answer
    assert "processes are not allowed to have children" not in answer and not (tmp_path / "out.gguf").exists()
