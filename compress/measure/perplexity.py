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

The ``llama.cpp`` convention reproduces ``llama-perplexity -c N`` instead, so that numbers
can be set beside published llama.cpp tables: where the vocabulary adds a BOS token, the
stream starts with one and the first token of every chunk is replaced by it; the stream is
cut into ``floor(tokens / N)`` disjoint chunks of N; only the second half of each chunk is
scored (positions ``N/2 + 1 .. N - 1``, each with at least ``N/2`` tokens of history), so a
chunk scores ``N - 1 - N/2`` tokens (:func:`llama_cpp_windows`).

When a :class:`~compress.measure.kld.Reference` of the unquantized baseline is given, the
same pass compares each scored position's distribution with it (KL divergence, top-token
agreement); with ``collect_top_k`` the pass builds such a reference instead.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from compress.errors import RuntimeFailure
from compress.measure import kld as kld_lib
from compress.measure.metrics import perplexity
from compress.progress import steps

CONVENTIONS = ("compress", "llama.cpp")


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


def llama_cpp_windows(n_tokens: int, n_ctx: int) -> list[Window]:
    """``llama-perplexity``'s chunks: ``floor(n_tokens / n_ctx)`` disjoint windows of ``n_ctx`` tokens.

    In each chunk only the logits from position ``first = n_ctx // 2`` on are scored, against
    the tokens at ``first + 1 .. n_ctx - 1``: ``n_ctx - 1 - n_ctx // 2`` tokens a chunk.
    """
    if n_ctx < 4:
        raise ValueError(f"a llama.cpp perplexity chunk needs at least 4 tokens, got n_ctx={n_ctx}")
    chunks = n_tokens // n_ctx
    if chunks < 1:
        raise ValueError(f"the llama.cpp convention needs at least one full chunk of {n_ctx} tokens, got {n_tokens}")
    first = n_ctx // 2
    return [Window(i * n_ctx, (i + 1) * n_ctx, first + 1) for i in range(chunks)]


def convention_stream(ids: Sequence[int], convention: str, bos_id: int | None) -> list[int]:
    """The token stream a convention scores: llama.cpp's starts with BOS where the vocabulary adds one."""
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown perplexity convention {convention!r}: expected one of {', '.join(CONVENTIONS)}")
    if convention == "llama.cpp" and bos_id is not None:
        return [bos_id, *ids]
    return list(ids)


def convention_windows(n_tokens: int, context: int, stride: int, convention: str) -> list[Window]:
    if convention == "llama.cpp":
        return llama_cpp_windows(n_tokens, context)
    return windows(n_tokens, context, stride)


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


def scored_logprobs(logits: np.ndarray, ids: Sequence[int], score_from: int):
    """Yield ``(log-probability rows, targets)`` of the scored positions, ``ROWS_PER_CHUNK`` rows at a time."""
    first, last = score_from - 1, len(ids) - 1
    for start in range(first, last, ROWS_PER_CHUNK):
        stop = min(start + ROWS_PER_CHUNK, last)
        yield kld_lib.log_softmax_rows(logits[start:stop]), list(ids[start + 1 : stop + 1])


def measure_perplexity(runtime: Any, ids: Sequence[int], context: int, stride: int, convention: str = "compress",
                       bos_id: int | None = None, reference: kld_lib.Reference | None = None,
                       collect_top_k: int | None = None) -> dict[str, Any]:
    """Perplexity of ``runtime`` on ``ids``: ``ppl``, ``nll_sum_nats``, ``scored_tokens``,
    ``windows``, and per-window perplexities and seconds as raw samples.

    ``ids`` is the stream as the convention scores it (see :func:`convention_stream`); with the
    llama.cpp convention and a ``bos_id`` the first token of every chunk is replaced by BOS.
    With a ``reference``, ``kld`` holds :func:`compress.measure.kld.summarize`'s figures and
    ``window_kld`` the per-window mean KLD; with ``collect_top_k``, ``reference`` is the
    runtime's own compacted distributions. An engine that returns only each prompt token's
    log-probability (``runtime.prompt_logprobs``, vLLM) gives perplexity but no KLD: the
    reference needs the candidate's whole distribution at every position.
    """
    engine_logprobs = hasattr(runtime, "prompt_logprobs")
    if engine_logprobs:
        reference = collect_top_k = None
    nll_total = 0.0
    scored = 0
    per_window_ppl: list[float] = []
    per_window_s: list[float] = []
    per_window_kld: list[float] = []
    comparisons: list[kld_lib.TokenComparison] = []
    collected: list[kld_lib.Reference] = []
    row = 0  # scored positions so far: the reference's row of the next one
    spans = convention_windows(len(ids), context, stride, convention)
    with steps(f"perplexity, {context}-token windows", len(spans)) as done:
        for w in spans:
            chunk = list(ids[w.begin : w.end])
            if convention == "llama.cpp" and bos_id is not None:
                chunk[0] = bos_id
            started = time.perf_counter()
            if engine_logprobs:  # an engine that returns log-probabilities, not logits
                logprobs = runtime.prompt_logprobs(chunk)
                per_window_s.append(time.perf_counter() - started)
                nll, count = logprob_nll_nats(logprobs, w.score_from)
            else:
                logits = runtime.logits(chunk)
                per_window_s.append(time.perf_counter() - started)
                nll, count = window_nll_nats(logits, chunk, w.score_from)
            if not math.isfinite(nll):
                # One NaN or infinite weight spreads through every later activation: the figure
                # would be NaN, which no record can hold and no comparison can use.
                raise RuntimeFailure(f"the model's log-likelihood is {nll} in perplexity window {len(per_window_ppl) + 1} "
                                     "(its logits are NaN or infinite): expected finite weights; a weight of the "
                                     "checkpoint is NaN or infinite, or the method broke the model")
            nll_total += nll
            scored += count
            per_window_ppl.append(perplexity(nll, count))
            window_parts = []
            for logp, targets in (scored_logprobs(logits, chunk, w.score_from)
                                  if reference is not None or collect_top_k is not None else ()):
                if collect_top_k is not None:
                    collected.append(kld_lib.reference_from_logprobs(logp, targets, collect_top_k))
                if reference is not None:
                    if row + len(targets) > len(reference):
                        raise ValueError(f"the reference holds {len(reference)} positions: expected at least "
                                         f"{row + len(targets)}; it was built with other settings")
                    window_parts.append(kld_lib.compare(reference.rows(row, row + len(targets)), logp, targets))
                row += len(targets)
            if window_parts:
                comparisons += window_parts
                per_window_kld.append(kld_lib.summarize(window_parts)["kld_mean"])
            done()
    out: dict[str, Any] = {"ppl": perplexity(nll_total, scored), "nll_sum_nats": nll_total, "scored_tokens": scored,
                           "windows": len(per_window_ppl), "window_ppl": per_window_ppl, "window_s": per_window_s}
    if reference is not None:
        if row != len(reference):
            raise ValueError(f"the reference holds {len(reference)} positions but {row} were scored: "
                             "it was built with other settings")
        out["kld"] = kld_lib.summarize(comparisons)
        out["window_kld"] = per_window_kld
    if collect_top_k is not None:
        out["reference"] = kld_lib.Reference.concat(collected, collect_top_k)
    return out


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
