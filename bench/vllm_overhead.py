"""Our vLLM decode tok/s next to a bare ``vllm.LLM.generate`` loop, and the served goodput at one SLO.

Both offline sides load the same artifact with the same dtype, context and KV-cache space,
and generate the same greedy tokens for the same prompt (``ignore_eos``, ``max_tokens``
fixed). Ours goes through ``VllmRuntime.timed_generate`` and ``latency.measure_decode`` (the
bench's path: JSON over a pipe to the worker, which times ``LLM.generate``); the bare loop is
a few lines of vLLM in a process of its own, timed around ``LLM.generate`` by itself. Runs
alternate (ours, bare, ours, ...) so that drift in machine load hits both alike. Then
``vllm serve`` runs the same artifact and a closed-loop load at one concurrency gives the
goodput at the SLO.

    python bench/vllm_overhead.py [--model default] [--method fp32] [--tokens 32] [--reps 5]
                                  [--concurrency 4] [--slo ttft_ms=1000,itl_ms=200] [--artifacts DIR] [--eager]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

BARE = textwrap.dedent("""
    import os, sys, time
    from vllm import LLM, SamplingParams

    if __name__ == "__main__":
        answers = os.fdopen(os.dup(1), "w", buffering=1)  # vLLM logs to stdout: answers get their own pipe
        os.dup2(2, 1)
        model, dtype, n_ctx, tokens = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
        eager = sys.argv[5] == "eager"
        llm = LLM(model=model, dtype=dtype, max_model_len=n_ctx, seed=0, enforce_eager=eager, trust_remote_code=False)
        params = SamplingParams(max_tokens=tokens, temperature=0.0, ignore_eos=True)
        prompt = {"prompt_token_ids": [1, 2, 3, 4]}
        print("ready", file=answers)
        for line in sys.stdin:
            started = time.perf_counter()
            llm.generate([prompt], params, use_tqdm=False)
            print(time.perf_counter() - started, file=answers)
""")


def main() -> None:
    from compress import apply, sources, variants
    from compress.measure import childproc, latency, loadgen, serving
    from compress.measure.runtimes import physical_cores
    from compress.measure.settings import BenchSettings
    from compress.measure.sweep import _ensure_artifact, artifact_folder
    from compress.measure.vllm_runtime import VllmRuntime, artifact_dtype, vllm_env, vllm_python
    from compress.paths import cache_dir

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--method", default="fp32", help="variant to run (built if not cached)")
    parser.add_argument("--tokens", type=int, default=32, help="tokens generated a run")
    parser.add_argument("--reps", type=int, default=5, help="timed runs of each side")
    parser.add_argument("--concurrency", type=int, default=4, help="closed-loop concurrency of the served run")
    parser.add_argument("--requests", type=int, default=16, help="requests of the served run")
    parser.add_argument("--slo", default="ttft_ms=1000,itl_ms=200")
    parser.add_argument("--artifacts", type=Path, default=None, help="artifact cache folder (as bench --artifacts)")
    parser.add_argument("--eager", action="store_true",
                        help="all three engines without graph compilation (faster start, same on both sides)")
    args = parser.parse_args()

    source = sources.resolve(args.model)
    variant = variants.parse(args.method)
    options = apply.Options(device="cpu")
    key = apply.artifact_key(source, variant, options)
    folder = artifact_folder(args.artifacts or cache_dir("artifacts"), source, variant, key)
    manifest = _ensure_artifact(source, variant, folder, options, lambda line: print(line, file=sys.stderr))
    # The bench's context length: vLLM's compiled graphs are cached per configuration, so a run
    # after `compress bench --runtime vllm` starts faster.
    n_ctx = max(BenchSettings().context_tokens(), 128 + args.tokens + 8)
    dtype, threads = artifact_dtype(manifest), physical_cores()
    prompt = [1, 2, 3, 4]

    print(f"starting both engines on {folder.name} ({dtype}); about a minute each", file=sys.stderr)
    script = Path(tempfile.mkdtemp(prefix="compress-bare-")) / "bare_vllm.py"
    script.write_text(BARE)  # a file, not -c: vLLM's spawned engine process re-imports the main module
    bare = childproc.start_group([str(vllm_python()), str(script), str(folder), dtype, str(n_ctx), str(args.tokens),
                                  "eager" if args.eager else "compiled"],
                                 env=vllm_env(threads), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=open(script.with_suffix(".log"), "wb"))
    ours = None
    try:
        ours = VllmRuntime(folder, manifest, "cpu", threads, n_ctx, enforce_eager=args.eager)
        if bare.stdout.readline().strip() != b"ready":
            tail = script.with_suffix(".log").read_text(errors="replace").strip().splitlines()[-3:]
            raise SystemExit(f"the bare vLLM loop did not start: {' | '.join(tail)}")

        def bare_run_s() -> float:
            bare.stdin.write(b"go\n")
            bare.stdin.flush()
            return float(bare.stdout.readline())

        latency.measure_decode(ours, [prompt], args.tokens, reps=1, warmup=0)  # warm-up
        bare_run_s()
        ours_tok_s, bare_tok_s = [], []
        for _ in range(args.reps):
            run = latency.measure_decode(ours, [prompt], args.tokens, reps=1, warmup=0)
            ours_tok_s.append(args.tokens / run["run_s"][0])
            bare_tok_s.append(args.tokens / bare_run_s())
    finally:
        if ours is not None:
            ours.close()
        childproc.stop_group(bare)

    med_ours, med_bare = statistics.median(ours_tok_s), statistics.median(bare_tok_s)
    print(f"{'side':<28}{'median tok/s':>14}{'min':>10}{'max':>10}")
    for name, runs in (("compress bench (VllmRuntime)", ours_tok_s), ("bare LLM.generate loop", bare_tok_s)):
        print(f"{name:<28}{statistics.median(runs):>14.1f}{min(runs):>10.1f}{max(runs):>10.1f}")
    print(f"harness overhead: {100 * (med_bare - med_ours) / med_bare:+.1f}% of the bare loop's tok/s "
          f"({args.reps} alternating runs of {args.tokens} tokens, {threads} threads, "
          f"{'eager' if args.eager else 'compiled graphs'})")

    slo = loadgen.Slo.parse(args.slo)
    token_ids = [i % 1000 + 100 for i in range(args.requests * 128)]
    prompts = serving.serve_prompts(token_ids, args.requests, 128)
    with serving.VllmServer(folder, dtype, n_ctx, threads=threads,
                            extra_args=["--enforce-eager"] if args.eager else []) as server:
        params = {"concurrency": args.concurrency, "output_tokens": args.tokens,
                  "slo_ttft_ms": slo.ttft_ms, "slo_itl_ms": slo.itl_ms}
        figures = {f["metric"]: f for f in serving.run_serve_test("serve", params, server.url,
                                                                   server.served_name, prompts)}
    good = figures["goodput_req_s"]
    print(f"served, {args.requests} requests at concurrency {args.concurrency} (128-token prompts, "
          f"{args.tokens} tokens out): goodput {good['value']:.2f} req/s at TTFT <= {slo.ttft_ms:g} ms and "
          f"ITL <= {slo.itl_ms:g} ms ({good['extra']['good']} of {good['extra']['requests']} requests met it); "
          f"request throughput {figures['request_throughput_req_s']['value']:.2f} req/s, "
          f"TTFT p50 {figures['ttft_ms']['stats']['median']:.0f} ms, ITL p50 {figures['itl_ms']['stats']['median']:.0f} ms")


if __name__ == "__main__":
    main()
