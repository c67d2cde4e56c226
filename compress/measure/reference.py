"""The unquantized baseline's distributions on the evaluation stream, computed once and cached.

The baseline is the source model in float32 through transformers, on the bench's device
and thread count. Its top-k distributions (:class:`compress.measure.kld.Reference`) are
written as one ``.npz`` file under ``$COMPRESS_CACHE/kld-reference/``, keyed by the model
fingerprint, a hash of the token stream, the window settings and convention, and ``k``:
every variant of a bench run, in whatever process, compares itself with the same file.
With the default k = 256 a 2,044-token stream takes about 6 MB (int32 ids, float64
log-probabilities), against 400 MB for full float32 rows of a 49,152-token vocabulary.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from compress.measure.kld import Reference

#: What the baseline is: part of the key, so that another definition never reuses a file.
BASELINE = "transformers float32 of the source model"


def reference_key(fingerprint: str, ids: Sequence[int], context: int, stride: int, convention: str,
                  bos_id: int | None, top_k: int) -> str:
    stream = hashlib.sha256(np.asarray(ids, dtype=np.int64).tobytes()).hexdigest()
    fields = [fingerprint, stream, context, stride, convention, bos_id, top_k, BASELINE]
    return hashlib.sha256(json.dumps(fields).encode()).hexdigest()[:16]


def reference_path(key: str) -> Path:
    from compress.paths import cache_dir

    return cache_dir("kld-reference") / f"{key}.npz"


def load_reference(key: str) -> Reference | None:
    path = reference_path(key)
    if not path.is_file():
        return None
    with np.load(path) as data:
        return Reference(top_ids=data["top_ids"], top_logp=data["top_logp"],
                         target_logp=data["target_logp"], tail_logp=data["tail_logp"])


def save_reference(key: str, ref: Reference) -> Path:
    """Written to a temporary file and renamed, so a reader never sees half a reference.

    Log-probabilities stay float64, so a variant identical to the baseline reads KLD 0 exactly.
    """
    path = reference_path(key)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, top_ids=ref.top_ids.astype(np.int32), top_logp=ref.top_logp,
             target_logp=ref.target_logp, tail_logp=ref.tail_logp)
    os.replace(tmp, path)
    return path


def build_reference(source: Any, ids: Sequence[int], context: int, stride: int, convention: str,
                    bos_id: int | None, top_k: int, device: str, threads: int) -> tuple[Reference, dict[str, Any]]:
    """Run the source model in float32 over the stream and compact its distributions."""
    import torch

    from compress.loading import hf_checkpoint, load_causal_lm
    from compress.measure.perplexity import _ModelLogits, measure_perplexity

    torch.set_num_threads(threads)
    model = load_causal_lm(hf_checkpoint(source), dtype="float32", device=device)
    try:
        res = measure_perplexity(_ModelLogits(model, device), ids, context, stride, convention=convention,
                                 bos_id=bos_id, collect_top_k=top_k)
    finally:
        del model
    return res["reference"], {"ppl": res["ppl"], "scored_tokens": res["scored_tokens"]}


def ensure_reference(source: Any, ids: Sequence[int], context: int, stride: int, convention: str,
                     bos_id: int | None, top_k: int, device: str, threads: int) -> str:
    """The key of the cached reference, building it first where it is missing."""
    key = reference_key(source.fingerprint(), ids, context, stride, convention, bos_id, top_k)
    if not reference_path(key).is_file():
        ref, _ = build_reference(source, ids, context, stride, convention, bos_id, top_k, device, threads)
        save_reference(key, ref)
    return key
