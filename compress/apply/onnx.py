"""ONNX export with dynamic INT8 quantization, for onnxruntime on CPUs and edge devices.

The causal LM is exported once with ``torch.onnx.export`` (the dynamo exporter) as a
plain ``(input_ids, attention_mask) -> logits`` graph with dynamic batch and sequence
length. There is **no KV cache**: every generated token runs the whole sequence again,
which suits scoring and short generations, not long chat. The float32 graph is then
quantized by ``onnxruntime.quantization.quantize_dynamic``: int8 weights, activations
quantized on the fly per batch, so no calibration text is needed.

Artifact: ``model.onnx`` (``model.onnx.data`` beside it when the weights pass protobuf's
2 GiB limit), the tokenizer, and ``onnx_io.json`` naming the inputs and outputs.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from compress import engines
from compress.apply import Job
from compress.errors import UnsupportedError, UserInputError
from compress.loading import load_causal_lm, load_tokenizer

MODEL_FILE = "model.onnx"
IO_FILE = "onnx_io.json"
INPUTS = ("input_ids", "attention_mask")
OUTPUTS = ("logits",)
WEIGHT_TYPES = ("int8",)
#: A protobuf message cannot pass 2 GiB; past this the weights go to an external data file.
PROTOBUF_LIMIT_BYTES = 2**31 - 2**26


def _logits_module(model: Any) -> Any:
    """The causal LM as a module with positional tensor inputs and a single logits output."""
    import torch

    class Logits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits

    return Logits().eval()


def export_onnx(model: Any, path: Path, max_seq_len: int) -> None:
    """Export ``model`` (a float32 causal LM) to ``path`` with dynamic batch and sequence axes."""
    import torch

    example = torch.ones((1, 8), dtype=torch.long)
    batch, sequence = torch.export.Dim("batch", max=1024), torch.export.Dim("sequence", min=2, max=max_seq_len)
    shapes = {name: {0: batch, 1: sequence} for name in INPUTS}
    large = sum(p.numel() * p.element_size() for p in model.parameters()) > PROTOBUF_LIMIT_BYTES
    with torch.no_grad():
        torch.onnx.export(_logits_module(model), (example, torch.ones_like(example)), str(path), dynamo=True,
                          input_names=list(INPUTS), output_names=list(OUTPUTS), dynamic_shapes=shapes,
                          external_data=large, verbose=False)


def quantize_int8(source: Path, target: Path) -> None:
    """Dynamic quantization: int8 weights, per-batch activation ranges (no calibration)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    large = source.stat().st_size + sum(p.stat().st_size for p in source.parent.glob("*.data")) > PROTOBUF_LIMIT_BYTES
    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, use_external_data_format=large)


def apply(job: Job) -> dict[str, Any]:
    weight_type = job.config.get("weight_type", "int8")
    if weight_type not in WEIGHT_TYPES:
        raise UnsupportedError(f"ONNX dynamic quantization here takes weight type int8, got {weight_type!r}")
    folder = job.hf_dir()
    model = load_causal_lm(folder, dtype="float32", device="cpu")
    max_seq_len = int(getattr(model.config, "max_position_embeddings", 2048) or 2048)
    with tempfile.TemporaryDirectory(prefix="compress-onnx-") as scratch:
        fp32 = Path(scratch) / "model-fp32.onnx"
        job.log("onnx: exporting the float32 graph (no KV cache; dynamic batch and sequence)")
        _quietly(export_onnx, model, fp32, max_seq_len)
        del model
        job.log("onnx: quantizing weights to int8 (dynamic)")
        _quietly(quantize_int8, fp32, job.out_dir / MODEL_FILE)
    load_tokenizer(folder).save_pretrained(job.out_dir)
    io = {"inputs": list(INPUTS), "outputs": list(OUTPUTS), "dynamic_axes": ["batch", "sequence"],
          "max_sequence_length": max_seq_len, "kv_cache": False, "weight_type": weight_type,
          "activations": "float32, quantized per batch at run time"}
    (job.out_dir / IO_FILE).write_text(json.dumps(io, indent=2))
    from importlib.metadata import version

    return {"format": "onnx", "runtime": "onnxruntime", "file": MODEL_FILE,
            "loads_in": engines.loading("onnx", "onnx", job.config), "kv_cache": False, "weight_type": weight_type,
            "quantizer": f"onnxruntime {version('onnxruntime')}"}


def _quietly(function: Any, *args: Any) -> None:
    """Run an exporter step with its progress prints and advisory warnings kept off the terminal."""
    import contextlib
    import io
    import logging
    import warnings

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # onnxruntime's quantizer advises pre-processing on the root logger
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            function(*args)
    finally:
        root.setLevel(level)


# --- loading and running ------------------------------------------------------------------------

def providers() -> list[str]:
    """onnxruntime execution providers, CUDA first where the onnxruntime-gpu package offers it."""
    import onnxruntime

    available = onnxruntime.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


def load_onnx_session(folder: Path) -> tuple[Any, Any]:
    """An onnxruntime session on the artifact's ``model.onnx`` and its tokenizer."""
    import onnxruntime

    path = Path(folder) / MODEL_FILE
    if not path.is_file():
        raise UserInputError(f"{folder} has no {MODEL_FILE}: expected a folder written by `compress apply --method onnx-int8`")
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only: the CPU provider reports every fused node otherwise
    session = onnxruntime.InferenceSession(str(path), sess_options=options, providers=providers())
    return session, load_tokenizer(Path(folder))


def onnx_logits(session: Any, input_ids: Any) -> Any:
    """Logits (numpy, batch × sequence × vocab) for a batch of token ids with no padding."""
    import numpy as np

    ids = np.asarray(input_ids, dtype=np.int64)
    return session.run(list(OUTPUTS), {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0]


def greedy_generate(session: Any, input_ids: list[int], max_new_tokens: int) -> list[int]:
    """Greedy decoding; with no KV cache in the graph each step runs the whole sequence."""
    ids = list(input_ids)
    for _ in range(max_new_tokens):
        ids.append(int(onnx_logits(session, [ids])[0, -1].argmax()))
    return ids
