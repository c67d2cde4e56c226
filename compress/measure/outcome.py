"""How a bench run ended: which variants and tests failed and why, and the exit code that says so.

A run whose every figure is on disk exits 0. One in which some variant or test failed exits
:data:`SOME_FAILED`, and one that measured nothing at all :data:`NOTHING_MEASURED`, so that a
script (``make demo``, CI) stops on a failure instead of reading a table of dashes. Skipped
tests (a runtime that cannot run a test, e.g. decoding in the ONNX export) are listed but are not
failures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

#: Exit codes of `compress bench` (1 and 2 are a runtime failure and bad input, as for every command).
SOME_FAILED = 3
NOTHING_MEASURED = 4


@dataclass(frozen=True)
class Outcome:
    measured: int
    failed: tuple[tuple[str, str, str], ...] = field(default_factory=tuple)  # (variant, test, reason)
    skipped: tuple[tuple[str, str, str], ...] = field(default_factory=tuple)

    @property
    def exit_code(self) -> int:
        if not self.measured:
            return NOTHING_MEASURED
        return SOME_FAILED if self.failed else 0

    def lines(self, results_path: Any, width: int = 80) -> list[str]:
        """The closing summary: one line per failed test and per skipped test, then the verdict."""
        out = []
        for title, items in (("failed", self.failed), ("skipped", self.skipped)):
            if items:
                out.append(f"{title}:")
                out += [_wrap(f"{variant} {test}: {reason}", width) for variant, test, reason in items]
        variants = sorted({v for v, _, _ in self.failed})
        if not self.measured:
            out.append(_wrap(f"error: nothing was measured: every test failed or was skipped (records in "
                             f"{results_path})", width, indent=""))
        elif self.failed:
            out.append(_wrap(f"error: {len(self.failed)} test(s) of {', '.join(variants)} failed; "
                             f"the rest was measured (records in {results_path})", width, indent=""))
        return [line for block in out for line in block.splitlines()]


def outcome(records: Sequence[dict[str, Any]]) -> Outcome:
    """The outcome of the records one run wrote."""
    failed, skipped = [], []
    for r in records:
        item = (str(r.get("variant")), str(r.get("test")), str(r.get("error") or "no reason recorded"))
        if r.get("status") == "failed":
            failed.append(item)
        elif r.get("status") == "skipped":
            skipped.append(item)
    # The artifact's size is read off the disk, not measured in a runtime: alone it is no measurement.
    measured = sum(r.get("status") == "ok" and r.get("test") != "size" for r in records)
    return Outcome(measured=measured, failed=tuple(failed), skipped=tuple(skipped))


def _wrap(line: str, width: int, indent: str = "  ") -> str:
    """The whole line, wrapped to the terminal, never cut: the cause is what the reader needs."""
    import textwrap

    return textwrap.fill(" ".join(line.split()), width=width, initial_indent=indent,
                         subsequent_indent=indent + "    ", break_on_hyphens=False)
