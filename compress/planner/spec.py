"""Reading a model spec (:class:`compress.model.spec.ModelSpec`) from where a user names it.

A spec comes from the catalog in ``profiles/models/*.toml`` (by name or alias,
:mod:`compress.model.catalog`), from a local Hugging Face folder (``config.json``), from a
local ``.gguf`` file (its header's metadata and tensor shapes,
:mod:`compress.planner.gguf_header`), or from a Hugging Face model id (``config.json``
fetched with ``huggingface_hub``, only when a network is there).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from compress import arch
from compress.errors import UserInputError
from compress.model.catalog import catalog, find_in_catalog
from compress.model.config import read_config
from compress.model.spec import ModelSpec
from compress.registry import suggest


# --- loading ----------------------------------------------------------------------------------

def load_model_spec(name_or_path: str) -> ModelSpec:
    """A spec from a catalog name/alias, a local HF folder, a local .gguf file or an HF id."""
    text = name_or_path.strip()
    if not text:
        raise UserInputError("empty model name; see `compress models` for the catalog")
    found = find_in_catalog(text)
    if found is not None:
        return found
    path = Path(text).expanduser()
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise UserInputError(f"no such GGUF file: {path}")
        return spec_from_gguf(path)
    if path.is_dir():
        config = path / "config.json"
        if not config.is_file():
            raise UserInputError(f"{path} is a folder without config.json; expected a Hugging Face model folder")
        return spec_from_config(read_config(config), name=path.name, origin="config.json", path=str(path))
    if path.is_file() and path.name == "config.json":
        return spec_from_config(read_config(path), name=path.parent.name, origin="config.json", path=str(path))
    if "/" in text and not text.startswith((".", "/", "~")) and text.count("/") == 1:
        return spec_from_hub(text)
    names = [*catalog()]
    raise suggest(text, names, "model")


def spec_from_config(config: dict[str, Any], *, name: str, origin: str, path: str | None = None) -> ModelSpec:
    """A spec from a transformers ``config.json`` dict (its sizes bounded by :mod:`compress.limits`)."""
    from compress.limits import check_config

    check_config(config, f"config.json of {name!r}")
    cfg = config.get("text_config") or config  # multimodal configs nest the language model
    try:
        hidden = int(cfg["hidden_size"])
        heads = int(cfg["num_attention_heads"])
        layers = int(cfg["num_hidden_layers"])
        intermediate = int(cfg["intermediate_size"])
        vocab = int(cfg["vocab_size"])
    except KeyError as err:
        raise UserInputError(f"config.json of {name!r} has no {err.args[0]!r}; expected a decoder-only transformers config") from None
    arch_names = config.get("architectures") or []
    if not isinstance(arch_names, list) or not all(isinstance(a, str) for a in arch_names):
        raise UserInputError(f"config.json of {name!r}: architectures must be a list of class names, "
                             f"got {str(arch_names)[:60]!r}; the file is damaged")
    model_type = cfg.get("model_type", "")
    family = arch.by_model_type(model_type)
    named = arch.by_hf_class(arch_names[0]) if arch_names else None
    architecture = named.name if named else cfg.get("model_type", "llama")
    window = cfg.get("sliding_window") if cfg.get("use_sliding_window", True) else None
    window_layers = _windowed_layers(cfg, family, layers) if window else None
    return _checked_spec(
        f"config.json of {name!r}",
        name=name, layers=layers, hidden=hidden, heads=heads,
        kv_heads=int(cfg.get("num_key_value_heads") or heads),
        head_dim=int(cfg.get("head_dim") or hidden // heads),
        intermediate=intermediate, vocab=vocab,
        tied_embeddings=bool(cfg.get("tie_word_embeddings", False)),
        max_context=int(cfg.get("max_position_embeddings") or 4096),
        sliding_window=int(window) if window else None, sliding_window_layers=window_layers,
        experts=int(cfg.get("num_local_experts") or cfg.get("num_experts") or 1),
        experts_per_token=int(cfg.get("num_experts_per_tok") or 1),
        qkv_bias=bool(cfg.get("attention_bias", family is not None and family.qkv_bias)),
        norms_per_layer=family.norms_per_layer if family is not None else 2,
        architecture=architecture, origin=origin, path=path, display_name=name,
    )


def _windowed_layers(cfg: dict[str, Any], family: arch.Architecture | None, layers: int) -> int | None:
    """Layers that attend within the sliding window: config.json's ``layer_types`` where it lists
    them, else the family's pattern (None: every layer)."""
    types = cfg.get("layer_types")
    if isinstance(types, list) and len(types) == layers:
        return sum(1 for t in types if t == "sliding_attention")
    return arch.windowed_layers(family, layers)


