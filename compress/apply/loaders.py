"""Load an artifact written by ``compress apply`` back into transformers.

One entry point for every Hugging Face-format artifact (baseline, GPTQ, AWQ,
bitsandbytes, pruned, layer-dropped, distilled): the checkpoint's own
``quantization_config`` tells transformers how to rebuild the layers, so loading
differs only in where the weights go. GPTQ and AWQ layers come from GPTQModel's
kernels (transformers delegates to it), whose import prints, so it runs in
:func:`compress.apply.gptq.gptqmodel_session`. ONNX artifacts load with
:func:`compress.apply.onnx.load_onnx_session`.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from compress.errors import UserInputError
from compress.methods.groups import USUAL_GROUP_SIZES

#: ``quantization_config.quant_method`` values whose layers GPTQModel provides.
GPTQMODEL_METHODS = ("gptq", "awq")
#: Group sizes torch's int4 CPU matmul (``_weight_int4pack_mm_cpu``) accepts: the usual ones
#: (compress.methods.groups). GPTQModel picks that kernel for 4-bit layers on the CPU whatever
#: the group size, and per-channel (-1) checkpoints then fail at the first forward; its plain
#: torch kernels take any group size.
ATEN_INT4_GROUP_SIZES = USUAL_GROUP_SIZES
#: transformers' backend names for GPTQModel's plain torch kernels.
TORCH_KERNELS = {"gptq": "gptq_torch", "awq": "torch_awq"}


def quantization_config(folder: Path) -> dict[str, Any]:
    """The checkpoint's ``quantization_config`` from its config.json; empty for plain weights."""
    file = Path(folder) / "config.json"
    if not file.is_file():
        onnx_hint = " (an ONNX artifact loads with compress.apply.onnx.load_onnx_session)" \
            if (Path(folder) / "model.onnx").is_file() else ""
        raise UserInputError(f"{folder} has no config.json: expected a Hugging Face artifact{onnx_hint}")
    return json.loads(file.read_text()).get("quantization_config") or {}


def kernel_override(quant: dict[str, Any], device: str) -> Any:
    """A transformers config that picks GPTQModel's torch kernel where its automatic choice fails."""
    method = str(quant.get("quant_method", "")).lower()
    if method not in GPTQMODEL_METHODS or device != "cpu" or quant.get("bits") != 4 \
            or quant.get("group_size") in ATEN_INT4_GROUP_SIZES:
        return None
    from transformers import AwqConfig, GPTQConfig

    config_class = GPTQConfig if method == "gptq" else AwqConfig
    return config_class(bits=4, backend=TORCH_KERNELS[method])


def load_artifact(folder: Path, device: str = "cpu", dtype: str = "auto") -> tuple[Any, Any]:
    """Load a Hugging Face artifact onto ``device`` in eval mode; returns ``(model, tokenizer)``.

    ``dtype="auto"`` keeps the dtype the checkpoint was saved in on CUDA and means float32
    on the CPU, where half-precision matmuls are emulated on CPUs without AVX512-BF16/FP16
    (20x slower here). Quantized layers keep their packed weights either way.
    """
    from compress.loading import load_tokenizer, quiet_libraries, torch_dtype, trust_remote_code

    quiet_libraries()
    folder = Path(folder).resolve()
    if dtype == "auto" and device == "cpu":
        dtype = "float32"
    quant = quantization_config(folder)
    method = str(quant.get("quant_method", "")).lower()
    session = contextlib.nullcontext()
    kwargs: dict[str, Any] = {}
    if method in GPTQMODEL_METHODS:
        from compress.apply.gptq import gptqmodel_session

        session = gptqmodel_session(f"load-{method}")
        if (override := kernel_override(quant, device)) is not None:
            kwargs["quantization_config"] = override
    with session:
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=dtype if dtype == "auto" else torch_dtype(dtype),
                                                     device_map=device, trust_remote_code=trust_remote_code(),
                                                     **kwargs)
    return model.eval(), load_tokenizer(folder)

