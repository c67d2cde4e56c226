"""The planner: which compression fits a model on a GPU (or this CPU), how fast, at what cost.

Pure and torch-free: TOML profiles in, predictions out, in a fraction of a second.

    make_plan(model, gpu="auto", *, context=None, batch=1, gpus=1, headroom_gib=0.5,
              objective="balanced", kv_dtype="fp16") -> Plan
    load_model_spec(name_or_path) -> ModelSpec
    load_gpu(name) -> GpuProfile          ("cpu"/"host": this machine, "auto": NVML detect)
    predict_variant(spec, gpu, variant_name, context=None, batch=1) -> dict
    artifact_bytes(spec, variant_name) -> int
"""

from compress.planner.hardware import GpuProfile, list_gpus, load_gpu
from compress.planner.plan import Plan, PlanOptions, make_plan
from compress.planner.predict import artifact_bytes, predict_variant
from compress.planner.spec import ModelSpec, catalog, load_model_spec

__all__ = ["GpuProfile", "ModelSpec", "Plan", "PlanOptions", "artifact_bytes", "catalog", "list_gpus",
           "load_gpu", "load_model_spec", "make_plan", "predict_variant"]
