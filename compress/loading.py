"""Loading models into torch: device choice, GGUF → Hugging Face conversion, dtypes.

Methods that work on Hugging Face weights (GPTQ, AWQ, bitsandbytes, pruning,
distillation, ONNX) call :func:`hf_checkpoint` to get a folder; a GGUF source is
dequantized once by transformers and cached as safetensors keyed by its fingerprint.

Every load passes ``trust_remote_code`` explicitly, so transformers never asks on
the terminal whether to run a folder's code: it is ``False`` unless the command
runs inside :func:`remote_code` with the user's ``--trust-remote-code``.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from compress.dtypes import DTYPES, torch_dtype
from compress.errors import UnsupportedError, UserInputError
from compress.fsutil import atomic_dir
from compress.model.config import read_config
from compress.paths import cache_dir
from compress.sources import Source

# DTYPES and torch_dtype live in compress.dtypes (a leaf module, so synthetic can use them
# without importing this module, which imports sources, which imports synthetic).


_TRUST_REMOTE_CODE: contextvars.ContextVar[bool] = contextvars.ContextVar("trust_remote_code", default=False)


@contextlib.contextmanager
def remote_code(allowed: bool) -> Iterator[None]:
    """Within this block, loads run a model folder's own code only if ``allowed``."""
    token = _TRUST_REMOTE_CODE.set(bool(allowed))
    try:
        yield
    finally:
        _TRUST_REMOTE_CODE.reset(token)


def trust_remote_code() -> bool:
    """The ``trust_remote_code`` value every transformers load passes (False by default)."""
    return _TRUST_REMOTE_CODE.get()


def quiet_libraries() -> None:
    """Keep library chatter (progress bars of weight loading, advisory warnings) off the terminal."""
    from compress.progress import quiet_third_party, verbose

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # torchao (pulled in by transformers' quantizer checks) reports its optional CUDA
    # extensions missing on a CPU build, torch warns about its enum registrations, and
    # bitsandbytes about an optional kernel package: compress.progress.NOISY_LOGGERS.
    quiet_third_party()
    if verbose():
        return
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    logging.getLogger("transformers").setLevel(logging.ERROR)


def pick_device(requested: str = "auto") -> str:
    """``auto`` → ``cuda`` when a CUDA device is present, else ``cpu``."""
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested not in ("cpu", "cuda") and not requested.startswith("cuda:"):
        raise UserInputError(f"device must be auto, cpu or cuda[:N], got {requested!r}")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise UnsupportedError(f"device {requested!r} asked for, but torch sees no CUDA device: use --device cpu")
    return requested


#: Increased whenever what a dequantized copy holds changes, so copies made before are not reused.
#: 2: the tokenizer splits text as the GGUF's ``tokenizer.ggml.pre`` says (:func:`_split_as_gguf`).
#: 3: a SentencePiece vocabulary splits text as llama.cpp does (:func:`_spm_as_gguf`).
DEQUANTIZED_VERSION = 3


def _dequantized_dir(source: Source) -> Path:
    return cache_dir("dequantized") / f"{source.path.stem}-{source.fingerprint()}-v{DEQUANTIZED_VERSION}"


def _split_as_gguf(tokenizer_json: Path, gguf_path: Path) -> None:
    """Give a dequantized copy's tokenizer the pre-tokenizer llama.cpp uses for the GGUF.

    transformers builds every GGUF byte-level BPE vocabulary with GPT-2's split and ignores
    ``tokenizer.ggml.pre``. SmolLM's ("smollm") splits digits apart first, so "Press,  2004"
    ended in two one-space tokens where llama.cpp, and SmolLM's own tokenizer.json, make one
    token of both spaces. A name :data:`~compress.pretokenizers.PRE_TOKENIZER_SPECS` does not
    know keeps transformers' split.
    """
    from gguf import GGUFReader

    from compress.pretokenizers import PRE_TOKENIZER_SPECS

    fields = GGUFReader(str(gguf_path)).fields
    model, pre = (fields[key].contents() if key in fields else None
                  for key in ("tokenizer.ggml.model", "tokenizer.ggml.pre"))
    spec = PRE_TOKENIZER_SPECS.get(pre) if model == "gpt2" else None
    if spec is None or not tokenizer_json.is_file():
        return
    data = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    data["pre_tokenizer"] = spec
    tokenizer_json.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def _spm_as_gguf(tokenizer_json: Path, gguf_path: Path) -> None:
    """Give a dequantized copy of a SentencePiece GGUF (``tokenizer.ggml.model`` "llama") the
    splits and BOS llama.cpp uses (:mod:`compress.spm_tokenizer`): transformers builds Gemma 3's
    vocabulary as a Unigram model that splits words into letters, and adds no BOS."""
    from gguf import GGUFReader

    from compress.spm_tokenizer import as_llama_cpp_splits

    fields = GGUFReader(str(gguf_path)).fields
    if "tokenizer.ggml.model" not in fields or fields["tokenizer.ggml.model"].contents() != "llama":
        return
    types = [int(t) for t in fields["tokenizer.ggml.token_type"].contents()]
    bos = None
    if "tokenizer.ggml.add_bos_token" in fields and fields["tokenizer.ggml.add_bos_token"].contents():
        bos_id = int(fields["tokenizer.ggml.bos_token_id"].contents())
        bos = (str(fields["tokenizer.ggml.tokens"].contents(bos_id)), bos_id)
    if tokenizer_json.is_file():
        as_llama_cpp_splits(tokenizer_json, types, bos)


