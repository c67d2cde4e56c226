"""The transformer arithmetic the planner predicts with and the bench measures with.

One definition each, plain functions of plain numbers, so a predicted MFU and a measured
one count the same FLOPs and a predicted KV cache the same bytes. Torch-free.

FLOPs count the input embedding out: it is a table lookup, not a matmul. The output head
is a ``hidden x vocab`` matmul and counts, also when it shares its weights with the
embedding (tied). Mixture-of-experts models count their active parameters only.
"""

from __future__ import annotations


def matmul_params(params: int, vocab: int, hidden: int, tied_embeddings: bool) -> int:
    """Parameters that take part in a matrix multiply per token: ``params - vocab * hidden``,
    plus ``vocab * hidden`` back for a tied output head.

    The input embedding is a lookup, so its ``vocab * hidden`` weights are left out (Kaplan
    et al. 2020, section 2.1, likewise count non-embedding parameters); a tied model's output
    head multiplies by that same matrix, so it is counted back in. Pass the active
    parameter count for mixture-of-experts models.
    """
    return params - vocab * hidden + (vocab * hidden if tied_embeddings else 0)


def flops_per_token(matmul_params_count: int, layers: int, context_tokens: float, attention_dim: int) -> float:
    """Forward FLOPs for one token: ``2 * N + 4 * n_layer * n_ctx * d_attn``.

    ``2 * N``: one multiply and one add per matmul weight (:func:`matmul_params`). The
    attention term counts the two products with the cache, QK^T and AV, each
    ``2 * n_ctx * d_attn`` per token and layer (``d_attn`` = heads x head_dim, the query
    width; grouped-query attention does not change it). PaLM (Chowdhery et al. 2022,
    appendix B) gives ``6N + 12 L H Q T`` for training = 3 x this forward count; Kaplan et
    al. 2020 (table 1) write ``2N + 2 n_layer n_ctx d_attn``, the same figure averaged over a
    causal window (a token attends to ``n_ctx / 2`` positions on average).

    ``context_tokens`` is the number of positions the token attends to: ``t`` for a decode
    step at position ``t``; ``(n + 1) / 2`` averaged over a causal prompt of ``n``
    (:func:`prefill_flops`). Sliding windows are not taken into account.
    """
    return 2.0 * matmul_params_count + 4.0 * layers * context_tokens * attention_dim


def prefill_flops(matmul_params_count: int, prompt_tokens: int, layers: int, attention_dim: int,
                  batch: int = 1) -> float:
    """FLOPs of a causal prefill: ``batch * n * flops_per_token(..., (n + 1) / 2)``; token ``i``
    (1-based) attends to ``i`` positions, ``(n + 1) / 2`` on average."""
    return batch * prompt_tokens * flops_per_token(matmul_params_count, layers, (prompt_tokens + 1) / 2,
                                                   attention_dim)


def kv_cache_bytes(layers: int, kv_heads: int, head_dim: int, tokens: float, bytes_per_element: float,
                   batch: int = 1, sliding_window: int | None = None,
                   sliding_window_layers: int | None = None) -> float:
    """Bytes of keys and values: ``2 * kv_heads * head_dim * bytes * batch * sum over layers of
    the tokens each layer keeps``.

    Grouped-query attention enters through ``kv_heads``. A layer with a sliding window keeps
    at most ``sliding_window`` tokens; ``sliding_window_layers`` says how many layers have
    one (None: all of them, when ``sliding_window`` is set).
    """
    per_token_layer = 2 * kv_heads * head_dim * bytes_per_element
    if sliding_window:
        windowed = layers if sliding_window_layers is None else sliding_window_layers
        layer_tokens = windowed * min(tokens, sliding_window) + (layers - windowed) * tokens
    else:
        layer_tokens = layers * tokens
    return per_token_layer * layer_tokens * batch


def decode_weight_bytes(weight_bytes: float, params: int, vocab: int, hidden: int, tied_embeddings: bool,
                        layers: int = 0, intermediate: int = 0, experts: int = 1, experts_per_token: int = 1,
                        batch: int = 1) -> float:
    """Weight bytes one decode step reads: all but the input embedding table, and for a
    mixture of experts only the experts the batch routes to.

    The embedding is a lookup: a step reads one row of it, not the table, unless the table is
    tied to the output head, which multiplies by all of it. A step of ``batch`` sequences
    routes each token to ``experts_per_token`` of ``experts`` experts per layer; with routing
    spread evenly, the expected share of experts touched is ``1 - (1 - k / E) ** batch``
    (each expert missed by every token with probability ``(1 - k/E)`` per token). The expert
    weights are ``layers * 3 * hidden * intermediate * experts`` (gate, up and down
    projections, as in Mixtral). The planner's speed and the bench's MBU both use this.
    """
    embed_share = 0.0 if tied_embeddings else vocab * hidden / params
    read = weight_bytes * (1 - embed_share)
    if experts > 1:
        expert_share = layers * 3 * hidden * intermediate * experts / params
        touched = 1 - (1 - experts_per_token / experts) ** batch
        read -= weight_bytes * expert_share * (1 - touched)
    return read


def decode_bytes_per_token(weight_bytes: float, kv_bytes_read: float) -> float:
    """Bytes a decode step must read from memory: the weights it reads once
    (:func:`decode_weight_bytes`), plus the KV cache so far.

    At batch 1 each generated token streams those weights through the processor once and
    reads the keys and values of every earlier position (activations are negligible).
    """
    return weight_bytes + kv_bytes_read
