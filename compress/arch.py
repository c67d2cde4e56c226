"""Architecture knowledge as data, one table: :data:`TABLE`, one row per model family.

A row says how the family is named (the planner's name, config.json's ``model_type`` and
``architectures`` class), what the planner's spec needs beyond config.json's numbers (norms
per layer, bias defaults, alternating sliding windows), where a causal LM keeps its decoder
layers and which linear layers pruning touches (:class:`Layout`; methods that walk a model
read it instead of testing classes or sniffing module names), which transformers config
class builds random weights of it, and which llama.cpp graph the GGUF writer maps it to.
Supporting another family is a new row. Importing this module imports no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from compress.errors import UnsupportedError

#: The seven projections of a Llama-style block: attention q/k/v/o and the gated MLP.
_LLAMA_LINEARS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                  "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")


@dataclass(frozen=True)
class Layout:
    """How one model family lays out its decoder in transformers."""

    layers: str = "model.layers"  # attribute path from the *ForCausalLM to the decoder layers' ModuleList
    linears: tuple[str, ...] = _LLAMA_LINEARS  # paths inside one layer of the linears that pruning may zero
    attention: str = "self_attn"  # the module inside a layer whose ``layer_idx`` addresses the KV cache
    layer_count_key: str = "num_hidden_layers"  # config key holding the number of layers
    per_layer_keys: tuple[str, ...] = ("layer_types",)  # config lists with one entry per layer


_PHI3_LINEARS = ("self_attn.qkv_proj", "self_attn.o_proj", "mlp.gate_up_proj", "mlp.down_proj")


@dataclass(frozen=True)
class GgufGraph:
    """How a family maps onto a llama.cpp graph in the GGUF writer."""

    name: str  # general.architecture, and the prefix of the hyperparameter keys
    interleave_rope: bool  # reorder Q/K rows from rotate-half to adjacent-pair rope


@dataclass(frozen=True)
class Architecture:
    """Everything the code knows about one model family."""

    name: str  # the planner's name (ModelSpec.architecture, the catalog's `architecture`)
    model_type: str  # config.json model_type
    hf_class: str  # config.json architectures[0]
    layout: Layout | None = Layout()  # None: pruning, layer dropping and distillation do not walk it
    config_class: str | None = None  # transformers config class that builds random weights (dense only)
    gguf: GgufGraph | None = None  # None: the GGUF writer does not convert it
    qkv_bias: bool = False  # q/k/v biases when config.json has no attention_bias
    norms_per_layer: int = 2  # RMSNorm weight vectors per decoder layer
    #: Every n-th layer attends globally, the others within the sliding window (None: the window,
    #: where config.json sets one, applies to every layer).
    global_layer_every: int | None = None
    window_in_config: bool = False  # a random-weight config carries the sliding window


#: The families, in the order error messages list them. Phi-3 fuses q/k/v and gate/up into
#: single projections; Gemma 2 alternates local (sliding-window) and global layers and has
#: four norms a layer (pre/post attention and MLP), as Gemma 3 has; Gemma 3 makes every sixth
#: layer global (transformers' Gemma3TextConfig, ``sliding_window_pattern`` 6). llama.cpp runs Mistral's
#: dense models on its llama graph (the sliding window only matters beyond 4,096 tokens and
#: llama.cpp's llama graph has none).
TABLE: tuple[Architecture, ...] = (
    Architecture("llama", "llama", "LlamaForCausalLM", config_class="LlamaConfig",
                 gguf=GgufGraph("llama", interleave_rope=True)),
    Architecture("mistral", "mistral", "MistralForCausalLM", config_class="MistralConfig",
                 gguf=GgufGraph("llama", interleave_rope=True), window_in_config=True),
    Architecture("mixtral", "mixtral", "MixtralForCausalLM", layout=None),
    Architecture("qwen2", "qwen2", "Qwen2ForCausalLM", config_class="Qwen2Config",
                 gguf=GgufGraph("qwen2", interleave_rope=False), qkv_bias=True),
    Architecture("qwen2_moe", "qwen2_moe", "Qwen2MoeForCausalLM", layout=None),
    Architecture("qwen3", "qwen3", "Qwen3ForCausalLM"),
    Architecture("gemma", "gemma", "GemmaForCausalLM"),
    Architecture("gemma2", "gemma2", "Gemma2ForCausalLM", norms_per_layer=4, global_layer_every=2),
    Architecture("gemma3", "gemma3_text", "Gemma3ForCausalLM", norms_per_layer=4, global_layer_every=6),
    Architecture("olmo2", "olmo2", "Olmo2ForCausalLM"),
    Architecture("phi3", "phi3", "Phi3ForCausalLM", layout=Layout(linears=_PHI3_LINEARS)),
)


def by_model_type(model_type: str | None) -> Architecture | None:
    return next((a for a in TABLE if a.model_type == model_type), None)


def by_hf_class(hf_class: str | None) -> Architecture | None:
    return next((a for a in TABLE if a.hf_class == hf_class), None)


def by_name(name: str | None) -> Architecture | None:
    return next((a for a in TABLE if a.name == name), None)


def windowed_layers(family: Architecture | None, layers: int) -> int | None:
    """How many of ``layers`` attend within the sliding window: all but every
    ``global_layer_every``-th (None: every layer, or the family is unknown)."""
    if family is None or family.global_layer_every is None:
        return None
    return layers - layers // family.global_layer_every


#: model_type → layout, for the families whose decoder the methods can walk.
ARCHITECTURES: dict[str, Layout] = {a.model_type: a.layout for a in TABLE if a.layout is not None}


def lookup(model_type: str | None) -> Layout:
    """The layout of ``model_type``, or one line naming the supported ones."""
    if model_type not in ARCHITECTURES:
        raise UnsupportedError(
            f"architecture {model_type!r} is not supported for pruning, layer dropping or distillation: "
            f"expected one of {', '.join(sorted(ARCHITECTURES))}"
        )
    return ARCHITECTURES[model_type]


def lookup_config(config: dict[str, Any]) -> Layout:
    """The layout for a ``config.json`` read as a dict."""
    return lookup(config.get("model_type"))


def _attr(root: Any, path: str) -> Any:
    for name in path.split("."):
        root = getattr(root, name)
    return root


def decoder_layers(model: Any, arch: Layout) -> Any:
    """The ``nn.ModuleList`` of decoder layers of a loaded model."""
    return _attr(model, arch.layers)


def layer_linears(layer: Any, arch: Layout) -> dict[str, Any]:
    """``{path: nn.Linear}`` of the prunable linears of one decoder layer."""
    return {path: _attr(layer, path) for path in arch.linears}


def keep_layers(model: Any, arch: Layout, keep: list[int]) -> None:
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