def cached_hf_checkpoint(source: Source) -> Path | None:
    """The dequantized copy of a GGUF source if one was made, else None (and None for HF sources)."""
    if source.kind != "gguf":
        return None
    out = _dequantized_dir(source)
    return out if (out / "config.json").exists() else None


def hf_checkpoint(source: Source) -> Path:
    """A Hugging Face folder for ``source``: the folder itself, or a cached dequantized copy of a GGUF."""
    if source.kind == "hf":
        return source.path
    out = _dequantized_dir(source)
    if (out / "config.json").exists():
        return out
    quiet_libraries()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from compress.progress import waiting

    folder, name = str(source.path.parent), source.path.name
    try:
        with waiting(f"dequantizing {name} to float32 (once; cached for later runs)"):
            tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, trust_remote_code=False)
            model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32,
                                                         trust_remote_code=False)
    except (ValueError, KeyError) as err:
        raise UnsupportedError(
            f"transformers cannot dequantize {source.path} ({err}): expected a GGUF of an architecture transformers reads"
        ) from None
    # transformers refuses to serialise a model that still carries its GGUF quantizer.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    try:
        with atomic_dir(out) as tmp:
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            _split_as_gguf(Path(tmp) / "tokenizer.json", source.path)
            _spm_as_gguf(Path(tmp) / "tokenizer.json", source.path)
    except (UserInputError, OSError):
        # Another process finished the same conversion first; its copy is as good as ours.
        if not (out / "config.json").exists():
            raise
    return out


def load_tokenizer(folder: Path) -> Any:
    quiet_libraries()
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(folder), trust_remote_code=trust_remote_code())
    except (OSError, ValueError) as err:
        raise UserInputError(f"no usable tokenizer in {folder} ({err}): copy the tokenizer files into the folder") from None


def load_causal_lm(folder: Path, dtype: str = "float32", device: str = "cpu", **kwargs: Any) -> Any:
    """Load a causal LM from a Hugging Face folder onto ``device`` in eval mode."""
    quiet_libraries()
    from transformers import AutoModelForCausalLM

    trust = kwargs.pop("trust_remote_code", trust_remote_code())
    check_memory_for(Path(folder), dtype, quantized="quantization_config" in kwargs)
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch_dtype(dtype), trust_remote_code=trust,
                                                 **kwargs)
    if "device_map" not in kwargs and "quantization_config" not in kwargs:
        model = model.to(device)
    return model.eval()


def checkpoint_memory_bytes(folder: Path, dtype: str, quantized: bool = False) -> int:
    """Memory a folder's weights take once loaded in ``dtype``: the safetensors bytes, scaled from
    the dtype the config says they are stored in (a bfloat16 checkpoint loaded as float32 doubles).
    Quantized weights stay as stored."""
    from compress import dtypes

    stored_bytes = sum(p.stat().st_size for p in Path(folder).glob("*.safetensors"))
    try:
        config = read_config(folder)
    except UserInputError:
        config = {}  # no readable config: the weights count as stored
    stored = config.get("torch_dtype") or config.get("dtype")
    if quantized or config.get("quantization_config") or stored not in dtypes.BYTES or dtype not in dtypes.BYTES:
        return stored_bytes
    return stored_bytes * dtypes.BYTES[dtype] // dtypes.BYTES[stored]


def check_memory_for(folder: Path, dtype: str, quantized: bool = False) -> None:
    """Refuse to load a checkpoint that cannot fit in memory, before transformers allocates it."""
    from compress.memcheck import check_memory

    check_memory(checkpoint_memory_bytes(folder, dtype, quantized), f"loading {Path(folder).name} in {dtype}")
