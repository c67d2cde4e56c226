"""KL divergence and token agreement of a variant against its model's unquantized baseline.

The baseline's next-token distributions are kept compactly (:class:`Reference`): for each
scored position, the ``k`` most probable tokens with their log-probabilities, the
log-probability of the token that really follows, and the log of the probability mass
outside the top ``k`` (the "tail"). The candidate's distribution is compared on the same
``k + 1`` outcomes (each top token, and the tail as one outcome):

    KLD_k(P || Q) = sum_{i in top k} p_i (ln p_i - ln q_i) + p_tail (ln p_tail - ln q_tail)

Merging outcomes never increases a KL divergence (log-sum inequality), so this is a lower
bound of the full-vocabulary KLD, and the gap is exactly

    KLD - KLD_k = p_tail * KL(P_tail || Q_tail)  >= 0,

the tail mass times the divergence of the two distributions renormalized inside the tail.
With ``k`` at least the vocabulary the tail is empty and KLD_k is the full KLD. Records
carry the mean tail mass so that a reader sees how much was merged.

Everything here is a pure function of (reference, candidate log-probabilities); any
runtime that yields full-vocabulary logits or log-probabilities per position can be
compared with :func:`compare`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from compress.measure.metrics import percentile

#: Tokens of the baseline's distribution kept per position (the rest is one tail outcome).
DEFAULT_TOP_K = 256


def log_softmax_rows(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax in float64: ``x - max - ln(sum(exp(x - max)))``."""
    rows = np.asarray(logits, dtype=np.float64)
    peak = rows.max(axis=1, keepdims=True)
    shifted = rows - peak
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


@dataclass
class Reference:
    """The baseline's distributions at the scored positions of one token stream, top-k compacted."""

    top_ids: np.ndarray  # (n, k) int32, most probable first
    top_logp: np.ndarray  # (n, k) float64
    target_logp: np.ndarray  # (n,) float64: ln p(token that follows)
    tail_logp: np.ndarray  # (n,) float64: ln of the mass outside the top k (-inf when empty)

    def __len__(self) -> int:
        return int(self.target_logp.shape[0])

    def rows(self, start: int, stop: int) -> Reference:
        return Reference(self.top_ids[start:stop], self.top_logp[start:stop], self.target_logp[start:stop],
                         self.tail_logp[start:stop])

    @staticmethod
    def concat(parts: Sequence[Reference], k: int) -> Reference:
        if not parts:
            return Reference(np.zeros((0, k), np.int32), np.zeros((0, k)), np.zeros(0), np.zeros(0))
        return Reference(np.concatenate([p.top_ids for p in parts]), np.concatenate([p.top_logp for p in parts]),
                         np.concatenate([p.target_logp for p in parts]), np.concatenate([p.tail_logp for p in parts]))


def _tail_logp(logp: np.ndarray, top_ids: np.ndarray) -> np.ndarray:
    """ln of the probability outside ``top_ids`` per row, summed over the tail itself (not 1 - top)."""
    masked = logp.copy()
    np.put_along_axis(masked, top_ids.astype(np.int64), -np.inf, axis=1)
    peak = masked.max(axis=1)
    out = np.full(logp.shape[0], -np.inf)
    finite = np.isfinite(peak)
    if finite.any():
        m = masked[finite]
        out[finite] = peak[finite] + np.log(np.exp(m - peak[finite, None]).sum(axis=1))
    return out


def reference_from_logprobs(logp: np.ndarray, targets: Sequence[int], k: int = DEFAULT_TOP_K) -> Reference:
    """Compact ``logp`` ((n, vocab) log-probabilities) to its top ``k`` per row; ties keep the lower id first."""
    logp = np.asarray(logp, dtype=np.float64)
    k = min(k, logp.shape[1])
    # A stable sort on -logp orders by probability, then by token id: the same on every run.
    top = np.argsort(-logp, axis=1, kind="stable")[:, :k].astype(np.int32)
    targets_arr = np.asarray(targets, dtype=np.int64)
    return Reference(top_ids=top, top_logp=np.take_along_axis(logp, top.astype(np.int64), axis=1),
                     target_logp=logp[np.arange(len(targets_arr)), targets_arr],
                     tail_logp=_tail_logp(logp, top))


