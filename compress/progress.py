"""Progress of long steps on stderr, and the quieting of other libraries' chatter.

A step that can take more than a few seconds (perplexity windows, timed repetitions,
calibration, layers of GPTQ/AWQ) reports through :func:`steps`. It draws a transient bar on
stderr only when stderr is a terminal and ``--quiet`` was not given (``COMPRESS_QUIET``), so
pipes, logs and CI stay clean (they get the one-line steps the commands print). Every bar shows
the time elapsed and an estimate of the time left (:func:`new_bar`). The steps' bar is redrawn only when a step completes, never from a
background thread, so it does not compete with the timed work for the CPU.

:func:`quiet_third_party` silences library messages a user cannot act on (an optional
kernel package that bitsandbytes looks for on every import, advisory warnings); ``--verbose``
(``COMPRESS_VERBOSE``) keeps them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any, TextIO

QUIET_ENV = "COMPRESS_QUIET"
VERBOSE_ENV = "COMPRESS_VERBOSE"

# Loggers whose warnings are not actionable for a user of this tool, with why:
NOISY_LOGGERS = (
    # "Failed to load CPU gemm_4bit_forward from kernels-community: No module named 'kernels'" on
    # every import on AVX512-BF16 CPUs: an optional accelerated kernel; the built-in one is used.
    "bitsandbytes",
    # optional CUDA extensions reported missing on a CPU build of torchao
    "torchao",
    # enum registrations torch warns about on import
    "torch.utils._pytree",
)


def verbose() -> bool:
    return bool(os.environ.get(VERBOSE_ENV))


def enabled() -> bool:
    """Whether to draw progress: stderr is a terminal and nobody asked for quiet."""
    if os.environ.get(QUIET_ENV):
        return False
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def quiet_third_party() -> None:
    """Raise the noisy libraries' loggers to ERROR, unless ``--verbose``. Imports nothing heavy."""
    if verbose():
        return
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


def new_bar(file: TextIO | None = None, fields: tuple[Any, ...] = (), auto_refresh: bool = True) -> Any:
    """A transient rich bar on stderr (or ``file``): the step, the bar, done/total, any ``fields``
    columns, the time elapsed and the time left as estimated from the pace so far.

    The caller has decided that a bar is wanted (:func:`enabled`)."""
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    console = Console(file=file) if file is not None else Console(stderr=True)
    return Progress(TextColumn("  {task.description}"), BarColumn(bar_width=20), MofNCompleteColumn(), *fields,
                    TimeElapsedColumn(), TextColumn("elapsed,"), TimeRemainingColumn(), TextColumn("left"),
                    console=console, transient=True, auto_refresh=auto_refresh)


@contextlib.contextmanager
def steps(description: str, total: int) -> Iterator[Callable[[], None]]:
    """``with steps("perplexity windows", n) as done: ... done()`` once a step: a bar on stderr."""
    if not enabled() or total < 1:
        yield lambda: None
        return
    progress = new_bar(auto_refresh=False)
    task = progress.add_task(description, total=total)

    def done() -> None:
        progress.update(task, advance=1)
        progress.refresh()

    with progress:
        progress.refresh()
        yield done


@contextlib.contextmanager
def waiting(description: str) -> Iterator[None]:
    """A spinner with the elapsed time for one long step that reports no progress of its own
    (dequantizing a GGUF, loading a model). Never around timed work: it redraws from a thread."""
    if not enabled():
        yield
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn(description), TimeElapsedColumn(), TextColumn("elapsed"),
                  console=Console(stderr=True), transient=True) as spinner:
        spinner.add_task(description, total=None)
        yield
