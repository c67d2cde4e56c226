"""Our own Hugging Face → GGUF converter for Llama-family models (F32 or F16).

No wheel ships llama.cpp's converter, so this writes the file with the ``gguf``
package's ``GGUFWriter``: the hyperparameters under the ``<arch>.*`` keys llama.cpp
reads, the tokenizer (compress.gguf_vocab), and every weight under its GGUF name.
Two transformations make llama.cpp compute what transformers computes:

* Llama's rotary embedding in transformers rotates the two halves of each head
  (``rotate_half``); llama.cpp's ``llama`` graph rotates adjacent pairs. The rows
  of the Q and K projections are reordered per head to match
  (:func:`interleave_rope_rows`). Qwen2 runs llama.cpp's NeoX-style rope, which
  rotates halves too, so it keeps its rows.
* Llama-3 rope scaling becomes llama.cpp's ``rope_freqs`` tensor of per-frequency
  divisors (:func:`llama3_rope_divisors`).

Quantized types are made from this file by llama.cpp's own quantizer (compress.llamacpp).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from compress import arch as arch_table
from compress.arch import GgufGraph
from compress.errors import RuntimeFailure, UnsupportedError, UserInputError
from compress.model.config import read_config


#: Hugging Face ``architectures`` entry → llama.cpp graph, from the architecture table
#: (:data:`compress.arch.TABLE`). SmolLM2 ships as LlamaForCausalLM.
ARCHITECTURES: dict[str, GgufGraph] = {a.hf_class: a.gguf for a in arch_table.TABLE if a.gguf is not None}
DTYPES = ("F32", "F16")
#: Checkpoint entries that are buffers, not weights; llama.cpp recomputes them.
_SKIPPED = re.compile(r"rotary_emb\.inv_freq$")


def supported() -> str:
    return ", ".join(f"{name} ({graph.name})" for name, graph in ARCHITECTURES.items())


def architecture(config: dict[str, Any]) -> GgufGraph:
    """The llama.cpp graph of a config.json, or one line saying which ones are supported."""
    names = config.get("architectures") or []
    for name in names:
        if name in ARCHITECTURES:
            return ARCHITECTURES[name]
    got = ", ".join(names) or f"model_type {config.get('model_type')!r}"
    raise UnsupportedError(f"the GGUF writer handles {supported()}; got {got}: "
                           "convert this model with llama.cpp's convert_hf_to_gguf.py instead")


@dataclass(frozen=True)
class Hyper:
    """The hyperparameters llama.cpp needs, read from a config.json."""

    n_layer: int
    n_embd: int
    n_ff: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_ctx: int
    rms_eps: float
    vocab_size: int
    rope_theta: float
    rope: dict[str, Any]  # the scaling settings; rope_type "default" for none
    tied: bool

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Hyper:
        # transformers 5 writes rope_parameters; older files rope_theta and rope_scaling.
        rope = dict(config.get("rope_parameters") or config.get("rope_scaling") or {})
        n_head = config["num_attention_heads"]
        return cls(
            n_layer=config["num_hidden_layers"], n_embd=config["hidden_size"], n_ff=config["intermediate_size"],
            n_head=n_head, n_head_kv=config.get("num_key_value_heads") or n_head,
            head_dim=config.get("head_dim") or config["hidden_size"] // n_head,
            n_ctx=config.get("max_position_embeddings", 2048), rms_eps=config.get("rms_norm_eps", 1e-6),
            vocab_size=config["vocab_size"], rope_theta=float(rope.get("rope_theta", config.get("rope_theta", 10000.0))),
            rope=rope, tied=bool(config.get("tie_word_embeddings", False)),
        )

    @property
    def rope_type(self) -> str:
        return self.rope.get("rope_type") or self.rope.get("type") or "default"


def interleave_rope_rows(weight: np.ndarray, n_head: int) -> np.ndarray:
    """Reorder the output rows of a Q or K projection (or its bias) from rotate-half to adjacent-pair rope.

    transformers pairs dimension ``i`` of a head with ``i + d/2``; llama.cpp's rope pairs
    ``2i`` with ``2i + 1``. Within each head, row ``i`` of the first half goes to ``2i``
    and row ``i`` of the second half to ``2i + 1``: a (2, d/2) → (d/2, 2) transpose.
    """
    head_dim = weight.shape[0] // n_head
    rest = weight.shape[1:]
    return (weight.reshape(n_head, 2, head_dim // 2, *rest).swapaxes(1, 2).reshape(weight.shape))


def llama3_rope_divisors(head_dim: int, theta: float, rope: dict[str, Any]) -> np.ndarray:
    """Per-frequency divisors llama.cpp applies to rope frequencies for Llama-3 scaling (``rope_freqs``).

    Llama 3.1 keeps high frequencies (wavelength below ``original / high_freq_factor``),
    divides low ones (wavelength above ``original / low_freq_factor``) by ``factor``, and
    blends in between (Meta's llama-models ``apply_scaling``; transformers
    ``_compute_llama3_parameters``). The divisor is the unscaled frequency over the scaled one.
    """
    factor, low, high = rope["factor"], rope["low_freq_factor"], rope["high_freq_factor"]
    original = rope["original_max_position_embeddings"]
    freq = 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    wavelength = 2 * math.pi / freq
    smooth = np.clip((original / wavelength - low) / (high - low), 0.0, 1.0)
    scaled = (1 - smooth) * freq / factor + smooth * freq
    return (freq / scaled).astype(np.float32)


def _checkpoint_tensors(folder: Path) -> dict[str, Any]:
    """Every tensor of the checkpoint as float32 torch tensors, from safetensors or .bin files."""
    import torch
    from safetensors import safe_open

    files = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
    if not files:
        raise UserInputError(f"{folder} has no .safetensors or .bin weights: expected a Hugging Face checkpoint")
    tensors = {}
    for file in files:
        if file.suffix == ".safetensors":
            with safe_open(str(file), framework="pt") as f:
                tensors.update({name: f.get_tensor(name) for name in f.keys()})
        else:
            tensors.update(torch.load(file, map_location="cpu", weights_only=True))
    return {name: t.to(torch.float32) for name, t in tensors.items()}


def _order(name: str) -> tuple[int, str]:
    """Embedding first, then layer by layer, then the head: the order a reader meets them in use."""
    if m := re.match(r"blk\.(\d+)\.", name):
        return int(m.group(1)) + 1, name
    return (0, name) if name.startswith(("token_embd", "rope_freqs")) else (1 << 30, name)


def gguf_weights(folder: Path, config: dict[str, Any]) -> dict[str, np.ndarray]:
    """The checkpoint's weights under their GGUF names, transformed for llama.cpp, in file order."""
    import gguf

    arch, hyper = architecture(config), Hyper.from_config(config)
    names = gguf.get_tensor_name_map(_gguf_arch(arch), hyper.n_layer)
    out: dict[str, np.ndarray] = {}
    for hf_name, tensor in _checkpoint_tensors(folder).items():
        if _SKIPPED.search(hf_name) or (hyper.tied and hf_name == "lm_head.weight"):
            continue
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise UnsupportedError(f"checkpoint tensor {hf_name!r} has no place in llama.cpp's {arch.name} graph: "
                                   "expected a plain Llama-family checkpoint")
        array = tensor.numpy()
        if arch.interleave_rope and ".attn_q." in name:
            array = interleave_rope_rows(array, hyper.n_head)
        elif arch.interleave_rope and ".attn_k." in name:
            array = interleave_rope_rows(array, hyper.n_head_kv)
        out[name] = array
    if "token_embd.weight" not in out:
        raise UserInputError(f"{folder} has no token embedding (model.embed_tokens.weight): the checkpoint is incomplete")
    if hyper.rope_type == "llama3":
        out["rope_freqs.weight"] = llama3_rope_divisors(hyper.head_dim, hyper.rope_theta, hyper.rope)
    return {name: out[name] for name in sorted(out, key=_order)}


