"""Wall time and peak memory of each compression method on the default model.

Runs `compress apply` for each variant in its own process (so one method's memory does not
inflate the next one's peak) and prints the figures from each artifact's manifest:

    .venv/bin/python bench/apply_methods.py
    .venv/bin/python bench/apply_methods.py --methods gptq-4-g64,q4_k_m --calib-samples 32

The default model is dequantized once into the cache before the first method, and that
one-time conversion is not counted in any method's time.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# SmolLM2-135M's widths (576) take GPTQ/AWQ group 64, not 128.
DEFAULT_METHODS = ("fp16", "int8", "nf4", "gptq-4-g64", "awq-4-g64", "gguf-f16", "q8_0", "q4_k_m", "q2_k",
                   "magnitude-50", "wanda-50", "sparsegpt-2:4", "layerdrop-6", "distill-24", "onnx-int8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS))
    parser.add_argument("--calib-samples", type=int, default=32)
    parser.add_argument("--calib-seq-len", type=int, default=256)
    parser.add_argument("--distill-steps", type=int, default=50)
    args = parser.parse_args()

    compress = str(Path(sys.executable).with_name("compress"))
    subprocess.run([sys.executable, "-c", "from compress.loading import hf_checkpoint; from compress.sources import "
                    f"resolve; hf_checkpoint(resolve({args.model!r}))"], check=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="apply-bench-") as scratch:
        for method in args.methods.split(","):
            out = Path(scratch) / method.replace(":", "_")
            cmd = [compress, "apply", "--model", args.model, "--method", method, "--out-dir", str(out),
                   "--calib-samples", str(args.calib_samples), "--calib-seq-len", str(args.calib_seq_len)]
            if method.startswith("distill"):
                cmd += ["--steps", str(args.distill_steps)]
            started = time.perf_counter()
            done = subprocess.run(cmd, capture_output=True, text=True)
            wall_s = time.perf_counter() - started
            if done.returncode != 0:
                rows.append((method, wall_s, None, None, None, done.stderr.strip().splitlines()[-1:]))
            else:
                manifest = json.loads((out / "manifest.json").read_text())
                rows.append((method, wall_s, manifest["timings_s"]["total"], manifest["peak_memory_bytes"] / 2**30,
                             manifest["size_bytes"] / 2**20, []))
            shutil.rmtree(out, ignore_errors=True)
            print_row(*rows[-1])


def print_row(method: str, wall_s: float, method_s: float | None, peak_gib: float | None, size_mib: float | None,
              error: list[str]) -> None:
    if method_s is None:
        print(f"{method:>14}  failed after {wall_s:6.1f} s: {' '.join(error)}", flush=True)
        return
    print(f"{method:>14}  wall {wall_s:7.1f} s  (method {method_s:7.1f} s)  peak {peak_gib:5.2f} GiB  "
          f"artifact {size_mib:7.1f} MiB", flush=True)


if __name__ == "__main__":
    main()
