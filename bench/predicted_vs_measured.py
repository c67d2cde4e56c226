"""The planner's predicted vs measured peak memory and decode tok/s for each variant in the results.

    python bench/predicted_vs_measured.py [results/bench.jsonl]
"""

from __future__ import annotations

import sys
from pathlib import Path


def main() -> None:
    from compress import results
    from compress.measure.pareto_table import pareto_rows

    path = Path(sys.argv[1] if len(sys.argv) > 1 else "results/bench.jsonl")
    rows = pareto_rows(results.load(path))
    if not rows:
        raise SystemExit(f"no bench records in {path}: run `compress bench` first")

    def num(x: float | None, fmt: str) -> str:
        return "-" if x is None else format(x, fmt)

    print(f"{'model':24} {'variant':14} {'device':6} {'pred tok/s':>10} {'meas tok/s':>10} {'err %':>7} "
          f"{'pred GiB':>9} {'meas GiB':>9} {'err %':>7}")
    for r in rows:
        print(f"{r['model'][:24]:24} {r['variant'][:14]:14} {r['device']:6} "
              f"{num(r.get('predicted_decode_tok_s'), '10.2f')} {num(r.get('decode_tok_s'), '10.2f')} "
              f"{num(r.get('decode_error_pct'), '+7.0f')} {num(r.get('predicted_peak_memory_gib'), '9.3f')} "
              f"{num(r.get('peak_memory_gib'), '9.3f')} {num(r.get('memory_error_pct'), '+7.0f')}")


if __name__ == "__main__":
    main()
