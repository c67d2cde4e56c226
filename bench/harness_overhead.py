"""How much the bench harness costs: our decode tok/s of a GGUF next to a bare llama-cpp-python loop.

Both sides run the same file, thread count, prompt and greedy decoding (argmax of the last
logits, then ``eval`` of that one token); ours goes through ``LlamaCppRuntime`` and
``latency.measure_decode`` (a timer around every step), the bare loop times the whole run
once. Runs alternate (ours, bare, ours, ...) so that drift in machine load hits both alike.

    python bench/harness_overhead.py [--model default|FILE.gguf] [--tokens 64] [--reps 5] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np


def bare_decode_tok_s(llm, prompt: list[int], tokens: int) -> float:
    import llama_cpp

    llm.reset()
    llm.eval(prompt)
    started = time.perf_counter()
    for _ in range(tokens):
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(llm.n_vocab(),))
        llm.eval([int(np.argmax(logits))])
    return tokens / (time.perf_counter() - started)


def main() -> None:
    from compress import sources
    from compress.llamacpp import load_llama
    from compress.measure import latency
    from compress.measure.runtimes import LlamaCppRuntime, physical_cores

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default", help="'default' or a .gguf file")
    parser.add_argument("--tokens", type=int, default=64, help="tokens generated a run")
    parser.add_argument("--reps", type=int, default=5, help="timed runs of each side")
    parser.add_argument("--threads", type=int, default=None, help="threads (default: physical cores)")
    args = parser.parse_args()

    source = sources.resolve(args.model)
    if source.kind != "gguf":
        raise SystemExit(f"expected a .gguf model, got a {source.kind} folder")
    threads = args.threads or physical_cores()
    prompt = [1, 2, 3, 4]  # a fixed short prompt; token ids are valid in any vocabulary
    n_ctx = len(prompt) + args.tokens + 8
    ours = LlamaCppRuntime(source.path.parent, {"file": source.path.name}, device="cpu", threads=threads, n_ctx=n_ctx)
    bare = load_llama(Path(source.path), n_ctx=n_ctx, n_threads=threads, logits_all=False, n_batch=n_ctx)

    ours_tok_s, bare_tok_s = [], []
    latency.measure_decode(ours, [prompt], args.tokens, reps=0, warmup=1)
    bare_decode_tok_s(bare, prompt, args.tokens)  # warm-up
    for _ in range(args.reps):
        run = latency.measure_decode(ours, [prompt], args.tokens, reps=1, warmup=0)
        ours_tok_s.append(args.tokens / run["run_s"][0])
        bare_tok_s.append(bare_decode_tok_s(bare, prompt, args.tokens))
    ours.close()
    bare.close()

    ours_median, bare_median = statistics.median(ours_tok_s), statistics.median(bare_tok_s)
    print(f"model: {source.path.name}, threads {threads}, tg{args.tokens}, {args.reps} alternating runs each")
    print(f"compress bench (LlamaCppRuntime + measure_decode): {ours_median:8.2f} tok/s  samples {[round(x, 2) for x in ours_tok_s]}")
    print(f"bare llama-cpp-python eval loop:                   {bare_median:8.2f} tok/s  samples {[round(x, 2) for x in bare_tok_s]}")
    print(f"difference: {(ours_median - bare_median) / bare_median * 100:+.1f}% (negative: the harness is slower)")


if __name__ == "__main__":
    main()
