"""Batched greedy decoding in llama.cpp through llama-cpp-python's low-level API.

``llama_cpp.Llama`` evaluates one sequence per context, but a llama.cpp context holds
``n_seq_max`` sequences, each with its own part of the KV cache, and ``llama_decode``
evaluates a ``llama_batch`` whose tokens each name their sequence id and position (this is
how llama.cpp's own ``llama-batched`` example and ``llama-server``'s parallel slots work,
include/llama.h). A prefill puts every row's prompt in one batch, asking for logits only at
each row's last token; a decode step puts one token a sequence.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from compress.errors import RuntimeFailure


class BatchedContext:
    """A llama.cpp context of ``n_seq`` sequences of up to ``n_ctx_per_seq`` tokens each, on a loaded model."""

    def __init__(self, model: Any, n_seq: int, n_ctx_per_seq: int, threads: int, type_k: int | None = None,
                 type_v: int | None = None, flash_attn: bool = False) -> None:
        import llama_cpp

        self.lib = llama_cpp
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = n_seq * n_ctx_per_seq
        params.n_batch = params.n_ctx  # a whole prefill of every row goes through one llama_decode
        params.n_ubatch = min(params.n_ctx, 512)
        params.n_seq_max = n_seq
        params.n_threads = params.n_threads_batch = threads
        if type_k is not None:  # a quantized KV cache, as the single-sequence context has (--kv-dtype)
            params.type_k, params.type_v = type_k, type_v
        if flash_attn:
            params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
        self.ctx = llama_cpp.llama_init_from_model(model, params)
        if not self.ctx:
            raise RuntimeFailure(f"llama.cpp could not create a context of {n_seq} sequences x {n_ctx_per_seq} tokens")
        self.capacity = params.n_batch
        self.batch = llama_cpp.llama_batch_init(self.capacity, 0, n_seq)
        self.n_seq = n_seq
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(model))
        self.next: list[int] = []  # each sequence's greedy next token
        self.pos: list[int] = []  # each sequence's next position
        self.last: list[int] = []  # batch index of each sequence's newest logits

    def _decode(self, entries: Sequence[tuple[int, int, int, bool]]) -> None:
        """Evaluate ``(token, position, sequence id, wants logits)`` entries in one batch."""
        if len(entries) > self.capacity:
            raise RuntimeFailure(f"a batch of {len(entries)} tokens exceeds the context's {self.capacity}")
        b = self.batch
        for i, (token, pos, seq, logits) in enumerate(entries):
            b.token[i] = token
            b.pos[i] = pos
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = seq
            b.logits[i] = logits
        b.n_tokens = len(entries)
        status = self.lib.llama_decode(self.ctx, b)
        if status != 0:
            raise RuntimeFailure(f"llama_decode returned {status} for a batch of {len(entries)} tokens "
                                 f"over {self.n_seq} sequences: expected 0")

    def logits(self, index: int) -> np.ndarray:
        """The logits of the batch's ``index``-th token (a view: read it before the next decode)."""
        ptr = self.lib.llama_get_logits_ith(self.ctx, index)
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))

    def _argmax(self, index: int) -> int:
        return int(np.argmax(self.logits(index)))

    def prefill(self, rows: Sequence[Sequence[int]]) -> None:
        """Empty every sequence, evaluate each row as its own sequence, pick each row's next token."""
        if not 1 <= len(rows) <= self.n_seq:
            raise RuntimeFailure(f"expected 1 to {self.n_seq} rows, got {len(rows)}")
        self.lib.llama_memory_clear(self.lib.llama_get_memory(self.ctx), True)
        entries, last = [], []
        for seq, row in enumerate(rows):
            for pos, token in enumerate(row):
                entries.append((int(token), pos, seq, pos == len(row) - 1))
            last.append(len(entries) - 1)
        self._decode(entries)
        self.last = last
        self.next = [self._argmax(i) for i in last]
        self.pos = [len(r) for r in rows]

    def step(self) -> None:
        """One greedy token for every sequence, evaluated together."""
        if not self.next:
            raise RuntimeError("step() before prefill()")
        self._decode([(tok, self.pos[s], s, True) for s, tok in enumerate(self.next)])
        self.last = list(range(len(self.next)))
        self.next = [self._argmax(s) for s in self.last]
        self.pos = [p + 1 for p in self.pos]

    def close(self) -> None:
        if self.ctx:
            self.lib.llama_batch_free(self.batch)
            self.lib.llama_free(self.ctx)
            self.ctx = None
