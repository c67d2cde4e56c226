"""A harness timed against a bare loop of the same engine: each side in a process of its own, alone.

Two engines alive at once share the cores: vLLM's CPU backend binds every engine's OpenMP
threads to the same cores, so whichever side is timed runs beside the other's idle, pinned
threads, and the order decides the sign of the difference. Here a round starts one side,
lets it time its runs, notes which cores its threads may use (:func:`childproc.cpu_binding`),
and stops it with its whole process group before the next side starts. Rounds alternate
the order (A then B, B then A, ...), so drift in machine load and what a first process leaves
behind (page cache, clock speed) fall on both sides alike, and the summary gives each order
apart: a sound comparison gives the same difference either way, within the rounds' spread.

A side is any command that prints one JSON line ``{"tok_s": [...]}`` on stdout when its
runs are done and then waits for a line on stdin before it exits (:func:`report_runs`).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compress.errors import RuntimeFailure
from compress.measure import childproc

#: Seconds a side may take to load and time its runs (a vLLM engine compiles for minutes under load).
SIDE_TIMEOUT_S = 1800


@dataclass(frozen=True)
class SideRun:
    """One side's runs in one round: decode tok/s of each run, where it ran, and whether it went first."""

    side: str
    round_index: int
    first: bool
    tok_s: tuple[float, ...]
    binding: str


@dataclass
class Comparison:
    """The rounds of a harness-vs-bare comparison, named ``harness`` and ``bare``."""

    harness: str
    bare: str
    runs: list[SideRun] = field(default_factory=list)

    def samples(self, side: str, first: bool | None = None) -> list[float]:
        return [x for r in self.runs if r.side == side and (first is None or r.first == first) for x in r.tok_s]

    def difference_pct(self, harness_first: bool | None = None) -> float | None:
        """(harness median - bare median) / bare median, over the rounds where the harness ran first
        (True), second (False) or all of them (None): negative means the harness is slower."""
        ours = self.samples(self.harness, harness_first)
        bare = self.samples(self.bare, None if harness_first is None else not harness_first)
        if not ours or not bare:
            return None
        return 100 * (statistics.median(ours) - statistics.median(bare)) / statistics.median(bare)

    def round_differences_pct(self) -> list[float]:
        """The difference of each round's two medians: their range is the comparison's spread."""
        out = []
        for i in sorted({r.round_index for r in self.runs}):
            pair = {r.side: statistics.median(r.tok_s) for r in self.runs if r.round_index == i}
            if self.harness in pair and self.bare in pair:
                out.append(100 * (pair[self.harness] - pair[self.bare]) / pair[self.bare])
        return out


def alternate(sides: dict[str, Callable[[], list[str]]], rounds: int, envs: dict[str, dict[str, str]] | None = None,
              log: Callable[[str], None] = lambda line: print(line, file=sys.stderr)) -> list[SideRun]:
    """Run the two ``sides`` (name → its command) ``rounds`` times each, one at a time, the
    order swapped every round: round 0 runs them in the given order, round 1 reversed, ...
    ``envs`` gives a side an environment of its own (the others inherit this process's)."""
    names = list(sides)
    if len(names) != 2 or rounds < 1:
        raise ValueError(f"expected two sides and at least one round, got {names} and {rounds}")
    runs = []
    for i in range(rounds):
        order = names if i % 2 == 0 else names[::-1]
        for position, name in enumerate(order):
            log(f"round {i + 1}/{rounds}: {name}{' (first)' if position == 0 else ''}")
            tok_s, binding = run_side(sides[name](), (envs or {}).get(name))
            runs.append(SideRun(name, i, position == 0, tuple(tok_s), binding))
    return runs


def run_side(cmd: Sequence[str], env: dict[str, str] | None = None,
             timeout_s: float = SIDE_TIMEOUT_S) -> tuple[list[float], str]:
    """Start one side, wait for its runs, note its threads' cores while it still holds them, stop it."""
    with tempfile.NamedTemporaryFile(prefix="compress-side-", suffix=".log", delete=False) as log:
        log_path = Path(log.name)
        proc = childproc.start_group(list(cmd), env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log)
        try:
            found: list[dict[str, Any]] = []
            reader = threading.Thread(target=lambda: found.extend(_report(proc.stdout)), daemon=True)
            reader.start()
            reader.join(timeout_s)
            if not found:
                why = "timed out" if reader.is_alive() else f"exited ({proc.poll()})"
                raise RuntimeFailure(f"{Path(cmd[1]).name if len(cmd) > 1 else cmd[0]} {why} before reporting "
                                     f"its runs: {_last_line(log_path)}")
            tok_s = [float(x) for x in found[0]["tok_s"]]
            binding = childproc.cpu_binding(proc.pid)
            try:
                proc.stdin.write(b"quit\n")
                proc.stdin.flush()
                proc.wait(timeout=60)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                pass  # stopped below with its whole group
        finally:
            childproc.stop_group(proc, grace_s=10)
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    stream.close()
    log_path.unlink(missing_ok=True)
    return tok_s, binding


def _report(stream: Any) -> list[dict[str, Any]]:
    """The side's report: the first stdout line that is one; a library may print other lines before it."""
    for line in iter(stream.readline, b""):
        if line.startswith(b'{"tok_s"'):
            return [json.loads(line)]
    return []


def _last_line(path: Path) -> str:
    lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    errors = [ln for ln in lines if "Error" in ln or "error" in ln]
    return (errors or lines or ["no output"])[-1][:300]


def report_runs(tok_s: Sequence[float], answers: Any = None) -> None:
    """The side's half of the protocol: one JSON line with its runs, then wait until told to go."""
    out = answers or sys.stdout
    print(json.dumps({"tok_s": [float(x) for x in tok_s]}), file=out, flush=True)
    sys.stdin.readline()


def summary(comparison: Comparison, labels: dict[str, str]) -> list[str]:
    """The comparison as lines of at most 80 columns: each side's runs by order, the binding of
    its threads, and the difference with the harness first, second, and over all rounds."""
    lines = [f"{side}: {labels.get(side, side)}" for side in (comparison.harness, comparison.bare)]
    lines.append(f"{'side':<10}{'order':<8}{'runs':>5}{'median tok/s':>14}{'min':>9}{'max':>9}")
    for side in (comparison.harness, comparison.bare):
        for first, order in ((True, "first"), (False, "second"), (None, "all")):
            xs = comparison.samples(side, first)
            if xs:
                lines.append(f"{side[:9]:<10}{order:<8}{len(xs):>5}{statistics.median(xs):>14.2f}"
                             f"{min(xs):>9.2f}{max(xs):>9.2f}")
    for side in (comparison.harness, comparison.bare):
        bindings = sorted({r.binding for r in comparison.runs if r.side == side})
        lines.append(f"threads of {side}: {'; '.join(bindings)}")
    per_round = comparison.round_differences_pct()

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{x:+.1f}%"

    lines.append("harness vs bare tok/s (negative: the harness is slower):")
    lines.append(f"harness first {pct(comparison.difference_pct(True))}, harness second "
                 f"{pct(comparison.difference_pct(False))}, all runs pooled {pct(comparison.difference_pct(None))}")
    if per_round:
        lines.append(f"per round: {', '.join(f'{x:+.1f}%' for x in per_round)}")
    return lines
