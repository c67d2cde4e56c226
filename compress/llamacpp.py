"""Small helpers around llama-cpp-python: load a GGUF quietly, quantize one, tokenize with it.

llama.cpp is the runtime of every GGUF artifact, so its own quantizer
(``llama_model_quantize``) makes the quantized types and its own tokenizer is the
reference for what a GGUF file means. Everything here imports ``llama_cpp`` lazily.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from compress.errors import RuntimeFailure, UserInputError
from compress.methods.gguf import GGUF_TYPES

#: Our type names (compress.methods.gguf.GGUF_TYPES) → llama.cpp ``llama_ftype`` constant names
#: (include/llama.h). Constant names rather than numbers, so a renumbering upstream cannot bite.
FTYPES = {t: f"LLAMA_FTYPE_{'ALL' if t == 'F32' else 'MOSTLY'}_{t}" for t in GGUF_TYPES}
_LOGGER = "llama-cpp-python"  # the logger llama-cpp-python routes llama.cpp's log through


def ftype(qtype: str) -> int:
    """The ``llama_ftype`` number of a type name such as ``Q4_K_M``."""
    import llama_cpp

    name = qtype.upper()
    if name not in FTYPES:
        raise UserInputError(f"GGUF type must be one of {', '.join(FTYPES)}, got {qtype!r}")
    return int(getattr(llama_cpp, FTYPES[name]))


def quiet() -> None:
    """Send only llama.cpp's errors to the terminal (its default is every info line)."""
    import llama_cpp  # noqa: F401  (importing installs llama-cpp-python's log callback)

    logging.getLogger(_LOGGER).setLevel(logging.ERROR)


def load_llama(path: Path | str, n_ctx: int = 512, n_threads: int | None = None, logits_all: bool = False,
               extra_buffer_types: bool = True, **kwargs: Any) -> Any:
    """A ``llama_cpp.Llama`` on ``path``, CPU threads defaulting to the cores this process may use.

    ``extra_buffer_types=False`` opens the weights without llama.cpp's extra CPU buffer types
    (``llama_model_params.use_extra_bufts``: the AMX and repacked-weight layouts), the fallback
    :func:`check_opens` chooses where those crash.
    """
    quiet()
    from llama_cpp import Llama

    threads = n_threads or len(os.sched_getaffinity(0))
    try:
        with _model_params(use_extra_bufts=extra_buffer_types):
            return Llama(model_path=str(path), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads,
                         logits_all=logits_all, verbose=False, **kwargs)
    except ValueError as err:  # llama-cpp-python's wording for "llama.cpp could not load it"
        raise RuntimeFailure(f"llama.cpp cannot load {path} ({err}): expected a GGUF of an architecture it knows") from None


@contextlib.contextmanager
def _model_params(**fields: Any) -> Iterator[None]:
    """Model parameters that ``Llama(...)`` has no argument for: its constructor starts from
    ``llama_model_default_params()``, so that function answers with ``fields`` set while inside."""
    import llama_cpp.llama_cpp as low

    if all(getattr(low.llama_model_default_params(), k) == v for k, v in fields.items()):
        yield
        return
    original = low.llama_model_default_params

    def with_fields() -> Any:
        params = original()
        for key, value in fields.items():
            setattr(params, key, value)
        return params

    low.llama_model_default_params = with_fields
    try:
        yield
    finally:
        low.llama_model_default_params = original


@dataclass(frozen=True)
class OpenCheck:
    """How llama.cpp can run a file on this machine: with its extra CPU buffer types or without,
    and why without (a crash with them, or the user's choice)."""

    extra_buffer_types: bool
    why: str | None = None

    def record_fields(self) -> dict[str, Any]:
        return {"extra_buffer_types": self.extra_buffer_types, "extra_buffer_types_why": self.why}


#: ``COMPRESS_LLAMA_EXTRA_BUFTS=0`` opens every file without the extra buffer types and skips the check.
EXTRA_BUFTS_ENV = "COMPRESS_LLAMA_EXTRA_BUFTS"
_CHECKED: dict[tuple[str, int, int, int], OpenCheck] = {}


