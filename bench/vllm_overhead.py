"""Our vLLM decode tok/s next to a bare ``vllm.LLM.generate`` loop, and the served goodput at one SLO.

Both offline sides load the same artifact with the same dtype, context and KV-cache space,
and generate the same greedy tokens for the same prompt (``ignore_eos``, ``max_tokens``
fixed). Ours goes through ``VllmRuntime.timed_generate`` and ``latency.measure_decode`` (the
bench's path: JSON over a pipe to the worker, which times ``LLM.generate``); the bare loop is
a few lines of vLLM timed around ``LLM.generate`` by itself. Each side runs in processes of
its own and alone: vLLM's CPU backend binds each engine's threads to the same cores, so two
engines alive at once slow whichever is timed. A round starts one side, times ``--reps`` runs
and stops it (every process of its group) before the other starts; rounds alternate the order,
and the summary gives the difference with ours first and second, and the cores each side's
threads were bound to (``compress.measure.overhead``). Then ``vllm serve`` runs the same
artifact and a closed-loop load at one concurrency gives the goodput at the SLO.

    python bench/vllm_overhead.py [--model default] [--method fp32] [--tokens 32] [--reps 5] [--rounds 2]
                                  [--concurrency 4] [--slo ttft_ms=1000,itl_ms=200] [--artifacts DIR]
                                  [--eager] [--no-serve] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROMPT = [1, 2, 3, 4]

# Runs with the vLLM environment's Python, where this project is not importable: it speaks the
# side protocol of compress.measure.overhead by itself (one JSON line of tok/s, then wait).
BARE = textwrap.dedent("""
    import json, os, sys, time
    from vllm import LLM, SamplingParams

    if __name__ == "__main__":
        answers = os.fdopen(os.dup(1), "w", buffering=1)  # vLLM logs to stdout: answers get their own pipe
        os.dup2(2, 1)
        model, dtype, n_ctx, tokens, reps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
        eager = sys.argv[6] == "eager"
        llm = LLM(model=model, dtype=dtype, max_model_len=n_ctx, seed=0, enforce_eager=eager, trust_remote_code=False)
        params = SamplingParams(max_tokens=tokens, temperature=0.0, ignore_eos=True)
        prompt = {"prompt_token_ids": %r}
        llm.generate([prompt], params, use_tqdm=False)  # warm-up
        runs = []
        for _ in range(reps):
            started = time.perf_counter()
            llm.generate([prompt], params, use_tqdm=False)
            runs.append(tokens / (time.perf_counter() - started))
        print(json.dumps({"tok_s": runs}), file=answers)
        sys.stdin.readline()
""" % (PROMPT,))


def harness_side(folder: Path, threads: int, n_ctx: int, tokens: int, reps: int, eager: bool) -> None:
    """The bench's path: ``VllmRuntime`` (a worker process) timed by ``latency.measure_decode``; the
    runs are reported while the engine still runs, so that its threads' binding can be read."""
    from compress import apply
    from compress.measure import latency, overhead
    from compress.measure.vllm_runtime import VllmRuntime

    ours = VllmRuntime(folder, apply.read_manifest(folder), "cpu", threads, n_ctx, enforce_eager=eager)
    try:
        latency.measure_decode(ours, [PROMPT], tokens, reps=1, warmup=0)  # warm-up
        overhead.report_runs([tokens / latency.measure_decode(ours, [PROMPT], tokens, reps=1, warmup=0)["run_s"][0]
                              for _ in range(reps)])
    finally:
        ours.close()


def built_artifact(model: str, method: str, artifacts: Path | None) -> tuple[Path, dict]:
    """The artifact's folder in the bench's cache (built there first if missing) and its manifest."""
    from compress import apply, sources, variants
    from compress.measure.sweep import artifact_folder
    from compress.paths import cache_dir

    source = sources.resolve(model)
    variant = variants.parse(method)
    options = apply.Options(device="cpu")
    key = apply.artifact_key(source, variant, options, options.device)
    folder = artifact_folder(artifacts or cache_dir("artifacts"), source, variant, key)
    if (folder / apply.MANIFEST).is_file():
        return folder, apply.read_manifest(folder)
    print(f"building {variant.name} into {folder}", file=sys.stderr)
    return folder, apply.run(source, variant, folder, options, log=lambda line: print(f"  {line}", file=sys.stderr))