def _gguf_arch(arch: GgufGraph) -> Any:
    import gguf

    return next(key for key, value in gguf.MODEL_ARCH_NAMES.items() if value == arch.name)


def _write_hyperparameters(writer: Any, hyper: Hyper, dtype: str) -> None:
    import gguf

    writer.add_context_length(hyper.n_ctx)
    writer.add_embedding_length(hyper.n_embd)
    writer.add_block_count(hyper.n_layer)
    writer.add_feed_forward_length(hyper.n_ff)
    writer.add_head_count(hyper.n_head)
    writer.add_head_count_kv(hyper.n_head_kv)
    writer.add_rope_dimension_count(hyper.head_dim)
    writer.add_rope_freq_base(hyper.rope_theta)
    writer.add_layer_norm_rms_eps(hyper.rms_eps)
    writer.add_vocab_size(hyper.vocab_size)
    if hyper.head_dim * hyper.n_head != hyper.n_embd:  # llama.cpp assumes n_embd / n_head unless told
        writer.add_key_length(hyper.head_dim)
        writer.add_value_length(hyper.head_dim)
    if hyper.rope_type == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(hyper.rope["factor"]))
    elif hyper.rope_type not in ("default", "llama3"):
        raise UnsupportedError(f"rope scaling {hyper.rope_type!r} is not handled by the GGUF writer: "
                               "expected none, 'linear' or 'llama3'")
    writer.add_file_type(gguf.LlamaFileType.ALL_F32 if dtype == "F32" else gguf.LlamaFileType.MOSTLY_F16)


def write_gguf(folder: Path, path: Path, dtype: str = "F32", name: str | None = None) -> dict[str, Any]:
    """Convert the Hugging Face folder ``folder`` into the GGUF file ``path``.

    ``dtype`` F16 stores matrices as float16 and keeps 1-D tensors (norms, biases,
    rope divisors) in float32, as llama.cpp's kernels expect. Returns a summary.
    """
    import gguf

    from compress.gguf_vocab import read_vocab, write_vocab

    if dtype not in DTYPES:
        raise UserInputError(f"the GGUF writer stores {' or '.join(DTYPES)}, got {dtype!r}: quantize from F32 instead")
    folder, path = Path(folder), Path(path)
    config = read_config(folder)
    arch, hyper = architecture(config), Hyper.from_config(config)
    vocab = read_vocab(folder, config, hyper.vocab_size)
    weights = gguf_weights(folder, config)
    writer = gguf.GGUFWriter(str(path), arch.name)
    writer.add_name(name or folder.name)
    _write_hyperparameters(writer, hyper, dtype)
    write_vocab(writer, vocab)
    for tensor_name, array in weights.items():
        store = np.float16 if dtype == "F16" and array.ndim == 2 else np.float32
        writer.add_tensor(tensor_name, np.ascontiguousarray(array, dtype=store))
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    except OSError as err:
        if err.errno is not None:
            raise  # the command reports a full disk or a read-only place by its errno
        # numpy's tofile reports a short write with no errno: "65536 requested and 16912 written".
        raise RuntimeFailure(f"could not write {path.name} whole ({err}): expected room for the file; the disk is "
                             "full or a file-size limit was met; free space and rerun") from None
    finally:
        writer.close()
    return {"architecture": arch.name, "tensors": len(weights), "tokenizer": vocab.model,
            "pre_tokenizer": vocab.pre, "tied_embeddings": "output.weight" not in weights}
