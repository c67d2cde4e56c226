"""One small adapter per runtime, all with the same interface, so that perplexity and
latency are measured by one code path whatever runs the model.

An adapter exposes ``name``, ``version``, ``device``, ``threads``, ``max_batch``
(``None``: any batch) and:

- ``logits(ids) -> np.ndarray``: float32 logits ``(len(ids), vocab)`` of one window,
  evaluated from an empty cache;
- ``prefill(rows)``: empty the cache, then evaluate equal-length prompts (one row per
  sequence); returns when the device has finished (CUDA is synchronized);
- ``decode_step()``: append the greedy next token of every row and evaluate it;
- ``reset()``, ``peak_memory_bytes()`` (the runtime's own counter, ``None`` where the
  caller must sample RSS), ``close()``.

Greedy decoding keeps every run deterministic; the token choice (an argmax over the
vocabulary) costs microseconds next to a forward pass.
"""

from __future__ import annotations

import gc
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from compress import engines
from compress.errors import UnsupportedError

def physical_cores() -> int:
    """Physical cores: llama.cpp and torch run fastest with one thread per core, not per hyperthread."""
    import psutil

    return psutil.cpu_count(logical=False) or psutil.cpu_count() or 1


def open_runtime(folder: Path, manifest: dict[str, Any], device: str, threads: int, n_ctx: int,
                 runtime: str | None = None, kv_dtype: str | None = None) -> Any:
    """The adapter for an artifact folder: ``runtime`` where given, else its manifest's ``runtime``.

    ``kv_dtype`` asks for a KV-cache type other than the runtime's default; a runtime that has
    no such cache raises :class:`UnsupportedError` (a skipped record, not a failure).
    """
    name = runtime or manifest.get("runtime", engines.DEFAULT)
    cls = engines.adapter(name)
    kv_types = getattr(cls, "kv_dtypes", {})
    if kv_dtype is not None and kv_dtype not in kv_types:
        raise UnsupportedError(f"{name} runs a KV cache of {', '.join(kv_types) or 'its default type only'} here, "
                               f"not {kv_dtype}")
    if kv_types:
        return cls(Path(folder), manifest, device=device, threads=threads, n_ctx=n_ctx, kv_dtype=kv_dtype)
    return cls(Path(folder), manifest, device=device, threads=threads, n_ctx=n_ctx)


class TransformersRuntime:
    """A Hugging Face model in torch (CPU or CUDA), run under ``torch.inference_mode``."""

    name = "transformers"
    max_batch: int | None = None

    def __init__(self, folder: Path, manifest: dict[str, Any], device: str, threads: int, n_ctx: int) -> None:
        import torch
        import transformers

        torch.set_num_threads(threads)
        self.torch = torch
        self.device = device
        self.threads = threads
        self.version = f"{transformers.__version__} (torch {torch.__version__})"
        self.model = _load_hf(folder, device)
        self._input_device = next(self.model.parameters()).device
        # The KV cache is kept in the model's activation dtype.
        self.kv_bytes_per_element = torch.tensor([], dtype=self.model.dtype).element_size()
        self.compute_dtype = {torch.float16: "fp16", torch.bfloat16: "bf16"}.get(self.model.dtype, "fp32")
        self._past: Any = None
        self._next: Any = None

    def held_weight_bytes(self) -> int:
        """Bytes of the weights as loaded (parameters and buffers, packed quantized ones included):
        what a decode step reads, which on the CPU is float32 for a 16-bit checkpoint."""
        # parameters() yields a tied weight once; buffers hold what quantizers pack outside them
        return sum(t.numel() * t.element_size() for t in (*self.model.parameters(), *self.model.buffers()))

    def _sync(self) -> None:
        if self._input_device.type == "cuda":
            self.torch.cuda.synchronize(self._input_device)

    def _tensor(self, rows: Sequence[Sequence[int]]) -> Any:
        return self.torch.tensor([list(r) for r in rows], dtype=self.torch.long, device=self._input_device)

    def logits(self, ids: Sequence[int]) -> np.ndarray:
        with self.torch.inference_mode():
            out = self.model(input_ids=self._tensor([ids]), use_cache=False)
            return out.logits[0].float().cpu().numpy()

    def prefill(self, rows: Sequence[Sequence[int]]) -> None:
        self.reset()
        with self.torch.inference_mode():
            # Only the last position's logits are needed to pick the next token, as in
            # transformers' own generate(); computing all of them would add a vocab-wide
            # matmul per prompt token to the measured time.
            out = self.model(input_ids=self._tensor(rows), use_cache=True, logits_to_keep=1)
            self._past = out.past_key_values
            self._next = out.logits[:, -1, :].argmax(dim=-1, keepdim=True)
        self._sync()

    def decode_step(self) -> None:
        if self._past is None:
            raise RuntimeError("decode_step() before prefill()")
        with self.torch.inference_mode():
            out = self.model(input_ids=self._next, past_key_values=self._past, use_cache=True)
            self._past = out.past_key_values
            self._next = out.logits[:, -1, :].argmax(dim=-1, keepdim=True)
        self._sync()

    def reset(self) -> None:
        self._past = None
        self._next = None

    def peak_memory_bytes(self) -> int | None:
        if self._input_device.type == "cuda":
            return int(self.torch.cuda.max_memory_allocated(self._input_device))
        return None

    def close(self) -> None:
        self.reset()
        del self.model
        gc.collect()
        if self._input_device.type == "cuda":
            self.torch.cuda.empty_cache()


