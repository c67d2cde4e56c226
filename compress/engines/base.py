"""What every engine descriptor declares.

An engine (a runtime that serves or measures an artifact) is one class, an :class:`Engine`
subclass in ``compress/engines/<name>.py``, that answers what the rest of the system asks
about it:

- which artifacts it opens: :attr:`Engine.formats` and :meth:`Engine.loads` (written into
  a manifest's ``loads_in`` by ``compress apply``);
- where its numbers live: :meth:`Engine.profile_rows` names its tables in
  ``profiles/runtimes.toml`` (efficiencies, memory model, batch efficiency, speed band) and
  :meth:`Engine.profile` reads its ``[runtime.<name>]`` table;
- what the planner asks of it: :attr:`Engine.gpu_rule` (the ``profiles/kernels.toml`` row a
  GPU must meet to run it at all), :attr:`Engine.cpu_kernel` (its CPU kernel where the
  method has none of its own), :attr:`Engine.sparse_2_4` (2:4 sparse kernels);
- how a review serves it: :meth:`Engine.serve_command` and :meth:`Engine.artifact_file`;
- how ``compress bench`` runs it: :attr:`Engine.adapter`, a lazy ``"module:Class"``
  string (see ``compress/measure/runtimes.py`` for the adapter interface), and
  :attr:`Engine.serves` (it runs the served tests behind an HTTP server).

Nothing here imports torch or the engine itself: the planner reads descriptors.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar


class Engine:
    """Base of every engine descriptor; the defaults describe an engine with no server."""

    name: ClassVar[str]
    #: Artifact formats (a manifest's ``format``) it opens.
    formats: ClassVar[tuple[str, ...]] = ()
    #: The bench adapter, ``"module:Class"``; None where bench cannot run the engine.
    adapter: ClassVar[str | None] = None
    #: The ``profiles/kernels.toml`` row a GPU must meet to run the engine at all.
    gpu_rule: ClassVar[str | None] = None
    #: ``(kernel, speed key)`` on the CPU where the method has no CPU kernel of its own.
    cpu_kernel: ClassVar[tuple[str, str] | None] = None
    #: Whether it serves 2:4-sparse checkpoints with sparse tensor-core kernels.
    sparse_2_4: ClassVar[bool] = False
    #: Whether bench runs its served tests (an OpenAI-compatible server) on it.
    serves: ClassVar[bool] = False

    @classmethod
    def loads(cls, fmt: str, method: str, config: Mapping[str, Any]) -> bool:
        """Whether it opens an artifact of format ``fmt`` written by ``method`` with ``config``."""
        return fmt in cls.formats

    @classmethod
    def profile_rows(cls) -> tuple[str, ...]:
        """The tables of ``profiles/runtimes.toml`` that hold its numbers (where it has them)."""
        key = f'"{cls.name}"' if "." in cls.name else cls.name
        return (f"runtime.{key}", f"batch_efficiency.{key}", f"speed_band.{key}")

    @classmethod
    def profile(cls) -> dict[str, Any]:
        """Its ``[runtime.<name>]`` table: efficiencies, overheads and memory model, with sources."""
        from compress.planner import profiles

        return dict(profiles.load("runtimes.toml")["runtime"][cls.name])

    @classmethod
    def artifact_file(cls, folder: str, source_name: str, candidate: Mapping[str, Any]) -> str:
        """What its server opens of an artifact of model ``source_name`` that ``compress apply``
        wrote to ``folder``."""
        return folder

    @classmethod
    def serve_command(cls, artifact: str, candidate: Mapping[str, Any], context: int, batch: int, gpus: int,
                      on_gpu: bool) -> str | None:
        """The shell line that serves ``artifact`` (already quoted) at ``context`` tokens for
        ``batch`` sequences over ``gpus`` GPUs; None where the engine has no server."""
        return None
