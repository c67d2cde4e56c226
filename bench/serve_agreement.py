"""Our served-load client next to vLLM's own: ``compress bench --endpoint`` and ``vllm bench serve``
against one ``vllm serve``, run alternately with the same load.

One server (the artifact of ``--model``/``--method``, on 127.0.0.1, always stopped at the end)
takes both clients in turn: for each concurrency and each run, ``vllm bench serve`` (random
prompts of ``--prompt-tokens``, ``--output-tokens`` out with ``ignore_eos``, ``--requests``
requests, ``--max-concurrency``, all sent at once) and ``compress bench --endpoint ... --tests
serve`` (the same sizes, closed loop at that concurrency), the order swapped every run so
that a drifting server load falls on both. The table sets their TTFT, TPOT, ITL and
end-to-end latency (p50 and p99), request and output-token throughput side by side, each the
median over the runs.

On a 2-core CPU, with the default model in fp32, 16 requests of 128 tokens in and 32 out at
concurrency 1 and 4, two runs each: every figure agreed within 3%.

    python bench/serve_agreement.py [--model default] [--method fp32] [--concurrency 1,4] [--requests 16]
                                    [--prompt-tokens 128] [--output-tokens 32] [--runs 2] [--eager] [--quick]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# (label, vllm bench serve's result key, compress's metric, compress's statistic)
FIGURES = (
    ("TTFT p50 ms", "median_ttft_ms", "ttft_ms", "median"),
    ("TTFT p99 ms", "p99_ttft_ms", "ttft_ms", "p99"),
    ("TPOT p50 ms", "median_tpot_ms", "tpot_ms", "median"),
    ("TPOT p99 ms", "p99_tpot_ms", "tpot_ms", "p99"),
    ("ITL p50 ms", "median_itl_ms", "itl_ms", "median"),
    ("ITL p99 ms", "p99_itl_ms", "itl_ms", "p99"),
    ("end-to-end p50 ms", "median_e2el_ms", "e2e_ms", "median"),
    ("end-to-end p99 ms", "p99_e2el_ms", "e2e_ms", "p99"),
    ("requests/s", "request_throughput", "request_throughput_req_s", None),
    ("output tokens/s", "output_throughput", "throughput_tok_s", None),
)


def vllm_client(url: str, model: str, tokenizer: Path, concurrency: int, args: argparse.Namespace,
                out: Path) -> dict[str, float]:
    """One ``vllm bench serve`` run (through the launcher that also works with the CPU wheel)."""
    from compress.errors import RuntimeFailure
    from compress.measure.vllm_runtime import vllm_env, vllm_python

    launcher = ROOT / "compress" / "measure" / "vllm_serve.py"
    out.mkdir(parents=True, exist_ok=True)
    name = f"vllm-c{concurrency}.json"
    cmd = [str(vllm_python()), str(launcher), "bench", "serve", "--backend", "openai", "--base-url", url,
           "--model", model, "--tokenizer", str(tokenizer), "--dataset-name", "random",
           "--random-input-len", str(args.prompt_tokens), "--random-output-len", str(args.output_tokens),
           "--num-prompts", str(args.requests), "--max-concurrency", str(concurrency), "--request-rate", "inf",
           "--ignore-eos", "--seed", "0", "--percentile-metrics", "ttft,tpot,itl,e2el",
           "--metric-percentiles", "50,99", "--save-result", "--result-dir", str(out), "--result-filename", name,
           "--disable-tqdm"]
    done = subprocess.run(cmd, env=vllm_env(), capture_output=True, text=True, timeout=1800)
    if done.returncode != 0 or not (out / name).is_file():
        tail = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
        raise RuntimeFailure(f"vllm bench serve failed ({done.returncode}): {tail}")
    result = json.loads((out / name).read_text())
    (out / name).unlink()
    return {key: float(result[key]) for _, key, _, _ in FIGURES}


def compress_client(url: str, tokenizer: Path, concurrency: int, args: argparse.Namespace,
                    out: Path) -> dict[str, float]:
    """One ``compress bench --endpoint`` run, as a user types it; its figures read back from its records."""
    from compress import results
    from compress.errors import RuntimeFailure

    records = out / f"compress-c{concurrency}.jsonl"
    records.unlink(missing_ok=True)
    cmd = [sys.executable, str(ROOT / "cli.py"), "bench", "--model", str(tokenizer), "--endpoint", url,
           "--tests", "serve", "--concurrency", str(concurrency), "--serve-requests", str(args.requests),
           "--pp", str(args.prompt_tokens), "--tg", str(args.output_tokens), "--results", str(records)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        tail = (done.stderr.strip() or "no output").splitlines()[-1]
        raise RuntimeFailure(f"compress bench --endpoint failed ({done.returncode}): {tail}")
    by_metric = {r["metric"]: r for r in results.load(records) if r.get("status") == "ok"}
    figures = {}
    for _, key, metric, stat in FIGURES:
        record = by_metric.get(metric)
        if record is None:
            raise RuntimeFailure(f"compress bench --endpoint recorded no {metric}: see {records}")
        figures[key] = float(record["stats"][stat] if stat else record["value"])
    return figures


def table(concurrency: int, vllm_runs: list[dict[str, float]], ours_runs: list[dict[str, float]]) -> list[str]:
    lines = [f"{'concurrency ' + str(concurrency):<22}{'vllm bench serve':>18}{'compress bench':>16}{'difference':>12}"]
    for label, key, _, _ in FIGURES:
        theirs = statistics.median(r[key] for r in vllm_runs)
        ours = statistics.median(r[key] for r in ours_runs)
        diff = f"{100 * (ours - theirs) / theirs:+.1f}%" if theirs else "-"
        lines.append(f"{label:<22}{theirs:>18.2f}{ours:>16.2f}{diff:>12}")
    return lines


def main() -> None:
    from compress.errors import CompressError
    from compress.measure import serving
    from compress.measure.runtimes import physical_cores
    from compress.measure.vllm_runtime import artifact_dtype
    from vllm_overhead import built_artifact  # the sibling script (bench/ is first on sys.path)

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--method", default="fp32", help="variant served (built if not cached)")
    parser.add_argument("--concurrency", default="1,4", help="comma-separated closed-loop concurrencies")
    parser.add_argument("--requests", type=int, default=16, help="requests a run")
    parser.add_argument("--prompt-tokens", type=int, default=128)
    parser.add_argument("--output-tokens", type=int, default=32)
    parser.add_argument("--runs", type=int, default=2, help="runs of each client at each concurrency, alternated")
    parser.add_argument("--artifacts", type=Path, default=None, help="artifact cache folder (as bench --artifacts)")
    parser.add_argument("--eager", action="store_true", help="serve without graph compilation (faster start)")
    parser.add_argument("--quick", action="store_true",
                        help="a check that it runs: concurrency 1, 4 requests of 32 tokens in and 4 out, one run, eager")
    args = parser.parse_args()
    if args.quick:
        args.concurrency, args.requests, args.prompt_tokens, args.output_tokens = "1", 4, 32, 4
        args.runs, args.eager = 1, True
    try:
        concurrencies = [int(c) for c in args.concurrency.split(",") if c.strip()]
    except ValueError:
        raise SystemExit(f"--concurrency takes comma-separated integers, got {args.concurrency!r}") from None
    if not concurrencies or min(concurrencies + [args.requests, args.prompt_tokens, args.runs]) < 1 \
            or args.output_tokens < 2:
        raise SystemExit("concurrencies, --requests, --prompt-tokens and --runs must be at least 1 and "
                         "--output-tokens at least 2 (TPOT needs a second token)")

    scratch = Path(tempfile.mkdtemp(prefix="compress-agreement-"))
    try:
        folder, manifest = built_artifact(args.model, args.method, args.artifacts)
        n_ctx = args.prompt_tokens + args.output_tokens + 64  # vllm bench's random prompts may tokenize a little longer
        runs: dict[int, dict[str, list[dict[str, float]]]] = {c: {"vllm": [], "compress": []} for c in concurrencies}
        with serving.VllmServer(folder, artifact_dtype(manifest), n_ctx, threads=physical_cores(),
                                extra_args=["--enforce-eager"] if args.eager else []) as server:
            print(f"vllm serve healthy on {server.url} after {server.start_s:.0f} s", file=sys.stderr)
            for i in range(args.runs):
                for c in concurrencies:
                    clients = ["vllm", "compress"] if i % 2 == 0 else ["compress", "vllm"]
                    for client in clients:
                        print(f"run {i + 1}/{args.runs}, concurrency {c}: {client}", file=sys.stderr)
                        if client == "vllm":
                            runs[c]["vllm"].append(vllm_client(server.url, server.served_name, folder, c, args, scratch))
                        else:
                            runs[c]["compress"].append(compress_client(server.url, folder, c, args, scratch))
    except CompressError as err:
        raise SystemExit(f"error: {err}") from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"{folder.name}: {args.requests} requests of {args.prompt_tokens} tokens in, {args.output_tokens} out")
    print(f"median of {args.runs} alternating run{'s' if args.runs > 1 else ''} of each client")
    for c in concurrencies:
        print()
        for line in table(c, runs[c]["vllm"], runs[c]["compress"]):
            print(line)
    print("\ndifference: (compress bench - vllm bench serve) / vllm bench serve")


if __name__ == "__main__":
    main()
