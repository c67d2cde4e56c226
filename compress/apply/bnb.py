"""bitsandbytes NF4, FP4 and INT8 (LLM.int8), saved as serialized quantized checkpoints.

bitsandbytes quantizes while transformers loads the weights; saving that model
writes the packed 4-bit or 8-bit weights with their quantization state, so the
artifact reloads without quantizing again. From bitsandbytes 0.45 on every mode
here also runs on the CPU, so nothing is refused for want of CUDA.
"""

from __future__ import annotations

from typing import Any

from compress import engines
from compress.apply import Job
from compress.errors import UnsupportedError, UserInputError
from compress.loading import DTYPES, load_causal_lm, load_tokenizer, torch_dtype

QUANT_TYPES = ("nf4", "fp4", "int8")
#: Unquantized tensors (embeddings, norms, the LM head) are stored in this dtype.
STORAGE_DTYPE = "float16"
#: What 4-bit matmuls compute in unless --compute-dtype says otherwise: half precision on CUDA;
#: float32 on the CPU, where half-precision matmuls are emulated without AVX512-BF16/FP16.
#: LLM.int8 casts its inputs to float16 whatever is asked.
DEFAULT_COMPUTE_DTYPE = {"cpu": "float32", "cuda": "float16"}


def bnb_settings(config: dict[str, Any], device: str = "cpu") -> tuple[str, bool, str]:
    """Validate a variant's config; returns ``(quant_type, double_quant, compute_dtype)``."""
    quant_type = config.get("quant_type", "nf4")
    if quant_type not in QUANT_TYPES:
        raise UserInputError(f"bitsandbytes quant type must be one of {', '.join(QUANT_TYPES)}, got {quant_type!r}")
    double_quant = bool(config.get("double_quant", quant_type != "int8"))
    if quant_type == "int8" and double_quant:
        raise UnsupportedError("double quantization applies to bitsandbytes 4-bit (nf4, fp4), not int8: "
                               "drop --double-quant or pick nf4")
    compute_dtype = config.get("compute_dtype") or DEFAULT_COMPUTE_DTYPE["cpu" if device == "cpu" else "cuda"]
    if compute_dtype not in DTYPES:
        raise UserInputError(f"--compute-dtype must be one of {', '.join(DTYPES)}, got {compute_dtype!r}")
    return quant_type, double_quant, compute_dtype


def quantization_config(quant_type: str, double_quant: bool, compute_dtype: str) -> Any:
    from transformers import BitsAndBytesConfig

    if quant_type == "int8":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=quant_type,
                              bnb_4bit_use_double_quant=double_quant, bnb_4bit_compute_dtype=torch_dtype(compute_dtype))


def apply(job: Job) -> dict[str, Any]:
    quant_type, double_quant, compute_dtype = bnb_settings(job.config, job.device)
    folder = job.hf_dir()
    job.log(f"bitsandbytes: quantizing to {quant_type} while loading ({compute_dtype}, double quant {double_quant})")
    model = load_causal_lm(folder, dtype=STORAGE_DTYPE, device_map=job.device,
                           quantization_config=quantization_config(quant_type, double_quant, compute_dtype))
    model.save_pretrained(job.out_dir)
    load_tokenizer(folder).save_pretrained(job.out_dir)
    from importlib.metadata import version

    return {"format": "hf", "runtime": "transformers", "quant_type": quant_type,
            "loads_in": engines.loading("hf", "bnb", {"quant_type": quant_type}),
            "double_quant": double_quant, "compute_dtype": compute_dtype, "dtype": STORAGE_DTYPE, "quantizer": f"bitsandbytes {version('bitsandbytes')}"}
