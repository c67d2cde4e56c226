"""Bounds on the sizes a model file declares, checked before any work depends on them.

A config.json or GGUF header is input like any other: a layer count of 10**9 makes
per-layer work hang, a width that is a string or zero heads make arithmetic fail
deep inside the planner. Each size must be a whole number between 1 and a maximum
well above any published model: the largest today have 126 layers and hidden
16,384 (Llama 3.1 405B config.json), a 262,144-token vocabulary (Gemma 3), 384
experts (Kimi K2) and a 10M-token context (Llama 4 Scout model card).
"""

from __future__ import annotations

import numbers
from typing import Any

from compress.errors import UserInputError

#: Our name of a size → its largest accepted value.
MAXIMA = {
    "layers": 1_000,
    "hidden": 1_000_000,
    "intermediate": 4_000_000,
    "heads": 65_536,
    "kv_heads": 65_536,
    "head_dim": 65_536,
    "vocab": 10_000_000,
    "max_context": 10_000_000,
    "sliding_window": 10_000_000,
    "experts": 65_536,
    "experts_per_token": 65_536,
}
#: transformers config.json keys → our names.
CONFIG_KEYS = {
    "num_hidden_layers": "layers", "hidden_size": "hidden", "intermediate_size": "intermediate",
    "num_attention_heads": "heads", "num_key_value_heads": "kv_heads", "head_dim": "head_dim",
    "vocab_size": "vocab", "max_position_embeddings": "max_context", "sliding_window": "sliding_window",
    "num_local_experts": "experts", "num_experts": "experts", "num_experts_per_tok": "experts_per_token",
}
#: Sizes a config may leave out or set to null (the model then uses a default).
_OPTIONAL_NULL = ("num_key_value_heads", "head_dim", "sliding_window", "num_local_experts", "num_experts",
                  "num_experts_per_tok")


def bounded_int(value: Any, label: str, maximum: int, where: str) -> int:
    """``value`` as an int in ``1..maximum``, or one clear line saying what was expected and what was got."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and float(value).is_integer()
    if not ok or not 1 <= value <= maximum:
        shown = repr(value) if not isinstance(value, str) else repr(value[:40])
        raise UserInputError(f"{where}: {label} must be a whole number from 1 to {maximum:,}, got {shown}; "
                             "the file is damaged or not a model of a supported kind")
    return int(value)


def check_config(config: Any, where: str) -> None:
    """Check every size a transformers ``config.json`` declares (and its nested ``text_config``)."""
    if not isinstance(config, dict):
        raise UserInputError(f"{where} holds a JSON {type(config).__name__}: expected an object of model settings")
    nested = config.get("text_config")
    if nested is not None and not isinstance(nested, dict):
        raise UserInputError(f"{where}: text_config must be an object, got a JSON {type(nested).__name__}")
    for cfg in (config, nested or {}):
        for key, name in CONFIG_KEYS.items():
            if key not in cfg or (cfg[key] is None and key in _OPTIONAL_NULL):
                continue
            if key == "sliding_window" and cfg[key] is False:
                continue
            bounded_int(cfg[key], key, MAXIMA[name], where)
        heads, kv_heads = cfg.get("num_attention_heads"), cfg.get("num_key_value_heads")
        if heads is not None and kv_heads is not None and int(heads) % int(kv_heads):
            raise UserInputError(f"{where}: num_attention_heads ({int(heads)}) must be a multiple of "
                                 f"num_key_value_heads ({int(kv_heads)}), as grouped-query attention shares each "
                                 "KV head among a whole number of query heads; the file is damaged")


def check_dims(dims: dict[str, Any], where: str) -> None:
    """Check sizes given under our names (``layers``, ``hidden``...); None means absent."""
    for name, value in dims.items():
        if value is not None:
            bounded_int(value, name, MAXIMA[name], where)


#: GGUF metadata keys (after the ``<architecture>.`` prefix) → our names.
GGUF_KEYS = {
    "block_count": "layers", "embedding_length": "hidden", "feed_forward_length": "intermediate",
    "attention.head_count": "heads", "attention.head_count_kv": "kv_heads", "attention.key_length": "head_dim",
    "context_length": "max_context", "expert_count": "experts", "expert_used_count": "experts_per_token",
}


def check_gguf_fields(fields: dict[str, Any], where: str) -> None:
    """Check the sizes in a GGUF header, given as ``{key: value}`` of its metadata.

    Per-layer values (a list, as some architectures store head counts) are checked one by one.
    """
    arch = fields.get("general.architecture")
    if arch is None:
        return
    if not isinstance(arch, str) or not arch.isidentifier():
        shown = repr(arch)[:40]
        raise UserInputError(f"{where}: general.architecture is {shown}: expected the name of an architecture "
                             "such as 'llama'; the file is damaged or not a model")
    for key, name in GGUF_KEYS.items():
        value = fields.get(f"{arch}.{key}")
        if value is None:
            continue
        for item in value if isinstance(value, list) else [value]:
            if name in ("kv_heads", "experts_per_token") and item == 0:
                continue  # llama.cpp stores 0 for layers without attention / a dense model
            bounded_int(item, f"{arch}.{key}", MAXIMA[name], where)
