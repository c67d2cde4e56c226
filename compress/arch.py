"""Architecture knowledge as data: where a causal LM keeps its decoder layers and
which of their linear layers pruning touches.

One row per Hugging Face ``model_type``. Methods that walk a model (pruning,
layer dropping, distillation) read this table instead of testing classes or
sniffing module names, so supporting another family is a new row. Importing
this module imports no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from compress.errors import UnsupportedError

#: The seven projections of a Llama-style block: attention q/k/v/o and the gated MLP.
_LLAMA_LINEARS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                  "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")


@dataclass(frozen=True)
class Arch:
    """How one model family lays out its decoder."""

    layers: str = "model.layers"  # attribute path from the *ForCausalLM to the decoder layers' ModuleList
    linears: tuple[str, ...] = _LLAMA_LINEARS  # paths inside one layer of the linears that pruning may zero
    attention: str = "self_attn"  # the module inside a layer whose ``layer_idx`` addresses the KV cache
    layer_count_key: str = "num_hidden_layers"  # config key holding the number of layers
    per_layer_keys: tuple[str, ...] = ("layer_types",)  # config lists with one entry per layer


#: model_type → layout. Phi-3 fuses q/k/v and gate/up into single projections.
ARCHITECTURES: dict[str, Arch] = {
    "llama": Arch(),
    "mistral": Arch(),
    "qwen2": Arch(),
    "qwen3": Arch(),
    "gemma": Arch(),
    "gemma2": Arch(),
    "gemma3_text": Arch(),
    "olmo2": Arch(),
    "phi3": Arch(linears=("self_attn.qkv_proj", "self_attn.o_proj", "mlp.gate_up_proj", "mlp.down_proj")),
}


def lookup(model_type: str | None) -> Arch:
    """The layout of ``model_type``, or one line naming the supported ones."""
    if model_type not in ARCHITECTURES:
        raise UnsupportedError(
            f"architecture {model_type!r} is not supported for pruning, layer dropping or distillation: "
            f"expected one of {', '.join(sorted(ARCHITECTURES))}"
        )
    return ARCHITECTURES[model_type]


def lookup_config(config: dict[str, Any]) -> Arch:
    """The layout for a ``config.json`` read as a dict."""
    return lookup(config.get("model_type"))


def _attr(root: Any, path: str) -> Any:
    for name in path.split("."):
        root = getattr(root, name)
    return root


def decoder_layers(model: Any, arch: Arch) -> Any:
    """The ``nn.ModuleList`` of decoder layers of a loaded model."""
    return _attr(model, arch.layers)


def layer_linears(layer: Any, arch: Arch) -> dict[str, Any]:
    """``{path: nn.Linear}`` of the prunable linears of one decoder layer."""
    return {path: _attr(layer, path) for path in arch.linears}


def keep_layers(model: Any, arch: Arch, keep: list[int]) -> None:
    """Keep only the decoder layers at indices ``keep`` (in order), renumbered from 0.

    The config's layer count and per-layer lists follow, and each attention
    module's ``layer_idx`` is renumbered so the KV cache sees a dense range.
    Saving the model afterwards writes ``model.layers.0 … model.layers.{k-1}``.
    """
    import torch

    layers = decoder_layers(model, arch)
    kept = torch.nn.ModuleList([layers[i] for i in keep])
    for new_index, layer in enumerate(kept):
        _attr(layer, arch.attention).layer_idx = new_index
    parent_path, _, name = arch.layers.rpartition(".")
    setattr(_attr(model, parent_path) if parent_path else model, name, kept)
    config = model.config
    for key in arch.per_layer_keys:
        values = getattr(config, key, None)
        if isinstance(values, (list, tuple)) and len(values) == len(layers):
            setattr(config, key, [values[i] for i in keep])
    setattr(config, arch.layer_count_key, len(keep))