def check_opens(path: Path | str, n_threads: int) -> OpenCheck:
    """Open ``path`` and evaluate a few tokens in a child process before this process does.

    A llama.cpp build may carry kernels that crash on this CPU: a build for the AMX of one Xeon
    died with a general protection fault on the first eval there, in the AMX / repacked-weight
    path that its extra CPU buffer types select. If the child dies on a signal, a second child
    tries without those buffer types; if that runs, so will this process, and the returned
    check says why. If that too dies, :class:`~compress.isolation.ChildDied` names the signal
    and the CPU. Answers are kept per file (path, size, mtime) and thread count.
    """
    from compress.isolation import ChildDied, run_in_child

    if os.environ.get(EXTRA_BUFTS_ENV, "").strip() == "0":
        return OpenCheck(False, f"turned off by {EXTRA_BUFTS_ENV}=0")
    stat = Path(path).stat()
    key = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns, n_threads)
    if key in _CHECKED:
        return _CHECKED[key]
    name = Path(path).name
    try:
        run_in_child(_try_open, str(path), n_threads, True, what=f"llama.cpp running {name}", timeout_s=600)
        check = OpenCheck(True)
    except ChildDied as first:
        run_in_child(_try_open, str(path), n_threads, False, timeout_s=600,
                     what=f"llama.cpp running {name} without its extra CPU buffer types")
        check = OpenCheck(False, f"with its extra CPU buffer types (AMX / repacked weights) llama.cpp died on "
                                 f"{first.signal_name} here; reopened without them")
    _CHECKED[key] = check
    return check


def _try_open(path: str, n_threads: int, extra_buffer_types: bool) -> None:
    """Open ``path`` as bench does and evaluate a short prompt, then one more token."""
    from compress.isolation import inject_crash

    if extra_buffer_types:
        inject_crash("llama.cpp-extra-bufts")
    inject_crash("llama.cpp-open")
    llm = load_llama(path, n_ctx=64, n_threads=n_threads, n_batch=64, n_ubatch=64,
                     extra_buffer_types=extra_buffer_types)
    try:
        prompt = llm.tokenize(b"The quick brown fox jumps over the lazy dog.", add_bos=True)[:32]
        llm.eval(prompt)
        llm.eval([prompt[-1]])
    finally:
        llm.close()


def gguf_tokenize(model: Any, text: str, add_bos: bool = False, special: bool = False) -> list[int]:
    """llama.cpp's token ids for ``text``; ``model`` is a loaded ``Llama`` or a GGUF path (vocabulary only)."""
    if isinstance(model, (str, Path)):
        with _captured_log():  # a vocabulary-only context warns that it knows no training length
            llm = load_llama(model, n_ctx=8, vocab_only=True)
        try:
            return gguf_tokenize(llm, text, add_bos=add_bos, special=special)
        finally:
            llm.close()
    return list(model.tokenize(text.encode("utf-8"), add_bos=add_bos, special=special))


@contextlib.contextmanager
def _captured_log() -> Iterator[list[str]]:
    """Collect llama.cpp's log lines while inside, so a failure can be reported in one line."""
    import llama_cpp
    from llama_cpp import _logger  # llama-cpp-python's own callback, put back afterwards

    lines: list[str] = []

    @llama_cpp.llama_log_callback
    def collect(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        lines.append(text.decode("utf-8", errors="replace"))

    llama_cpp.llama_log_set(collect, ctypes.c_void_p(0))
    try:
        yield lines
    finally:
        llama_cpp.llama_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))


def _kv_overrides(metadata: Mapping[str, str | int]) -> Any:
    """``metadata`` as the array of ``llama_model_kv_override`` the quantizer writes into its output,
    ended by an entry with an empty key (include/llama.h)."""
    import llama_cpp

    entries = (llama_cpp.llama_model_kv_override * (len(metadata) + 1))()
    for entry, (key, value) in zip(entries, sorted(metadata.items())):
        entry.key = key.encode()
        if isinstance(value, int):
            entry.tag, entry.value.val_i64 = llama_cpp.LLAMA_KV_OVERRIDE_TYPE_INT, value
        else:
            entry.tag, entry.value.val_str = llama_cpp.LLAMA_KV_OVERRIDE_TYPE_STR, str(value).encode()[:127]
    return entries


def quantize_gguf(src: Path, dst: Path, qtype: str, imatrix: Mapping[str, np.ndarray] | None = None,
                  metadata: Mapping[str, str | int] | None = None, n_threads: int | None = None,
                  allow_requantize: bool = False) -> list[str]:
    """Quantize the F32/F16 GGUF ``src`` into ``dst`` as ``qtype`` with llama.cpp's own quantizer.

    ``allow_requantize``: ``src`` may hold quantized tensors, which llama.cpp dequantizes
    before quantizing them again (``llama-quantize --allow-requantize``); the result can be no
    better than ``src``.

    ``imatrix`` maps a GGUF weight name (``blk.0.attn_q.weight``) to the mean of the squared
    input activations of each input column: the values ``llama-quantize`` hands the library
    after normalising its imatrix file (tools/quantize/quantize.cpp, ``load_imatrix``), passed
    as the null-terminated ``llama_model_imatrix_data`` array of include/llama.h.
    ``metadata`` adds string or integer keys to the output (``quantize.imatrix.*``, as llama-quantize does).
    Returns llama.cpp's log lines (they name the tensors that fell back to another type).

    The quantizer runs in a child process. Python handles a signal only between bytecodes, and
    inside the native call a Ctrl-C either waits for the call to end or is swallowed by the log
    callback ("Exception ignored on calling ctypes callback"); here this process only waits, so
    SIGINT (or SIGTERM turned into KeyboardInterrupt by the command) stops the child and removes
    ``dst`` at once.
    """
    import multiprocessing

    from compress.isolation import ChildDied, run_in_child

    ftype(qtype)  # an unknown type fails here, in one line, before a process starts
    if multiprocessing.current_process().daemon:
        # A daemonic process may not start children: quantize here (a signal then waits for the call).
        status, lines = _quantize_here(Path(src), Path(dst), qtype, imatrix, metadata, n_threads, allow_requantize)
        return _checked(status, lines, Path(src), Path(dst), qtype)
    try:
        status, lines = run_in_child(_quantize_child, str(src), str(dst), qtype, dict(imatrix) if imatrix else None,
                                     dict(metadata) if metadata else None, n_threads, allow_requantize,
                                     what=f"llama.cpp's quantizer ({qtype})")
    except ChildDied as died:
        status, lines = f"the quantizer process died on {died.signal_name}", []
    except BaseException:  # Ctrl-C, SIGTERM: the runner has stopped the child; nothing half-written stays
        with contextlib.suppress(OSError):
            Path(dst).unlink()
        raise
    return _checked(status, lines, Path(src), Path(dst), qtype)


