"""Layer importance as pure functions of hidden states, and the choice of layers to drop.

Block Influence (Men et al. 2024, "ShortGPT: Layers in Large Language Models are
More Redundant Than You Expect", eq. 1): ``BI_i = 1 − E_t[cos(x_t^in, x_t^out)]``
over the tokens of calibration text, where ``x^in`` and ``x^out`` are the hidden
states entering and leaving decoder layer ``i``. A layer that barely turns the
residual stream changes the model little when removed, so the layers with the
lowest BI are dropped first.
"""

from __future__ import annotations

from typing import Any

from compress.errors import UserInputError


def cosine_distance_sum(hidden_in: Any, hidden_out: Any) -> tuple[float, int]:
    """``(Σ_t (1 − cos(x_t^in, x_t^out)), token count)`` for hidden states ``[..., hidden]``.

    Returned as a sum and a count so that batches of any size combine exactly.
    Computed in float32: half-precision dot products of 1,000-wide vectors lose
    the small differences this measure is about.
    """
    import torch

    a = hidden_in.detach().reshape(-1, hidden_in.shape[-1]).float()
    b = hidden_out.detach().reshape(-1, hidden_out.shape[-1]).float()
    cos = torch.nn.functional.cosine_similarity(a, b, dim=-1)
    return float((1 - cos).sum()), a.shape[0]


def block_influence(hidden_in: Any, hidden_out: Any) -> float:
    """ShortGPT's Block Influence of one layer on one batch: ``1 − mean cos(x^in, x^out)``."""
    total, count = cosine_distance_sum(hidden_in, hidden_out)
    return total / count


def layers_to_drop(scores: list[float], n_drop: int) -> list[int]:
    """Indices of the ``n_drop`` least important layers, ascending.

    Ties go to the later layer, a deterministic rule that also matches ShortGPT's
    finding that redundant layers cluster in the second half of the stack.
    """
    n_layers = len(scores)
    if not 1 <= n_drop < n_layers:
        raise UserInputError(
            f"can drop between 1 and {n_layers - 1} of the model's {n_layers} layers (at least one must stay), got {n_drop}"
        )
    order = sorted(range(n_layers), key=lambda i: (scores[i], -i))
    return sorted(order[:n_drop])
