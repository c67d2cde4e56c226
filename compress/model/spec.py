"""A decoder-only transformer's architecture numbers (:class:`ModelSpec`) and the parameter
arithmetic on them; the catalog's published counts check that arithmetic."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from compress import formulas
from compress.errors import UserInputError


@dataclass(frozen=True)
class ModelSpec:
    """A decoder-only transformer, described by its config numbers."""

    name: str
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    tied_embeddings: bool = False
    max_context: int = 4096
    sliding_window: int | None = None
    sliding_window_layers: int | None = None  # None = every layer when sliding_window is set
    experts: int = 1
    experts_per_token: int = 1
    qkv_bias: bool = False
    norms_per_layer: int = 2
    display_name: str = ""
    family: str = ""
    architecture: str = "llama"
    hf_id: str | None = None
    aliases: tuple[str, ...] = ()
    params_published: int | None = None
    params_source: str | None = None
    origin: str = "catalog"  # catalog | config.json | gguf | hub
    path: str | None = None

    def __post_init__(self) -> None:
        for key in ("layers", "hidden", "heads", "kv_heads", "head_dim", "intermediate", "vocab", "max_context", "experts"):
            if getattr(self, key) < 1:
                raise ValueError(f"model {self.name!r}: {key} must be positive, got {getattr(self, key)}")
        if self.heads % self.kv_heads:
            raise ValueError(f"model {self.name!r}: heads ({self.heads}) must be a multiple of kv_heads ({self.kv_heads})")
        if not 1 <= self.experts_per_token <= self.experts:
            raise ValueError(f"model {self.name!r}: experts_per_token must be in 1..experts")

    @property
    def params(self) -> int:
        return param_count(self)

    @property
    def active_params(self) -> int:
        return param_count(self, active=True)

    @property
    def matmul_params(self) -> int:
        """Active parameters that take part in a matmul per token (:func:`compress.formulas.matmul_params`)."""
        return formulas.matmul_params(self.active_params, self.vocab, self.hidden, self.tied_embeddings)

    def __hash__(self) -> int:  # frozen and hashable, so per-spec results can be cached
        return hash((self.name, self.layers, self.hidden, self.heads, self.kv_heads, self.intermediate, self.vocab, self.experts))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["aliases"] = list(self.aliases)
        d["params"] = self.params
        d["active_params"] = self.active_params
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["aliases"] = tuple(known.get("aliases", ()))
        return cls(**known)


# --- parameter arithmetic ---------------------------------------------------------------------

def attention_params(spec: ModelSpec) -> int:
    """q, k, v, o projections of one layer: hidden x (heads + 2 kv_heads) x head_dim + o, + q/k/v bias."""
    q_out = spec.heads * spec.head_dim
    kv_out = spec.kv_heads * spec.head_dim
    bias = (q_out + 2 * kv_out) if spec.qkv_bias else 0
    return spec.hidden * q_out + 2 * spec.hidden * kv_out + q_out * spec.hidden + bias


def mlp_params(spec: ModelSpec, experts: int | None = None) -> int:
    """Gated MLP (gate, up, down: 3 x hidden x intermediate) per expert, plus the MoE router."""
    n = spec.experts if experts is None else experts
    router = spec.hidden * spec.experts if spec.experts > 1 else 0
    return n * 3 * spec.hidden * spec.intermediate + router


def param_count(spec: ModelSpec, *, active: bool = False) -> int:
    """Total parameters from the architecture (``active``: only the experts used per token).

    P = vocab*hidden (embeddings) [+ vocab*hidden lm_head unless tied]
        + layers * (attention + MLP + norms*hidden) + hidden (final norm).
    """
    experts = spec.experts_per_token if active else spec.experts
    per_layer = attention_params(spec) + mlp_params(spec, experts) + spec.norms_per_layer * spec.hidden
    head = 0 if spec.tied_embeddings else spec.vocab * spec.hidden
    return spec.vocab * spec.hidden + head + spec.layers * per_layer + spec.hidden


def with_layers(spec: ModelSpec, layers: int, name: str | None = None) -> ModelSpec:
    """The same model with ``layers`` decoder layers (layer dropping, a same-width student)."""
    if not 1 <= layers:
        raise UserInputError(f"a model needs at least one layer, got {layers}")
    swl = spec.sliding_window_layers
    if swl is not None:
        swl = round(swl * layers / spec.layers)
    return replace(spec, layers=layers, sliding_window_layers=swl, name=name or spec.name,
                   params_published=None, params_source=None)