def _checked(status: int | str, lines: list[str], src: Path, dst: Path, qtype: str) -> list[str]:
    """The log lines of a quantizer run that succeeded (``status`` 0); one line otherwise, with
    ``dst`` removed. ``status`` is llama.cpp's return code, or why the run could not start."""
    if status == 0:
        return lines
    with contextlib.suppress(OSError):
        dst.unlink()
    if isinstance(status, str):
        raise RuntimeFailure(f"llama.cpp could not quantize {src.name} to {qtype} ({status}): "
                             "expected an F32/F16 GGUF it can load and room for the output")
    errors = [line.strip() for line in lines if "error" in line.lower() or "failed" in line.lower()]
    why = errors[-1] if errors else "no reason logged"
    raise RuntimeFailure(f"llama.cpp could not quantize {src.name} to {qtype} ({why}): "
                         "expected an F32/F16 GGUF it can load")


def _quantize_child(src: str, dst: str, qtype: str, imatrix: dict[str, np.ndarray] | None,
                    metadata: dict[str, str | int] | None, n_threads: int | None,
                    allow_requantize: bool) -> tuple[int | str, list[str]]:
    """The quantizer process (:func:`compress.isolation.run_in_child`): llama.cpp's quantizer's
    (status, log lines), or (reason, []) when it could not start."""
    import signal

    # A Ctrl-C at the terminal reaches the whole process group: the parent decides, this one ignores it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return _quantize_here(Path(src), Path(dst), qtype, imatrix, metadata, n_threads, allow_requantize)
    except Exception as err:  # any failure goes back as one line; the parent raises it
        return f"{type(err).__name__}: {err}", []


def _quantize_here(src: Path, dst: Path, qtype: str, imatrix: Mapping[str, np.ndarray] | None,
                   metadata: Mapping[str, str | int] | None, n_threads: int | None,
                   allow_requantize: bool = False) -> tuple[int, list[str]]:
    """Call ``llama_model_quantize`` in this process; returns its status and log lines."""
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype(qtype)
    params.allow_requantize = allow_requantize
    params.nthread = n_threads or len(os.sched_getaffinity(0))
    keep_alive: list[Any] = []
    if imatrix:
        entries = (llama_cpp.llama_model_imatrix_data * (len(imatrix) + 1))()
        for entry, (name, values) in zip(entries, sorted(imatrix.items())):
            array = np.ascontiguousarray(values, dtype=np.float32)
            keep_alive += [name.encode(), array]
            entry.name = keep_alive[-2]
            entry.data = array.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
            entry.size = array.size
        entries[len(imatrix)].name = None  # the terminator the library looks for
        params.imatrix = entries
    if metadata:
        keep_alive.append(_kv_overrides(metadata))
        params.kv_overrides = keep_alive[-1]
    with _captured_log() as lines:
        status = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    return int(status), lines


def build_features(system_info: str) -> list[str]:
    """The features a llama.cpp build was compiled with, in its order, from the text of
    ``llama_print_system_info`` (``CPU : SSE3 = 1 | AVX2 = 1 | AVX512 = 0 | ...``)."""
    on = []
    for part in system_info.replace("\n", "|").split("|"):
        name, _, value = part.rpartition("=")
        name = name.split(":")[-1].strip()
        if value.strip() == "1" and name:
            on.append(name)
    return on


def tensor_types(path: Path) -> dict[str, int]:
    """How many tensors of each ggml type a GGUF holds, e.g. ``{"Q4_K": 150, "F32": 61}``."""
    from gguf import GGUFReader

    return dict(sorted(Counter(t.tensor_type.name for t in GGUFReader(str(path)).tensors).items()))
