"""The child-process runner that keeps a native crash from ending the caller."""

from __future__ import annotations

import os
import signal

import pytest

from compress.errors import RuntimeFailure, UserInputError
from compress.isolation import CRASH_ENV, ChildDied, inject_crash, run_in_child, signal_name


def _add(a, b):
    return a + b


def _pid_and_env():
    return os.getpid(), os.environ.get("COMPRESS_TEST_MARK")


def _refuse():
    raise UserInputError("expected a GGUF, got a folder")


def _die(signum):
    os.kill(os.getpid(), signum)


def _segfault_in_native_code():
    import ctypes

    ctypes.string_at(0)  # reads address 0 in C: a real SIGSEGV, no Python exception


def _sleep():
    import time

    time.sleep(30)


def _injected():
    inject_crash("test-point")
    return "not crashed"


def test_the_result_comes_back_from_another_process():
    assert run_in_child(_add, 2, 3) == 5
    pid, mark = run_in_child(_pid_and_env, env={"COMPRESS_TEST_MARK": "x"})
    assert pid != os.getpid() and mark == "x"
    assert "COMPRESS_TEST_MARK" not in os.environ  # the variable was the child's alone


def test_an_exception_in_the_child_is_raised_here_as_itself():
    with pytest.raises(UserInputError, match="expected a GGUF"):
        run_in_child(_refuse)


def test_a_segfault_in_native_code_is_named_and_the_caller_lives_on():
    with pytest.raises(ChildDied) as caught:
        run_in_child(_segfault_in_native_code, what="the native call")
    assert caught.value.signal_name == "SIGSEGV"
    assert str(caught.value).startswith("the native call died on SIGSEGV on ")
    assert run_in_child(_add, 1, 1) == 2  # and the next child runs


@pytest.mark.parametrize("signum", [signal.SIGILL, signal.SIGKILL])
def test_every_deadly_signal_is_named(signum):
    with pytest.raises(ChildDied, match=signal.Signals(signum).name):
        run_in_child(_die, signum)


def test_a_child_past_its_deadline_is_stopped():
    with pytest.raises(RuntimeFailure, match="did not finish within 1 s"):
        run_in_child(_sleep, timeout_s=1)


def test_crashes_are_injected_only_where_named():
    assert run_in_child(_injected, env={CRASH_ENV: "other-point:SIGSEGV"}) == "not crashed"
    with pytest.raises(ChildDied, match="SIGABRT"):
        run_in_child(_injected, env={CRASH_ENV: "test-point:SIGABRT"})


def test_signal_names():
    assert signal_name(-11) == "SIGSEGV" and signal_name(3) == "exit code 3" and signal_name(None) == "no exit code"
