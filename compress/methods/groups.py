"""The group-size rule of group-quantized formats (GPTQ, AWQ), in one place.

Group quantization cuts each weight row into groups of ``group_size`` inputs with one scale
and zero each, so a group size must divide the input width of every quantized linear layer:
``hidden`` (q/k/v/gate/up), ``heads * head_dim`` (o_proj) and ``intermediate`` (down_proj).
``-1`` means one group per row (per channel). SmolLM2-135M's hidden 576 takes 64, not 128.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from compress.errors import UnsupportedError, UserInputError

#: The group sizes checkpoints and kernels commonly use. Torch's int4 CPU matmul
#: (``_weight_int4pack_mm_cpu``) accepts exactly these, so the loader reads this tuple too.
USUAL_GROUP_SIZES = (32, 64, 128, 256)
#: The group size a bare name (``gptq-4``) asks for, and the largest the planner proposes.
DEFAULT_GROUP_SIZE = 128


def input_widths(hidden: int, heads: int, head_dim: int, intermediate: int) -> dict[str, int]:
    """Input widths of a decoder's quantized linear layers, by the config key they come from."""
    return {"hidden_size": hidden, "num_heads*head_dim": heads * head_dim, "intermediate_size": intermediate}


def config_input_widths(config: Mapping[str, Any]) -> dict[str, int]:
    """:func:`input_widths` from a Hugging Face config.json; absent keys are skipped."""
    hidden, heads = config.get("hidden_size"), config.get("num_attention_heads")
    head_dim = config.get("head_dim") or (hidden // heads if hidden and heads else None)
    widths = {"hidden_size": hidden, "num_heads*head_dim": heads * head_dim if heads and head_dim else None,
              "intermediate_size": config.get("intermediate_size")}
    return {name: int(width) for name, width in widths.items() if width}


def dividing_group_sizes(widths: Mapping[str, int]) -> list[int]:
    """The usual group sizes that divide every width, smallest first."""
    return [g for g in USUAL_GROUP_SIZES if all(w % g == 0 for w in widths.values())]


def default_group_size(widths: Mapping[str, int]) -> int:
    """The largest usual group size up to :data:`DEFAULT_GROUP_SIZE` that divides every width; -1 if none."""
    fitting = [g for g in dividing_group_sizes(widths) if g <= DEFAULT_GROUP_SIZE]
    return fitting[-1] if fitting else -1


def check_group_size(group_size: int, widths: Mapping[str, int], method: str) -> None:
    """Raise unless ``group_size`` divides every width (``-1``, per channel, always does)."""
    if group_size == -1:
        return
    if group_size < 1:
        raise UserInputError(f"{method} group size must be a positive integer or -1 (per channel), got {group_size}")
    uneven = {name: width for name, width in widths.items() if width % group_size}
    if uneven:
        shown = ", ".join(f"{name} {width}" for name, width in uneven.items())
        divisors = dividing_group_sizes(widths)
        hint = f"use --group-size {' or '.join(map(str, divisors))} or -1" if divisors else "use --group-size -1"
        raise UnsupportedError(f"{method} group size {group_size} does not divide the layer input widths ({shown}): {hint}")