def _load_hf(folder: Path, device: str) -> Any:
    """The methods' loader knows how each HF-format artifact loads (GPTQ, bitsandbytes, pruned...)."""
    from compress.apply.loaders import load_artifact

    model, _tokenizer = load_artifact(folder, device)
    return model.eval()


class LlamaCppRuntime:
    """A GGUF file in llama-cpp-python, greedy decoding.

    Perplexity needs the logits of every position (``logits_all=True``), which makes a
    prompt pay a vocab-wide output matmul per token; timing wants only the last
    position. The context is therefore opened in the mode the call needs, and reopened
    (the weights are memory-mapped, so this takes milliseconds) when the mode changes.
    Several rows decode together in one context of as many sequences
    (:class:`~compress.measure.llamacpp_batch.BatchedContext`), on the same loaded weights.
    """

    name = "llama.cpp"
    max_batch: int | None = None
    #: KV-cache types (``--kv-dtype``) → ggml type names for ``type_k``/``type_v``; their bytes
    #: per element are the planner's (profiles/formats.toml [kv_bytes]). The default is F16.
    kv_dtypes = {"fp16": "F16", "fp32": "F32", "q8_0": "Q8_0", "q4_0": "Q4_0"}

    def __init__(self, folder: Path, manifest: dict[str, Any], device: str, threads: int, n_ctx: int,
                 kv_dtype: str | None = None) -> None:
        import llama_cpp

        self.llama_cpp = llama_cpp
        self.version = llama_cpp.__version__
        file = manifest.get("file")
        if not file:
            raise UnsupportedError(f"{folder}/manifest.json names no GGUF file: expected a 'file' field")
        self.path = Path(folder) / file
        self.threads = threads
        self.n_ctx = n_ctx
        # The wheel built here has no GPU backend; report where the work really runs.
        self.device = "cuda" if device.startswith("cuda") and llama_cpp.llama_supports_gpu_offload() else "cpu"
        # ggml's CPU kernels accumulate in fp32; its CUDA kernels in fp16.
        self.compute_dtype = "fp16" if self.device == "cuda" else "fp32"
        # A child process runs the file first: if llama.cpp's extra CPU buffer types crash on this
        # CPU, the file is opened without them, and every record says so.
        from compress.llamacpp import check_opens
        from compress.planner.memory import kv_bytes_per_element

        self.open_check = check_opens(self.path, threads)
        self.kv_dtype = kv_dtype or "fp16"
        ggml_type = self.kv_dtypes[self.kv_dtype]
        self.kv_bytes_per_element = kv_bytes_per_element(self.kv_dtype)
        # A quantized V cache needs llama.cpp's flash-attention path (llama-context.cpp refuses it otherwise).
        self.cache_args = {} if kv_dtype is None else {
            "type_k": int(getattr(llama_cpp, f"GGML_TYPE_{ggml_type}")),
            "type_v": int(getattr(llama_cpp, f"GGML_TYPE_{ggml_type}")),
            "flash_attn": ggml_type not in ("F16", "F32")}
        self.record_fields = {**self.open_check.record_fields(), "kv_dtype": self.kv_dtype}
        self._llm: Any = None
        self._logits_all: bool | None = None
        self._next: int | None = None
        self._batched: Any = None  # BatchedContext of the last batch size, while rows > 1

    def _open(self, logits_all: bool) -> Any:
        if self._llm is None or self._logits_all != logits_all:
            self.close()
            self._llm = _load_llama(self.path, self.n_ctx, self.threads, logits_all, self.device,
                                    self.open_check.extra_buffer_types, self.cache_args)
            self._logits_all = logits_all
        return self._llm

    def logits(self, ids: Sequence[int]) -> np.ndarray:
        llm = self._open(logits_all=True)
        llm.reset()
        llm.eval(list(ids))
        # A view of llama-cpp-python's own buffer: it is read before the next eval overwrites it.
        return np.asarray(llm.scores[: len(ids)])

    def _last_logits(self) -> np.ndarray:
        ptr = self.llama_cpp.llama_get_logits_ith(self._llm.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(self._llm.n_vocab(),))

    def prefill(self, rows: Sequence[Sequence[int]]) -> None:
        llm = self._open(logits_all=False)
        if len(rows) > 1:
            self._batch_context(llm, len(rows)).prefill(rows)
            self._next = None
            return
        self._close_batched()
        llm.reset()
        llm.eval(list(rows[0]))
        self._next = int(np.argmax(self._last_logits()))

    def _batch_context(self, llm: Any, n_seq: int) -> Any:
        from compress.measure.llamacpp_batch import BatchedContext

        if self._batched is None or self._batched.n_seq != n_seq:
            self._close_batched()
            self._batched = BatchedContext(llm.model, n_seq, self.n_ctx, self.threads, **self.cache_args)
        return self._batched

    def _close_batched(self) -> None:
        if self._batched is not None:
            self._batched.close()
            self._batched = None

    def decode_step(self) -> None:
        if self._batched is not None and self._batched.next:
            self._batched.step()
            return
        if self._next is None:
            raise RuntimeError("decode_step() before prefill()")
        self._llm.eval([self._next])
        self._next = int(np.argmax(self._last_logits()))

    def reset(self) -> None:
        if self._llm is not None:
            self._llm.reset()
        if self._batched is not None:
            self._batched.next = []
        self._next = None

    def peak_memory_bytes(self) -> int | None:
        return None  # llama.cpp allocates outside torch: the caller samples RSS

    def close(self) -> None:
        self._close_batched()
        if self._llm is not None:
            self._llm.close()
            self._llm = None
            gc.collect()