@dataclass
class TokenComparison:
    """Per-position figures of a candidate against the reference."""

    kld: np.ndarray  # KLD_k(P || Q) in nats
    same_top: np.ndarray  # bool: the candidate's most probable token is the baseline's
    logp_ref: np.ndarray  # baseline log-probability of the token that follows
    logp_cand: np.ndarray  # candidate log-probability of that token
    tail_mass: np.ndarray  # baseline mass merged into the tail outcome


def compare(ref: Reference, cand_logp: np.ndarray, targets: Sequence[int]) -> TokenComparison:
    """Compare the candidate's log-probabilities ``cand_logp`` ((n, vocab)) with ``ref`` at the same n positions."""
    cand_logp = np.asarray(cand_logp, dtype=np.float64)
    if cand_logp.shape[0] != len(ref):
        raise ValueError(f"expected {len(ref)} candidate rows, got {cand_logp.shape[0]}")
    ids = ref.top_ids.astype(np.int64)
    q_top = np.take_along_axis(cand_logp, ids, axis=1)
    p_top = np.exp(ref.top_logp)
    terms = p_top * (ref.top_logp - q_top)
    q_tail = _tail_logp(cand_logp, ref.top_ids)
    p_tail = np.exp(ref.tail_logp)
    has_tail = p_tail > 0
    tail_term = np.zeros_like(p_tail)
    tail_term[has_tail] = p_tail[has_tail] * (ref.tail_logp[has_tail] - q_tail[has_tail])
    kld = terms.sum(axis=1) + tail_term
    targets_arr = np.asarray(targets, dtype=np.int64)
    return TokenComparison(kld=np.maximum(kld, 0.0),  # rounding can leave -1e-17 where P == Q
                           same_top=cand_logp.argmax(axis=1) == ref.top_ids[:, 0],
                           logp_ref=ref.target_logp,
                           logp_cand=cand_logp[np.arange(len(targets_arr)), targets_arr],
                           tail_mass=p_tail)


def summarize(parts: Sequence[TokenComparison]) -> dict[str, float]:
    """The figures of a whole stream, every sum exactly rounded (``math.fsum``) so reruns repeat to the last digit.

    - ``kld_mean``, ``kld_p99``, ``kld_max``: over tokens, in nats;
    - ``same_top_pct``: 100 x (positions where both models' most probable token agree) / positions;
    - ``delta_p_rms_pct``: 100 x sqrt(mean((p_cand - p_ref)^2)) of the probability of the token that follows;
    - ``ln_ppl_ratio``: ln(PPL_cand / PPL_base) = mean(ln p_ref - ln p_cand);
    - ``tail_mass_mean``: the baseline mass merged into the tail outcome, averaged (the KLD's approximation).
    """
    kld = [float(x) for p in parts for x in p.kld]
    if not kld:
        raise ValueError("KL divergence of no tokens")
    n = len(kld)
    same = sum(int(x) for p in parts for x in p.same_top)
    dp2 = [(math.exp(float(c)) - math.exp(float(r))) ** 2 for p in parts for c, r in zip(p.logp_cand, p.logp_ref)]
    log_ratio = [float(r) - float(c) for p in parts for c, r in zip(p.logp_cand, p.logp_ref)]
    return {"tokens": n, "kld_mean": math.fsum(kld) / n, "kld_p99": percentile(kld, 99), "kld_max": max(kld),
            "same_top_pct": 100.0 * same / n, "delta_p_rms_pct": 100.0 * math.sqrt(math.fsum(dp2) / n),
            "ln_ppl_ratio": math.fsum(log_ratio) / n,
            "tail_mass_mean": math.fsum(float(x) for p in parts for x in p.tail_mass) / n}
