"""A model's weight tensors, named the way llama.cpp names them (``token_embd``,
``blk.N.attn_q`` ...), sized from its spec."""

from __future__ import annotations

from dataclasses import dataclass

from compress.model.spec import ModelSpec

LINEAR_ROLES = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")


@dataclass(frozen=True)
class Tensor:
    """One weight tensor: ``cols`` is the row length (input features, GGUF ne0)."""

    role: str  # token_embd, output, attn_q ... ffn_down, router, vector
    layer: int | None
    rows: int
    cols: int
    count: int = 1  # stacked experts

    @property
    def numel(self) -> int:
        return self.rows * self.cols * self.count

    @property
    def is_linear(self) -> bool:
        return self.role in LINEAR_ROLES


def tensors(spec: ModelSpec) -> list[Tensor]:
    """Every weight tensor of ``spec``; 1-D tensors (norms, biases) are role ``vector``."""
    h, q_out, kv_out = spec.hidden, spec.heads * spec.head_dim, spec.kv_heads * spec.head_dim
    out = [Tensor("token_embd", None, spec.vocab, h)]
    if not spec.tied_embeddings:
        out.append(Tensor("output", None, spec.vocab, h))
    out.append(Tensor("vector", None, 1, h))  # final norm
    for i in range(spec.layers):
        out += [Tensor("attn_q", i, q_out, h), Tensor("attn_k", i, kv_out, h),
                Tensor("attn_v", i, kv_out, h), Tensor("attn_output", i, h, q_out),
                Tensor("ffn_gate", i, spec.intermediate, h, spec.experts),
                Tensor("ffn_up", i, spec.intermediate, h, spec.experts),
                Tensor("ffn_down", i, h, spec.intermediate, spec.experts),
                Tensor("vector", i, 1, spec.norms_per_layer * h)]
        if spec.qkv_bias:
            out.append(Tensor("vector", i, 1, q_out + 2 * kv_out))
        if spec.experts > 1:
            out.append(Tensor("router", i, spec.experts, h))
    return out
