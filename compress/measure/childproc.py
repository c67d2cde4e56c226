"""Child processes that never outlive the bench: started in a process group of their own,
stopped by signalling the whole group.

vLLM starts further processes (its engine core, its workers); stopping only the one we
started can leave those behind, holding memory, cores and a port. Every process of the
group is therefore signalled, gently (SIGTERM) and then, after a grace period, with
SIGKILL. On Linux the direct child also gets SIGKILL from the kernel if the bench itself
dies (``PR_SET_PDEATHSIG``), so even a killed bench leaves no server behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from compress.isolation import die_with_parent


def start_group(cmd: Sequence[str], env: dict[str, str] | None = None, stdin: Any = None,
                stdout: IO[Any] | int | None = None, stderr: IO[Any] | int | None = None,
                cwd: Path | None = None) -> subprocess.Popen:
    """Start ``cmd`` as the leader of a new process group (its pid is the group id)."""
    return subprocess.Popen(list(cmd), env=env, stdin=stdin, stdout=stdout, stderr=stderr, cwd=cwd,
                            start_new_session=True, preexec_fn=die_with_parent)


def group_alive(pgid: int) -> bool:
    """Whether any process of group ``pgid`` is still running (zombies aside)."""
    import psutil

    for proc in psutil.process_iter(["pid"]):
        with contextlib.suppress(psutil.Error, OSError):  # a process may end while the list is read
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                return True
    return False


def stop_group(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGTERM the group of ``proc``, SIGKILL what is left after ``grace_s``, and reap ``proc``."""
    pgid = proc.pid
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and group_alive(pgid):
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=0.2)
        if proc.poll() is not None and not group_alive(pgid):
            break
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now (the kernel's choice for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of a process and all its descendants."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def _cores_text(cores: frozenset[int]) -> str:
    """``{0, 1, 2, 5}`` → ``0-2,5``."""
    spans: list[list[int]] = []
    for c in sorted(cores):
        if spans and c == spans[-1][1] + 1:
            spans[-1][1] = c
        else:
            spans.append([c, c])
    return ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in spans)


def cpu_binding(pid: int) -> str:
    """Which cores the threads of a process and its descendants may run on, e.g.
    ``"2 threads on cores 0-1, 1 on core 0"``: an engine that pins its threads shows it here."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return "process gone"
    counts: dict[frozenset[int], int] = {}
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            for thread in proc.threads():
                with contextlib.suppress(OSError):  # a thread may end while the list is read
                    cores = frozenset(os.sched_getaffinity(thread.id))
                    counts[cores] = counts.get(cores, 0) + 1
    parts = []
    for i, (cores, n) in enumerate(sorted(counts.items(), key=lambda kv: -kv[1])):
        unit = ("thread" if n == 1 else "threads") if i == 0 else ""
        where = f"core{'s' if len(cores) > 1 else ''} {_cores_text(cores)}"
        parts.append(f"{n} {unit} on {where}".replace("  ", " "))
    return ", ".join(parts) or "no threads"