def served_run(folder: Path, dtype: str, n_ctx: int, threads: int, args: argparse.Namespace) -> None:
    from compress.measure import loadgen, serving

    slo = loadgen.Slo.parse(args.slo)
    token_ids = [i % 1000 + 100 for i in range(args.requests * 128)]
    prompts = serving.serve_prompts(token_ids, args.requests, 128)
    with serving.VllmServer(folder, dtype, n_ctx, threads=threads,
                            extra_args=["--enforce-eager"] if args.eager else []) as server:
        params = {"concurrency": args.concurrency, "output_tokens": args.tokens,
                  "slo_ttft_ms": slo.ttft_ms, "slo_itl_ms": slo.itl_ms}
        figures = {f["metric"]: f for f in serving.run_serve_test(f"serve-c{args.concurrency}", params, server.url,
                                                                   server.served_name, prompts)}
    good = figures["goodput_req_s"]
    print(f"served, {args.requests} requests at concurrency {args.concurrency} (128-token prompts, "
          f"{args.tokens} tokens out): goodput {good['value']:.2f} req/s at TTFT <= {slo.ttft_ms:g} ms and "
          f"ITL <= {slo.itl_ms:g} ms ({good['extra']['good']} of {good['extra']['requests']} requests met it); "
          f"request throughput {figures['request_throughput_req_s']['value']:.2f} req/s, "
          f"TTFT p50 {figures['ttft_ms']['stats']['median']:.0f} ms, ITL p50 {figures['itl_ms']['stats']['median']:.0f} ms")


def main() -> None:
    from compress.errors import CompressError
    from compress.measure import overhead
    from compress.measure.runtimes import physical_cores
    from compress.measure.settings import BenchSettings
    from compress.measure.vllm_runtime import artifact_dtype, vllm_env, vllm_python

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--method", default="fp32", help="variant to run (built if not cached)")
    parser.add_argument("--tokens", type=int, default=32, help="tokens generated a run")
    parser.add_argument("--reps", type=int, default=5, help="timed runs of each side a round")
    parser.add_argument("--rounds", type=int, default=2, help="rounds (an engine start each side); the order alternates")
    parser.add_argument("--concurrency", type=int, default=4, help="closed-loop concurrency of the served run")
    parser.add_argument("--requests", type=int, default=16, help="requests of the served run")
    parser.add_argument("--slo", default="ttft_ms=1000,itl_ms=200")
    parser.add_argument("--artifacts", type=Path, default=None, help="artifact cache folder (as bench --artifacts)")
    parser.add_argument("--eager", action="store_true",
                        help="every engine without graph compilation (faster start, same on both sides)")
    parser.add_argument("--no-serve", action="store_true", help="leave out the served run")
    parser.add_argument("--quick", action="store_true",
                        help="a check that it runs: 1 round of 1 run of 4 tokens, eager, no served run")
    parser.add_argument("--side", help=argparse.SUPPRESS)  # a round's child process: the harness side, in FOLDER
    args = parser.parse_args()
    if args.quick:
        args.tokens, args.reps, args.rounds, args.eager, args.no_serve = 4, 1, 1, True, True
    if min(args.tokens, args.reps, args.rounds, args.concurrency, args.requests) < 1:
        raise SystemExit("--tokens, --reps, --rounds, --concurrency and --requests must be at least 1")
    threads = physical_cores()
    # The bench's context length: vLLM's compiled graphs are cached per configuration, so a run
    # after `compress bench --runtime vllm` starts faster.
    n_ctx = max(BenchSettings().context_tokens(), 128 + args.tokens + 8)
    if args.side:
        harness_side(Path(args.side), threads, n_ctx, args.tokens, args.reps, args.eager)
        return

    try:
        vllm = vllm_python()
        folder, manifest = built_artifact(args.model, args.method, args.artifacts)
    except CompressError as err:
        raise SystemExit(f"error: {err}") from None
    dtype = artifact_dtype(manifest)
    script = Path(tempfile.mkdtemp(prefix="compress-bare-")) / "bare_vllm.py"
    script.write_text(BARE)  # a file, not -c: vLLM's spawned engine process re-imports the main module
    mode = "eager" if args.eager else "compiled"
    sides = {
        "harness": lambda: [sys.executable, str(Path(__file__).resolve()), "--side", str(folder),
                            "--tokens", str(args.tokens), "--reps", str(args.reps), *(["--eager"] if args.eager else [])],
        "bare": lambda: [str(vllm), str(script), str(folder), dtype, str(n_ctx), str(args.tokens), str(args.reps), mode],
    }
    print(f"{folder.name} ({dtype}): {2 * args.rounds} engine starts, one at a time; about a minute each",
          file=sys.stderr)
    comparison = overhead.Comparison("harness", "bare")
    try:
        comparison.runs = overhead.alternate(sides, args.rounds, envs={"bare": vllm_env(threads)})
    except CompressError as err:
        raise SystemExit(f"error: {err}") from None
    print(folder.name)
    print(f"{dtype}, tg{args.tokens}, {threads} threads, {'eager' if args.eager else 'compiled graphs'}; "
          f"{args.rounds} rounds of {args.reps} runs a side, each alone")
    labels = {"harness": "compress bench (VllmRuntime)", "bare": "bare LLM.generate loop"}
    for line in overhead.summary(comparison, labels):
        print(line)
    if not args.no_serve:
        try:
            served_run(folder, dtype, n_ctx, threads, args)
        except CompressError as err:
            raise SystemExit(f"error: {err}") from None


if __name__ == "__main__":
    main()
