"""How much the bench harness costs: our decode tok/s of a GGUF next to a bare llama-cpp-python loop.

Both sides run the same file, thread count, prompt and greedy decoding (argmax of the last
logits, then ``eval`` of that one token); ours goes through ``LlamaCppRuntime`` and
``latency.measure_decode`` (a timer around every step), the bare loop times the whole run
once. Each side runs in a process of its own and alone: a round starts one, times ``--reps``
runs, and stops it before the other starts; rounds alternate the order, and the summary gives
the difference with the harness first and second, and the cores each side's threads could use
(``compress.measure.overhead``).

    python bench/harness_overhead.py [--model default|FILE.gguf] [--tokens 64] [--reps 5]
                                     [--rounds 4] [--threads N] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROMPT = [1, 2, 3, 4]  # a fixed short prompt; token ids are valid in any vocabulary


def bare_decode_tok_s(llm, prompt: list[int], tokens: int) -> float:
    import llama_cpp

    llm.reset()
    llm.eval(prompt)
    started = time.perf_counter()
    for _ in range(tokens):
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(llm.n_vocab(),))
        llm.eval([int(np.argmax(logits))])
    return tokens / (time.perf_counter() - started)


def run_side(side: str, model: Path, tokens: int, reps: int, threads: int) -> None:
    """One side's timed runs after one untimed run, reported while its model is still loaded
    (so that the cores of its threads can be read)."""
    from compress.llamacpp import load_llama
    from compress.measure import latency, overhead
    from compress.measure.runtimes import LlamaCppRuntime

    n_ctx = len(PROMPT) + tokens + 8
    if side == "harness":
        ours = LlamaCppRuntime(model.parent, {"file": model.name}, device="cpu", threads=threads, n_ctx=n_ctx)
        latency.measure_decode(ours, [PROMPT], tokens, reps=0, warmup=1)
        overhead.report_runs([tokens / latency.measure_decode(ours, [PROMPT], tokens, reps=1, warmup=0)["run_s"][0]
                              for _ in range(reps)])
        ours.close()
        return
    bare = load_llama(model, n_ctx=n_ctx, n_threads=threads, logits_all=False, n_batch=n_ctx)
    bare_decode_tok_s(bare, PROMPT, tokens)
    overhead.report_runs([bare_decode_tok_s(bare, PROMPT, tokens) for _ in range(reps)])
    bare.close()


def main() -> None:
    from compress import sources
    from compress.errors import CompressError
    from compress.measure import overhead
    from compress.measure.runtimes import physical_cores

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default", help="'default' or a .gguf file")
    parser.add_argument("--tokens", type=int, default=64, help="tokens generated a run")
    parser.add_argument("--reps", type=int, default=5, help="timed runs of each side a round")
    parser.add_argument("--rounds", type=int, default=4, help="rounds; the order of the sides alternates")
    parser.add_argument("--threads", type=int, default=None, help="threads (default: physical cores)")
    parser.add_argument("--quick", action="store_true", help="a check that it runs: 1 round of 1 run of 4 tokens")
    parser.add_argument("--side", choices=("harness", "bare"), help=argparse.SUPPRESS)  # a round's child process
    args = parser.parse_args()
    if args.quick:
        args.tokens, args.reps, args.rounds = 4, 1, 1
    if min(args.tokens, args.reps, args.rounds) < 1:
        raise SystemExit(f"--tokens, --reps and --rounds must be at least 1, got {args.tokens}, {args.reps}, "
                         f"{args.rounds}")
    try:
        source = sources.resolve(args.model)
    except CompressError as err:
        raise SystemExit(f"error: {err}") from None
    if source.kind != "gguf":
        raise SystemExit(f"expected a .gguf model, got a {source.kind} folder: pass --model default or a .gguf file")
    threads = args.threads or physical_cores()
    if args.side:
        run_side(args.side, Path(source.path), args.tokens, args.reps, threads)
        return

    def command(side: str) -> list[str]:
        return [sys.executable, str(Path(__file__).resolve()), "--side", side, "--model", str(source.path),
                "--tokens", str(args.tokens), "--reps", str(args.reps), "--threads", str(threads)]

    comparison = overhead.Comparison("harness", "bare")
    try:
        comparison.runs = overhead.alternate({"harness": lambda: command("harness"), "bare": lambda: command("bare")},
                                             args.rounds)
    except CompressError as err:
        raise SystemExit(f"error: {err}") from None
    print(f"{source.path.name}, {threads} threads, tg{args.tokens}")
    print(f"{args.rounds} rounds of {args.reps} runs a side, each side alone in its own process")
    labels = {"harness": "compress bench (LlamaCppRuntime)", "bare": "bare llama-cpp-python loop"}
    for line in overhead.summary(comparison, labels):
        print(line)


if __name__ == "__main__":
    main()
