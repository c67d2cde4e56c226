"""Wall time of `compress plan --model llama-2-7b --gpu t4` as a subprocess, and of the import alone.

Prints the median of several runs; planning should answer well under 0.5 s.

    python bench/plan_speed.py [--runs 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLAN = [sys.executable, str(ROOT / "cli.py"), "plan", "--model", "llama-2-7b", "--gpu", "t4", "--format", "json"]
IMPORT = [sys.executable, "-c", "import cli, compress.planner"]
HELP = [sys.executable, str(ROOT / "cli.py"), "--help"]
IN_PROCESS = [sys.executable, "-c", (
    "import time; t0 = time.perf_counter(); import compress.planner as p; t1 = time.perf_counter(); "
    "p.make_plan('llama-2-7b', 't4'); t2 = time.perf_counter(); print(t1 - t0, t2 - t1)")]


def wall_s(cmd: list[str], runs: int) -> list[float]:
    """Wall-clock seconds of ``runs`` subprocess runs of ``cmd`` (after one warm-up)."""
    subprocess.run(cmd, cwd=ROOT, capture_output=True, check=True)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, capture_output=True, check=True)
        samples.append(time.perf_counter() - start)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    plan = wall_s(PLAN, args.runs)
    imports = wall_s(IMPORT, args.runs)
    helps = wall_s(HELP, args.runs)
    inside = [tuple(map(float, subprocess.run(IN_PROCESS, cwd=ROOT, capture_output=True, text=True, check=True)
                        .stdout.split())) for _ in range(args.runs)]
    print(f"compress plan --model llama-2-7b --gpu t4: median {statistics.median(plan):.3f} s "
          f"(min {min(plan):.3f}, max {max(plan):.3f}, {args.runs} runs)")
    print(f"import only (cli + compress.planner):   median {statistics.median(imports):.3f} s "
          f"(min {min(imports):.3f}, max {max(imports):.3f}, {args.runs} runs)")
    print(f"`compress --help` (interpreter + CLI):  median {statistics.median(helps):.3f} s")
    print(f"in process: import compress.planner     median {statistics.median(i for i, _ in inside):.3f} s, "
          f"make_plan() median {statistics.median(m for _, m in inside):.3f} s")


if __name__ == "__main__":
    main()
