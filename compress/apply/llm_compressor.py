"""FP8 and INT8 W8A8 checkpoints through llm-compressor, in the compressed-tensors format.

llm-compressor is the maintained library behind the W8A8 checkpoints vLLM serves natively:
its output carries ``quantization_config`` with ``quant_method: compressed-tensors`` and a
``format`` (``float-quantized`` for FP8, ``int-quantized`` for INT8) that vLLM's
CompressedTensors loader maps to its CUTLASS W8A8 kernels (FP8 Marlin as weight-only on
GPUs below sm89; oneDNN INT8 on CPUs).

- ``fp8``: FP8 E4M3 weights with one scale per output channel, activations quantized per
  token at run time (the ``FP8_DYNAMIC`` scheme). Needs no calibration data.
- ``w8a8``: INT8 weights (per channel, GPTQ) and INT8 activations (dynamic per token), after
  SmoothQuant moves activation outliers into the weights (the ``W8A8`` scheme).

transformers loads both on the CPU too (compressed-tensors decompresses them into 16-bit
linear layers: right outputs, no speed or memory gain), so the artifact's runtime is
transformers and vLLM serves it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from compress import engines
from compress.apply import Job
from compress.errors import RuntimeFailure, UserInputError

#: compressed-tensors preset scheme of each method (compressed_tensors.quantization.quant_scheme).
SCHEMES = {"fp8": "FP8_DYNAMIC", "w8a8": "W8A8"}
#: Modules left in 16 bits: the output head decides every token's distribution, and vLLM's
#: W8A8 kernels serve decoder linear layers only.
IGNORE = ["lm_head"]


def _check_strength(strength: float) -> float:
    """SmoothQuant's migration strength alpha: 0 keeps activations as they are, 1 moves all
    of their range into the weights (Xiao et al. 2023, eq. 4); 0.8 is llm-compressor's
    W8A8 example setting."""
    if not 0 < strength < 1:
        raise UserInputError(f"SmoothQuant strength is a fraction in (0, 1), got {strength}")
    return strength


def _version() -> str:
    from importlib.metadata import version

    return version("llmcompressor")


def _dataset(job: Job, tokenizer: Any) -> Any:
    """Calibration windows as the tokenized dataset llm-compressor's pipelines take."""
    from datasets import Dataset

    windows = job.calibration_windows(tokenizer)
    return Dataset.from_dict({"input_ids": windows, "attention_mask": [[1] * len(w) for w in windows]})


def compress_checkpoint(job: Job, recipe: Callable[[], list[Any]], method: str, calibrate: bool) -> dict[str, Any]:
    """Run the modifiers ``recipe()`` builds through llm-compressor's oneshot on ``job``'s
    model and save it compressed. The recipe is built inside the quiet session, since
    importing llm-compressor already logs."""
    from compress.apply.gptq import gptqmodel_session, to_float16
    from compress.model.config import read_config
    from compress.loading import load_tokenizer, trust_remote_code

    folder = Path(job.hf_dir()).resolve()
    out_dir = Path(job.out_dir).resolve()
    layers = int(read_config(folder).get("num_hidden_layers") or 0)
    tokenizer = load_tokenizer(folder)
    dataset = _dataset(job, tokenizer) if calibrate else None
    if dataset is not None:
        job.log(f"{method}: {len(dataset)} calibration windows × {job.options.calib_seq_len} tokens, {layers} layers")
    # llm-compressor logs through loguru and tqdm on both streams; the session sends that
    # to a log file and keeps our own lines on the terminal.
    with gptqmodel_session(f"llmcompressor-{method}") as (log_path, terminal):
        import torch
        from llmcompressor import oneshot
        from transformers import AutoModelForCausalLM

        print(f"{method}: quantizing {layers} layers with llm-compressor", file=terminal)
        # Half-precision matmuls are emulated on most CPUs (see compress.apply.gptq): the CPU
        # calibrates in float32, and the saved checkpoint is cast to float16 below. On CUDA
        # the model stays in host memory in its own dtype and llm-compressor's pipelines move
        # one layer at a time to the GPU, so models larger than the GPU quantize too.
        dtype = torch.float32 if job.device == "cpu" else "auto"
        try:
            model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=dtype,
                                                         trust_remote_code=trust_remote_code())
            kwargs: dict[str, Any] = {}
            if dataset is not None:
                kwargs = {"dataset": dataset, "processor": tokenizer, "max_seq_length": job.options.calib_seq_len,
                          "num_calibration_samples": len(dataset)}
            oneshot(model=model, recipe=recipe(), **kwargs)
            model.save_pretrained(str(out_dir), save_compressed=True)
        except (ValueError, RuntimeError, NotImplementedError, AssertionError, TypeError) as err:
            raise RuntimeFailure(f"llm-compressor failed to quantize with {method} ({type(err).__name__}: {err}); "
                                 f"its log is {log_path}") from None
    tokenizer.save_pretrained(out_dir)
    if job.device == "cpu":
        to_float16(out_dir)  # calibrated in float32: scales, norms and embeddings to fp16
    saved = read_config(out_dir)
    quant = saved.get("quantization_config") or {}
    if quant.get("quant_method") != "compressed-tensors":
        raise RuntimeFailure(f"llm-compressor wrote no compressed-tensors quantization_config into {out_dir}; "
                             f"its log is {log_path}")
    job.log(f"{method}: llm-compressor's log is {log_path}")
    return {"format": "hf", "runtime": "transformers", "loads_in": engines.loading("hf", method, job.config),
            "quant_method": "compressed-tensors",
            "quant_format": quant.get("format"), "ignore": IGNORE, "dtype": saved.get("dtype") or saved.get("torch_dtype"),
            "quantizer": f"llmcompressor {_version()}", "log": str(log_path)}


def apply_fp8(job: Job) -> dict[str, Any]:
    """FP8 E4M3 weights per channel, dynamic per-token FP8 activations; no calibration data."""
    scheme = job.config.get("scheme", SCHEMES["fp8"])

    def recipe() -> list[Any]:
        from llmcompressor.modifiers.quantization import QuantizationModifier

        return [QuantizationModifier(targets="Linear", scheme=scheme, ignore=IGNORE)]

    info = compress_checkpoint(job, recipe, "fp8", calibrate=False)
    return {**info, "scheme": scheme, "weights": "float8_e4m3fn per channel", "activations": "float8 per token, dynamic"}


def apply_w8a8(job: Job) -> dict[str, Any]:
    """SmoothQuant, then GPTQ to INT8 weights per channel with dynamic per-token INT8 activations."""
    scheme = job.config.get("scheme", SCHEMES["w8a8"])
    strength = _check_strength(float(job.config.get("smoothing_strength", 0.8)))

    def recipe() -> list[Any]:
        from llmcompressor.modifiers.quantization import GPTQModifier
        from llmcompressor.modifiers.smoothquant import SmoothQuantModifier

        return [SmoothQuantModifier(smoothing_strength=strength),
                GPTQModifier(targets="Linear", scheme=scheme, ignore=IGNORE)]

    info = compress_checkpoint(job, recipe, "w8a8", calibrate=True)
    return {**info, "scheme": scheme, "smoothing_strength": strength, "weights": "int8 per channel (GPTQ)",
            "activations": "int8 per token, dynamic"}