def _load_llama(path: Path, n_ctx: int, threads: int, logits_all: bool, device: str,
                extra_buffer_types: bool, cache_args: dict[str, Any]) -> Any:
    from compress.llamacpp import load_llama

    # n_batch = n_ctx: a whole perplexity window goes through one llama_decode call.
    return load_llama(path, n_ctx=n_ctx, n_threads=threads, logits_all=logits_all, n_batch=n_ctx,
                      n_ubatch=min(n_ctx, 512), n_gpu_layers=-1 if device == "cuda" else 0, seed=0,
                      extra_buffer_types=extra_buffer_types, **cache_args)


class OnnxRuntime:
    """An ONNX export in onnxruntime: perplexity only (the export has no KV-cache inputs)."""

    name = "onnxruntime"
    max_batch: int | None = None
    kv_bytes_per_element = 4

    def __init__(self, folder: Path, manifest: dict[str, Any], device: str, threads: int, n_ctx: int) -> None:
        import onnxruntime

        from compress.apply.onnx import load_onnx_session

        self.version = onnxruntime.__version__
        self.device = "cpu"
        self.compute_dtype = "fp32"
        self.threads = threads
        self.session = load_onnx_session(folder)
        self._inputs = {i.name for i in self.session.get_inputs()}

    def logits(self, ids: Sequence[int]) -> np.ndarray:
        feeds = {"input_ids": np.array([list(ids)], dtype=np.int64)}
        if "attention_mask" in self._inputs:
            feeds["attention_mask"] = np.ones_like(feeds["input_ids"])
        if "position_ids" in self._inputs:
            feeds["position_ids"] = np.arange(len(ids), dtype=np.int64)[None, :]
        return np.asarray(self.session.run(None, feeds)[0][0], dtype=np.float32)

    NO_CACHE = ("the ONNX export has no KV-cache inputs, so decoding would recompute the whole prompt per token; "
                "only perplexity is measured for onnxruntime")

    def prefill(self, rows: Sequence[Sequence[int]]) -> None:
        raise UnsupportedError(self.NO_CACHE)

    def decode_step(self) -> None:
        raise UnsupportedError(self.NO_CACHE)

    def reset(self) -> None:
        return None

    def peak_memory_bytes(self) -> int | None:
        return None

    def close(self) -> None:
        self.session = None
        gc.collect()
