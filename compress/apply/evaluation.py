"""What the methods that rewrite weights share to check their result: a checkpoint's
dtype, the held-out tokens, and perplexity by the bench's own code path.

Pruning, layer dropping and distillation report the perplexity before and after on the
first tokens of the default corpus' evaluation half (which calibration never sees),
scored in non-overlapping windows with no BOS.
"""

from __future__ import annotations

from typing import Any

#: Held-out tokens scored before and after, and the window they are scored in.
EVAL_TOKENS = 2048
EVAL_WINDOW = 512


def checkpoint_dtype(config: dict[str, Any]) -> str:
    """The dtype the checkpoint was saved in, so the output keeps it; float32 when unstated."""
    from compress.loading import DTYPES

    name = str(config.get("dtype") or config.get("torch_dtype") or "float32")
    return name if name in DTYPES else "float32"


def heldout_ids(tokenizer: Any, max_tokens: int = EVAL_TOKENS) -> list[int]:
    """Tokens of the default corpus' evaluation half, which calibration never sees."""
    from compress.corpus import default_text, token_ids

    return token_ids(tokenizer, default_text("eval"), max_tokens=max_tokens)


def perplexity(model: Any, ids: list[int], device: str, window: int = EVAL_WINDOW) -> float:
    """Perplexity over non-overlapping windows of ``ids``, by the bench's own code path."""
    from compress.measure.perplexity import model_perplexity

    window = min(window, getattr(model.config, "max_position_embeddings", window) or window)
    was_training = model.training
    model.eval()
    try:
        return model_perplexity(model, ids, window, device)
    finally:
        model.train(was_training)
