"""Batched llama.cpp decoding: several sequences in one context give each sequence's own logits."""

from __future__ import annotations

import numpy as np
import pytest

from compress import apply, llamacpp, results, sources, variants
from compress.gguf_writer import write_gguf
from compress.measure import sweep
from compress.measure.llamacpp_batch import BatchedContext
from compress.measure.settings import BenchSettings

# Batched and single-sequence evaluation run the same F32 kernels over differently shaped
# matrices; on the tiny Llama (logits up to ~1) they agree to ~1e-5. A sequence that saw
# another's KV entries would be off by ~0.1 or more.
LOGIT_ATOL = 1e-3


@pytest.fixture(scope="module")
def tiny_gguf(tiny_llama, tmp_path_factory):
    path = tmp_path_factory.mktemp("gguf") / "tiny.f32.gguf"
    write_gguf(tiny_llama, path, dtype="F32")
    return path


def _alone(llm, ids):
    """Logits of the last token of ``ids`` evaluated as the only sequence."""
    llm.reset()
    llm.eval(list(ids))
    return np.array(llm.scores[len(ids) - 1])


def test_batched_sequences_match_each_sequence_alone(tiny_gguf):
    llm = llamacpp.load_llama(tiny_gguf, n_ctx=128, n_threads=1, logits_all=True)
    rows = [[5, 17, 42, 99, 3], [7, 7, 7, 7, 7], [100, 200, 300, 400, 11]]
    batched = BatchedContext(llm.model, n_seq=len(rows), n_ctx_per_seq=64, threads=1)
    try:
        batched.prefill(rows)
        for s, row in enumerate(rows):
            np.testing.assert_allclose(batched.logits(batched.last[s]), _alone(llm, row), atol=LOGIT_ATOL)
        history = [list(r) for r in rows]
        for _ in range(4):
            for s in range(len(rows)):
                history[s].append(batched.next[s])
            batched.step()
            for s in range(len(rows)):
                np.testing.assert_allclose(batched.logits(batched.last[s]), _alone(llm, history[s]), atol=LOGIT_ATOL)
        # a new prefill empties every sequence's cache: the first answer comes back
        batched.prefill(rows[:2])
        np.testing.assert_allclose(batched.logits(batched.last[1]), _alone(llm, rows[1]), atol=LOGIT_ATOL)
    finally:
        batched.close()
        llm.close()


def test_gguf_variants_get_batch_throughput_records(tiny_llama, tmp_path):
    path = tmp_path / "bench.jsonl"
    settings = BenchSettings(pp_tokens=8, tg_tokens=8, reps=2, warmup=1, batch_sizes=(1, 3), threads=1, device="cpu",
                             ppl_tokens=256, ppl_context=128, ppl_stride=128, tests=("batch",))
    sweep.run_sweep(sources.resolve(str(tiny_llama)), variants.parse_list("q8_0"), settings,
                    apply.Options(device="cpu"), path,
                    tmp_path / "artifacts", log=lambda line: None)
    stored = [r for r in results.load(path) if r["test"].startswith("batch")]
    assert {r["status"] for r in stored} == {"ok"}
    assert {r["runtime"] for r in stored} == {"llama.cpp"}
    throughput = {r["test"]: r["value"] for r in stored if r["metric"] == "throughput_tok_s"}
    assert set(throughput) == {"batch1", "batch3"} and min(throughput.values()) > 0
