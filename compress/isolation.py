"""Run one function in a child process, so that a native crash ends the child, not the caller.

llama.cpp, ONNX Runtime and bitsandbytes run compiled kernels chosen for the CPU at hand; a
kernel that the CPU or the build gets wrong dies with a signal (SIGSEGV, SIGILL, a general
protection fault), and no Python ``try`` catches that. :func:`run_in_child` starts a fresh
interpreter (``spawn``: nothing of the caller's threads or native state is inherited), calls
``function(*args)`` there and returns its result. A child that dies on a signal raises
:class:`ChildDied`, which names the signal and this machine's CPU, so the caller can record
the failure and go on.

The child gets ``SIGKILL`` from the kernel if the caller dies (``PR_SET_PDEATHSIG``), so a
killed run leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import traceback
from collections.abc import Callable
from typing import Any

from compress.errors import RuntimeFailure

#: Set in a child's environment to make it die on a signal before its work starts, e.g.
#: ``llama.cpp-open:SIGSEGV`` for the llama.cpp probe. The suite uses it to check that a crash
#: is caught where it happens; :func:`inject_crash` reads it.
CRASH_ENV = "COMPRESS_INJECT_CRASH"


class ChildDied(RuntimeFailure):
    """The child ended on a signal (or exited without a result): a native crash or the OOM killer."""

    def __init__(self, what: str, exitcode: int | None) -> None:
        self.what = what
        self.exitcode = exitcode
        self.signal_name = signal_name(exitcode)
        super().__init__(f"{what} died on {self.signal_name} on {cpu_summary()}: a native runtime crashed "
                         "(or the OOM killer struck, for SIGKILL)")

    def __reduce__(self) -> tuple[Any, ...]:  # it crosses processes when a child's child died
        return (ChildDied, (self.what, self.exitcode))


def signal_name(exitcode: int | None) -> str:
    """``SIGSEGV`` for a child's exit code of -11; ``exit code N`` for a plain non-zero exit."""
    if exitcode is None:
        return "no exit code"
    if exitcode < 0:
        with contextlib.suppress(ValueError):
            return signal.Signals(-exitcode).name
        return f"signal {-exitcode}"
    return f"exit code {exitcode}"


def cpu_summary() -> str:
    """The CPU's model and the vector extensions that decide which kernels run, e.g.
    ``AMD EPYC (avx2 avx512f amx_tile)``."""
    from compress.provenance import cpu_flags, cpu_name

    wanted = [f for f in cpu_flags() if f in ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni",
                                              "amx_tile", "amx_int8", "amx_bf16")]
    return f"{cpu_name()} ({' '.join(wanted) or 'no AVX2'})"


def inject_crash(point: str) -> None:
    """Die on the signal ``$COMPRESS_INJECT_CRASH`` names for ``point`` (``point:SIGNAL``), if any."""
    wanted = os.environ.get(CRASH_ENV, "")
    for item in filter(None, wanted.split(",")):
        name, _, sig = item.partition(":")
        if name == point:
            os.kill(os.getpid(), signal.Signals[sig or "SIGSEGV"])


def run_in_child(function: Callable[..., Any], *args: Any, what: str = "the child process",
                 timeout_s: float | None = None, env: dict[str, str] | None = None, quiet: bool = False) -> Any:
    """``function(*args)`` in a spawned child; its return value, or its exception re-raised here.

    ``function`` and ``args`` must pickle (a module-level function). ``env`` adds variables to
    the child's environment only; ``quiet`` sends the child's own output (libraries' warnings)
    to /dev/null. Raises :class:`ChildDied` when the child ends on a signal or
    without a result, and :class:`RuntimeFailure` past ``timeout_s`` (the child is killed).
    """
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    # Not a daemon: the function may start processes of its own. PR_SET_PDEATHSIG ends it with us.
    child = context.Process(target=_child_main, args=(send, function, args, env or {}, quiet))
    child.start()
    send.close()
    try:
        outcome = _receive(receive, child, timeout_s, what)
    finally:
        receive.close()
        if child.is_alive():
            child.kill()
        child.join(timeout=10)
    kind, value = outcome
    if kind == "error":
        raise value
    return value


def _receive(receive: Any, child: Any, timeout_s: float | None, what: str) -> tuple[str, Any]:
    """The child's ``(kind, value)``; waiting on the pipe, not on the child, so a large result
    cannot fill the pipe while the parent waits for an exit that then never comes."""
    if not receive.poll(timeout_s):
        child.kill()
        child.join(timeout=10)
        raise RuntimeFailure(f"{what} did not finish within {timeout_s:g} s: stopped it")
    try:
        return receive.recv()
    except EOFError:  # the child ended without sending: it died
        child.join(timeout=30)
        raise ChildDied(what, child.exitcode) from None


def die_with_parent() -> None:
    """Have the kernel SIGKILL this process when its parent dies (Linux ``PR_SET_PDEATHSIG``)."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _child_main(send: Any, function: Callable[..., Any], args: tuple[Any, ...], env: dict[str, str],
                quiet: bool) -> None:
    die_with_parent()
    os.environ.update(env)
    if quiet:  # at the descriptor level, so native libraries' prints go too
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
    try:
        result: tuple[str, Any] = ("ok", function(*args))
    except BaseException as err:  # noqa: BLE001 - every failure goes back to the caller
        result = ("error", _picklable(err))
    try:
        send.send(result)
    except Exception as err:  # noqa: BLE001 - a result that does not pickle
        send.send(("error", RuntimeFailure(f"the child's result could not be sent back: {err}")))
    finally:
        send.close()


def _picklable(err: BaseException) -> BaseException:
    """``err`` itself when it survives pickling, else a RuntimeFailure with its text and last frame."""
    import pickle

    try:
        pickle.loads(pickle.dumps(err))
        return err
    except Exception:  # noqa: BLE001
        where = traceback.extract_tb(err.__traceback__)[-1:] if err.__traceback__ else []
        at = f" at {where[0].filename}:{where[0].lineno}" if where else ""
        return RuntimeFailure(f"{type(err).__name__}: {err}{at}")
