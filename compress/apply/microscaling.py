"""NVFP4/MXFP4 artifacts are not written yet: the planner sizes them, apply says so."""

from __future__ import annotations

from typing import Any

from compress.errors import UnsupportedError


def apply(job: Any) -> dict[str, Any]:
    raise UnsupportedError(f"{job.config.get('format', 'nvfp4/mxfp4')} is planned only: `compress apply` cannot "
                           "write it yet; use another variant (e.g. q4_k_m or gptq-4-g128)")
