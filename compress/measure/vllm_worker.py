"""The vLLM side of ``compress bench --runtime vllm``: a script run by the vLLM environment's Python.

vLLM pins its own transformers and compressed-tensors, so it lives in a virtualenv of its
own and the bench process never imports it. The bench starts this file as a child process
(``python vllm_worker.py``) and talks to it in JSON lines: one request a line on stdin,
one answer a line on the protocol pipe (the process's original stdout; vLLM's own log
output is sent to stderr). Only the standard library and vllm are imported here.

Requests (``op`` and its fields) and answers:

- ``load`` (``model``, ``dtype``, ``max_model_len``, ``seed``): ``version``, ``device``, ``load_s``;
- ``prompt_logprobs`` (``ids``): ``logprobs``, the log-probability of each prompt token given the
  ones before it (``None`` for the first), from the engine's own forward pass;
- ``generate`` (``rows``, ``max_tokens``, ``reps``, ``warmup``): ``run_s``, the seconds of each
  timed ``LLM.generate`` call over all rows, and ``tokens``, the tokens each call produced;
- ``quit``.

Timing happens here, around ``LLM.generate`` alone, so the pipe adds nothing to a figure.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any


def _greedy(max_tokens: int, **extra: Any) -> Any:
    from vllm import SamplingParams

    # ignore_eos: every request generates exactly max_tokens, as llama-bench's tg does.
    return SamplingParams(max_tokens=max_tokens, temperature=0.0, ignore_eos=True, **extra)


class Worker:
    def __init__(self) -> None:
        self.llm: Any = None

    def load(self, model: str, dtype: str, max_model_len: int, seed: int = 0,
             enforce_eager: bool = False) -> dict[str, Any]:
        import vllm
        from vllm import LLM

        started = time.perf_counter()
        # Code that comes with a model is never run.
        self.llm = LLM(model=model, dtype=dtype, max_model_len=max_model_len, seed=seed,
                       enforce_eager=enforce_eager, trust_remote_code=False)
        try:
            from vllm.platforms import current_platform

            device = str(current_platform.device_type)
        except Exception:  # an older layout: the engine runs, only the name is unknown
            device = "unknown"
        return {"version": vllm.__version__, "device": device, "load_s": time.perf_counter() - started}

    def prompt_logprobs(self, ids: list[int]) -> dict[str, Any]:
        # prompt_logprobs=0: only the log-probability of the prompt's own token at each position.
        out = self.llm.generate([{"prompt_token_ids": ids}], _greedy(1, prompt_logprobs=0), use_tqdm=False)[0]
        values: list[float | None] = []
        for position, entry in enumerate(out.prompt_logprobs or []):
            values.append(None if entry is None else float(entry[ids[position]].logprob))
        return {"logprobs": values}

    def generate(self, rows: list[list[int]], max_tokens: int, reps: int, warmup: int) -> dict[str, Any]:
        prompts = [{"prompt_token_ids": list(r)} for r in rows]
        params = _greedy(max_tokens)
        run_s: list[float] = []
        tokens: list[int] = []
        for i in range(warmup + reps):
            started = time.perf_counter()
            outputs = self.llm.generate(prompts, params, use_tqdm=False)
            seconds = time.perf_counter() - started
            if i >= warmup:
                run_s.append(seconds)
                tokens.append(sum(len(o.outputs[0].token_ids) for o in outputs))
        return {"run_s": run_s, "tokens": tokens}


OPS = ("load", "prompt_logprobs", "generate")


def main() -> None:
    # The protocol keeps the original stdout; everything vLLM prints goes to stderr.
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    worker = Worker()
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        op = request.pop("op")
        if op == "quit":
            break
        try:
            if op not in OPS:
                raise ValueError(f"unknown op {op!r}: expected one of {', '.join(OPS)}")
            answer = {"ok": True, **getattr(worker, op)(**request)}
        except Exception as err:  # reported to the bench, which records the failure
            answer = {"ok": False, "error": f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"}
        protocol.write(json.dumps(answer) + "\n")
    protocol.close()


if __name__ == "__main__":  # vLLM spawns its engine process, which re-imports this module
    main()