def spec_from_gguf(path: Path) -> ModelSpec:
    """A spec from a GGUF file's metadata and tensor shapes, read from its header only
    (:mod:`compress.planner.gguf_header`: the tokenizer arrays are skipped, the weights never read)."""
    from compress.planner.gguf_header import GGUFHeaderError, read_header

    try:
        header = read_header(path)
    except (GGUFHeaderError, OSError) as err:
        raise UserInputError(f"{path} is not a readable GGUF file: {err}") from None

    def field_value(key: str) -> Any:
        return header.metadata.get(key)

    from compress.limits import check_gguf_fields

    check_gguf_fields({"general.architecture": field_value("general.architecture")}, f"GGUF header of {path}")
    arch_name = field_value("general.architecture") or "llama"
    meta = lambda key: field_value(f"{arch_name}.{key}")  # noqa: E731 - metadata keys are prefixed by the architecture
    shapes = {name: dims for name, (dims, _) in header.tensors.items()}
    embd = shapes.get("token_embd.weight")
    try:
        hidden = int(meta("embedding_length") or (embd[0] if embd else 0))
        vocab = int(embd[1]) if embd else len(field_value("tokenizer.ggml.tokens") or [])
        heads = int(meta("attention.head_count") or 1)
        kv = meta("attention.head_count_kv")
        kv_heads = int(kv[0] if isinstance(kv, list) else kv or heads)
        head_dim = int(meta("attention.key_length") or hidden // heads)
    except (TypeError, ValueError, ZeroDivisionError, IndexError) as err:
        raise UserInputError(f"GGUF header of {path}: a size is not a whole number ({err}); "
                             "the file is damaged or not a model of a supported kind") from None
    ff = meta("feed_forward_length")
    name = field_value("general.name") or path.stem
    window = int(meta("attention.sliding_window") or 0) or None
    layers = meta("block_count") or 0
    from compress.limits import check_dims

    check_dims({"layers": layers, "hidden": hidden, "heads": heads, "kv_heads": kv_heads,
                "head_dim": head_dim, "intermediate": (ff[0] if isinstance(ff, list) else ff) or 0, "vocab": vocab,
                "max_context": meta("context_length"), "experts": meta("expert_count"),
                "experts_per_token": meta("expert_used_count")}, f"GGUF header of {path}")
    return _checked_spec(
        f"GGUF header of {path}",
        name=str(name).lower().replace(" ", "-"), layers=int(layers), hidden=hidden,
        heads=heads, kv_heads=kv_heads, head_dim=head_dim,
        intermediate=int(ff[0] if isinstance(ff, list) else ff),
        vocab=vocab, tied_embeddings="output.weight" not in shapes,
        max_context=int(meta("context_length") or 4096),
        sliding_window=window,
        sliding_window_layers=arch.windowed_layers(arch.by_name(str(arch_name)), int(layers)) if window else None,
        experts=int(meta("expert_count") or 1), experts_per_token=int(meta("expert_used_count") or 1),
        qkv_bias="blk.0.attn_q.bias" in shapes,
        # Norms of the hidden width: Gemma 3's per-head query/key norms are head_dim wide.
        norms_per_layer=sum(1 for t, dims in shapes.items()
                            if t.startswith("blk.0.") and t.endswith("norm.weight") and dims == [hidden]) or 2,
        architecture=str(arch_name), origin="gguf", path=str(path), display_name=str(name),
    )


def _checked_spec(where: str, **fields: Any) -> ModelSpec:
    """A ModelSpec whose consistency errors (heads not a multiple of KV heads...) read as one clear line."""
    try:
        return ModelSpec(**fields)
    except ValueError as err:
        raise UserInputError(f"{where}: {err}; the file is damaged or not a model of a supported kind") from None


def spec_from_hub(model_id: str) -> ModelSpec:
    """A spec from a Hugging Face model id (needs huggingface_hub and a network)."""
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise UserInputError(f"{model_id!r} is not in the catalog and huggingface_hub is not installed to fetch its config") from None
    try:
        config_path = hf_hub_download(model_id, "config.json")
    except Exception as err:  # offline, gated or missing repos all land here
        raise UserInputError(f"could not fetch config.json of {model_id!r} from the Hugging Face Hub "
                             f"({type(err).__name__}); pass a catalog name (`compress models`) or a local folder") from None
    return spec_from_config(json.loads(Path(config_path).read_text()), name=model_id, origin="hub")
