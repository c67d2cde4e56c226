"""Perplexity by one code path for every runtime: strided windows over one token stream.

The evaluation text is tokenized once with the source model's Hugging Face tokenizer,
and the same ids are fed to every runtime, so all variants of a model are scored on
identical tokens (a GGUF's own tokenizer never re-tokenizes the text).

Windows follow the sliding-window scheme of the transformers perplexity guide
("Perplexity of fixed-length models"): a window of ``context`` tokens starts every
``stride`` tokens, and only the tokens not scored by an earlier window are scored, each
with up to ``context - 1`` tokens of history. ``stride == context`` gives disjoint
windows (as llama.cpp's ``llama-perplexity`` does, which also scores only each window's
second half). The first token of the stream, and the first of every disjoint window,
has no history and is not scored; the count of scored tokens is reported.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from compress.measure.metrics import perplexity
from compress.progress import steps


@dataclass(frozen=True)
class Window:
    begin: int  # first token of the window in the stream
    end: int  # one past the last token
    score_from: int  # first position inside the window whose token is scored


def windows(n_tokens: int, context: int, stride: int) -> list[Window]:
    """The windows covering ``n_tokens`` tokens; each token after the first is scored at most once."""
    if context < 2:
        raise ValueError(f"a perplexity window needs at least 2 tokens, got context={context}")
    if not 1 <= stride <= context:
        raise ValueError(f"stride must be between 1 and the context ({context}), got {stride}")
    if n_tokens < 2:
        raise ValueError(f"perplexity needs at least 2 tokens, got {n_tokens}")
    out = []
    scored_until = 0  # tokens before this index are already scored (or are token 0)
    for begin in range(0, n_tokens, stride):
        end = min(begin + context, n_tokens)
        score_from = max(scored_until - begin, 1)
        if score_from < end - begin:
            out.append(Window(begin, end, score_from))
        scored_until = end
        if end == n_tokens:
            break
    return out


#: Logit rows turned into log-probabilities at once: float64 copies of a whole window of
#: full-vocabulary rows would cost more memory than the small models being measured.
ROWS_PER_CHUNK = 64


def window_nll_nats(logits: np.ndarray, ids: Sequence[int], score_from: int) -> tuple[float, int]:
    """Summed negative log-likelihood (nats) of ``ids[score_from:]`` given logits of the window.

    ``logits[i]`` predicts ``ids[i + 1]``. Each row's log-softmax is taken in float64 and the
    per-token terms are summed with ``math.fsum`` (exactly rounded), so the result depends
    neither on the order of float32 reductions nor on how rows are chunked.
    """
    targets = np.asarray(ids[score_from:], dtype=np.int64)
    first, last = score_from - 1, len(ids) - 1
    if logits.shape[0] < last or last - first != targets.shape[0]:
        raise ValueError(f"expected {targets.shape[0]} logit rows, got {max(logits.shape[0] - first, 0)}")
    terms: list[float] = []
    for start in range(first, last, ROWS_PER_CHUNK):
        stop = min(start + ROWS_PER_CHUNK, last)
        rows = np.asarray(logits[start:stop], dtype=np.float64)
        peak = rows.max(axis=1, keepdims=True)
        log_z = np.log(np.exp(rows - peak).sum(axis=1)) + peak[:, 0]
        chosen = rows[np.arange(stop - start), targets[start - first : stop - first]]
        terms.extend((log_z - chosen).tolist())
    return math.fsum(terms), int(len(targets))


def logprob_nll_nats(logprobs: Sequence[float | None], score_from: int) -> tuple[float, int]:
    """Summed negative log-likelihood (nats) of a window's tokens from ``score_from`` on, given the
    runtime's log-probability of each prompt token (``logprobs[i]`` scores token ``i``)."""
    terms = list(logprobs[score_from:])
    if not terms or any(t is None for t in terms):
        raise ValueError(f"expected a log-probability for every position from {score_from}, got {list(logprobs)[:4]}...")
    return -math.fsum(terms), len(terms)


def measure_perplexity(runtime: Any, ids: Sequence[int], context: int, stride: int) -> dict[str, Any]:
    """Perplexity of ``runtime`` on ``ids``: ``ppl``, ``nll_sum_nats``, ``scored_tokens``,
    ``windows``, and per-window perplexities and seconds as raw samples."""
    nll_total = 0.0
    scored = 0
    per_window_ppl: list[float] = []
    per_window_s: list[float] = []
    spans = list(windows(len(ids), context, stride))
    with steps(f"perplexity, {context}-token windows", len(spans)) as done:
        for w in spans:
            chunk = list(ids[w.begin : w.end])
            started = time.perf_counter()
            if hasattr(runtime, "prompt_logprobs"):  # an engine that returns log-probabilities, not logits
                logprobs = runtime.prompt_logprobs(chunk)
                per_window_s.append(time.perf_counter() - started)
                nll, count = logprob_nll_nats(logprobs, w.score_from)
            else:
                logits = runtime.logits(chunk)
                per_window_s.append(time.perf_counter() - started)
                nll, count = window_nll_nats(logits, chunk, w.score_from)
            nll_total += nll
            scored += count
            per_window_ppl.append(perplexity(nll, count))
            done()
    return {"ppl": perplexity(nll_total, scored), "nll_sum_nats": nll_total, "scored_tokens": scored,
            "windows": len(per_window_ppl), "window_ppl": per_window_ppl, "window_s": per_window_s}


class _ModelLogits:
    """An in-memory torch causal LM seen through the one method perplexity needs of a runtime."""

    def __init__(self, model: Any, device: str) -> None:
        self.model = model
        self.device = device

    def logits(self, ids: Sequence[int]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            tensor = torch.tensor([list(ids)], dtype=torch.long, device=self.device)
            return self.model(input_ids=tensor, use_cache=False).logits[0].float().cpu().numpy()


def model_perplexity(model: Any, ids: Sequence[int], context: int, device: str = "cpu") -> float:
    """Perplexity of a loaded torch model over disjoint ``context``-token windows of ``ids``."""
    return measure_perplexity(_ModelLogits(model, device), ids, context, context)["ppl"]
