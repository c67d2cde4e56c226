"""What a llama.cpp build costs in speed: prefill and decode tok/s of one GGUF under several builds.

Each build is a Python environment with its own llama-cpp-python (e.g. the set-up's portable
x86-64-v3 build, and one compiled with the default ``-march=native``). Every run is a process
of its own, and the builds alternate (A, B, A, B, ...) so that drift in machine load hits all of
them alike. A run loads the file, evaluates a prompt of ``--pp`` tokens (prefill), then
generates ``--tg`` tokens greedily one at a time (decode), and reports both rates; the table
shows each build's median, its spread, and its ratio to the first build.

    python bench/llama_build_speed.py --python .venv/bin/python --python /tmp/native/bin/python
    python bench/llama_build_speed.py --quick          # this environment only, one short run
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

# Run inside each build's interpreter: only llama_cpp and numpy, nothing of this project.
RUN = r"""
import json, os, sys, time
import numpy as np
import llama_cpp
from llama_cpp import Llama

path, pp, tg, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
llm = Llama(model_path=path, n_ctx=pp + tg + 8, n_batch=pp, n_threads=threads, n_threads_batch=threads,
            verbose=False)
prompt = [(7 * i) % 1000 + 10 for i in range(pp)]  # valid ids in any vocabulary of 1,010 or more
llm.eval(prompt[:8]); llm.reset()  # warm-up: first-touch of the weights' pages
started = time.perf_counter()
llm.eval(prompt)
prefill_s = time.perf_counter() - started
started = time.perf_counter()
for _ in range(tg):
    logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(llm.n_vocab(),))
    llm.eval([int(np.argmax(logits))])
decode_s = time.perf_counter() - started
info = llama_cpp.llama_print_system_info().decode(errors="replace")
print(json.dumps({"pp_tok_s": pp / prefill_s, "tg_tok_s": tg / decode_s, "system_info": info,
                  "version": llama_cpp.__version__}))
"""


def features(system_info: str) -> str:
    """The x86 extensions a build was compiled with, from its system info (``AVX2 = 1 | ...``):
    ``AVX2``, ``AVX2 AVX-512`` or with ``AMX``."""
    from compress.llamacpp import build_features

    on = build_features(system_info)
    names = [label for label, present in (("AVX2", "AVX2" in on), ("AVX-512", any(n.startswith("AVX512") for n in on)),
                                          ("AMX", any(n.startswith("AMX") for n in on))) if present]
    return " ".join(names) or "no AVX2"


def run_once(python: str, model: Path, pp: int, tg: int, threads: int) -> dict:
    done = subprocess.run([python, "-c", RUN, str(model), str(pp), str(tg), str(threads)], capture_output=True,
                          text=True, timeout=900)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        raise SystemExit(f"{python}: the run failed ({last})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", action="append", help="interpreter of a build (repeat; default: this one)")
    parser.add_argument("--model", default="default", help="'default' or a .gguf file")
    parser.add_argument("--pp", type=int, default=128, help="prompt tokens of the prefill")
    parser.add_argument("--tg", type=int, default=32, help="generated tokens of the decode")
    parser.add_argument("--reps", type=int, default=5, help="runs of each build")
    parser.add_argument("--threads", type=int, default=None, help="threads (default: physical cores)")
    parser.add_argument("--quick", action="store_true", help="one short run of this environment (a smoke test)")
    args = parser.parse_args()
    if args.quick:
        args.pp, args.tg, args.reps = 16, 4, 1

    from compress import sources
    from compress.measure.runtimes import physical_cores

    source = sources.resolve(args.model)
    if source.kind != "gguf":
        raise SystemExit(f"expected a .gguf model, got a {source.kind} folder: pass --model FILE.gguf")
    pythons = args.python or [sys.executable]
    threads = args.threads or physical_cores()
    runs: dict[str, list[dict]] = {p: [] for p in pythons}
    for rep in range(args.reps):
        for python in pythons:
            runs[python].append(run_once(python, Path(source.path), args.pp, args.tg, threads))
        print(f"run {rep + 1}/{args.reps} done", file=sys.stderr, flush=True)

    print(f"{source.path.name}, prefill {args.pp} tokens, decode {args.tg} tokens, {threads} threads, "
          f"median of {args.reps} alternated runs")
    print(f"{'build':<28} {'pp tok/s':>9} {'spread':>7} {'x 1st':>6} {'tg tok/s':>9} {'spread':>7} {'x 1st':>6}")
    first = None
    for python, results in runs.items():
        row = {}
        for key in ("pp_tok_s", "tg_tok_s"):
            values = [r[key] for r in results]
            median = statistics.median(values)
            row[key] = (median, 100 * (max(values) - min(values)) / median)
        first = first or row
        name = f"{features(results[0]['system_info'])}, {Path(python).parent.parent.name}"
        cells = [f"{row[k][0]:>9.1f} {row[k][1]:>6.0f}% {row[k][0] / first[k][0]:>5.2f}x" for k in ("pp_tok_s", "tg_tok_s")]
        print(f"{name[:28]:<28} {' '.join(cells)}")


if __name__ == "__main__":
    main()
