"""The planner: which compression fits a model on a GPU (or this CPU), how fast, at what cost.

Pure and torch-free: TOML profiles in, predictions out, in a fraction of a second.

    make_plan(model, gpu="auto", *, context=None, batch=1, gpus=1, headroom_gib=0.5,
              objective="balanced", kv_dtype="fp16") -> Plan
    load_model_spec(name_or_path) -> ModelSpec
    load_gpu(name) -> GpuProfile          ("cpu"/"host": this machine, "auto": NVML detect)
    predict_variant(spec, gpu, variant_name, context=None, batch=1) -> dict
    artifact_bytes(spec, variant_name) -> int

The names above resolve on first use, so importing one planner module (``profiles``, which
every layer reads) does not import the whole planner.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name → the module that defines it.
_EXPORTS = {
    "GpuProfile": "compress.planner.hardware", "list_gpus": "compress.planner.hardware",
    "load_gpu": "compress.planner.hardware", "Plan": "compress.planner.plan",
    "PlanOptions": "compress.planner.plan", "make_plan": "compress.planner.plan",
    "artifact_bytes": "compress.planner.predict", "predict_variant": "compress.planner.predict",
    "ModelSpec": "compress.model.spec", "catalog": "compress.model.catalog",
    "load_model_spec": "compress.planner.spec",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'compress.planner' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


__all__ = sorted(_EXPORTS)
