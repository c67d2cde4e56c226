"""The results store: flat, self-describing measurement records in JSON Lines.

One record per measured metric of one variant, appended atomically to
``results/<name>.jsonl`` (readable by pandas ``read_json(lines=True)`` and DuckDB
``read_json_auto``). Fields (schema ``compress.result/1``):

- what ran: ``model``, ``model_fingerprint``, ``variant``, ``method``, ``config``,
  ``runtime``, ``runtime_version``, ``artifact``, ``artifact_bytes``, ``artifact_key``;
- where: ``device`` (``cpu``/``cuda``), ``device_name``, ``profile`` (the planner's
  profile name), ``threads``, ``host``, ``git_sha``, ``libraries``;
- the test: ``test`` (``ppl``, ``pp512``, ``tg128``, ``batch4``, ``memory``, ...),
  ``params`` (context, stride, tokens, batch, ...);
- the figure: ``metric``, ``unit``, ``higher_is_better``, ``value`` (the median where
  there are samples), ``stats`` (``mean``, ``median``, ``p90``, ``p99``, ``stddev``,
  ``min``, ``max``, ``n``), ``samples`` (raw);
- the prediction: ``predicted`` and ``prediction_error_pct`` (measured vs planner);
- bookkeeping: ``schema``, ``run_id``, ``timestamp``, ``status`` (``ok``/``failed``),
  ``error`` (the reason of a failure record).

:func:`load` with ``provenance`` adds ``results_file`` (the file a record was read from) to each
record it returns, so views that merge several files keep each record's origin; it is never
written back.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Hashable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from compress.fsutil import append_jsonl, read_jsonl
from compress.paths import results_dir, results_file

SCHEMA = "compress.result/1"
#: Where records go unless told otherwise (:func:`compress.paths.results_dir`, read at import).
DEFAULT_DIR = results_dir()
DEFAULT_FILE = results_file("bench.jsonl")


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]


def record(**fields: Any) -> dict[str, Any]:
    """A record with the bookkeeping fields filled in."""
    base = {"schema": SCHEMA, "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "status": "ok", "error": None}
    return {**base, **fields}


def failure(reason: str, status: str = "failed", **fields: Any) -> dict[str, Any]:
    """The record of a test that produced no figure (``status`` failed or skipped, ``error`` its
    reason): the figure's fields are present and empty, so readers find the same keys."""
    return record(**fields, metric=None, unit=None, higher_is_better=None, value=None, stats=None, samples=[],
                  predicted=None, prediction_error_pct=None, status=status, error=reason,
                  test_id=uuid.uuid4().hex[:12], test_records=1)


K = TypeVar("K", bound=Hashable)


def newest(records: Iterable[dict[str, Any]], key: Callable[[dict[str, Any]], K | None]) -> dict[K, dict[str, Any]]:
    """The newest record of each ``key(record)`` (None: the record is left out): the latest
    ``timestamp`` wins, and of records stamped alike the later in ``records`` (file order).
    The keys come oldest first, so the last key of a group is the one measured last."""
    found: dict[K, tuple[tuple[str, int], dict[str, Any]]] = {}
    for order, r in enumerate(records):
        k = key(r)
        stamp = (r.get("timestamp") or "", order)
        if k is not None and (k not in found or stamp >= found[k][0]):
            found[k] = (stamp, r)
    return {k: r for k, (_, r) in sorted(found.items(), key=lambda item: item[1][0])}


def append(path: Path, rec: dict[str, Any] | list[dict[str, Any]]) -> None:
    """Append a record, or the records of one test in one write: a reader (``--resume``) sees all
    of them or none."""
    append_jsonl(path, rec)


_TEXT, _NUMBER, _OBJECT, _LIST, _BOOL = (str,), (int, float), (dict,), (list,), (bool,)
#: The fields readers use, and the JSON types each may hold (null or absent is allowed: readers
#: treat those as unknown). Other fields are carried along unread.
FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "model": _TEXT, "variant": _TEXT, "test": _TEXT, "status": _TEXT,
    "model_fingerprint": _TEXT, "method": _TEXT, "runtime": _TEXT, "runtime_version": _TEXT, "artifact": _TEXT,
    "artifact_key": _TEXT, "device": _TEXT, "device_name": _TEXT, "profile": _TEXT, "metric": _TEXT,
    "unit": _TEXT, "timestamp": _TEXT, "run_id": _TEXT, "test_id": _TEXT, "error": _TEXT, "git_sha": _TEXT,
    "value": _NUMBER, "predicted": _NUMBER, "prediction_error_pct": _NUMBER, "artifact_bytes": _NUMBER,
    "threads": _NUMBER, "test_records": _NUMBER, "higher_is_better": _BOOL,
    "config": _OBJECT, "params": _OBJECT, "stats": _OBJECT, "host": _OBJECT, "libraries": _OBJECT,
    "bench_settings": _OBJECT, "samples": _LIST,
}

def record_problem(rec: dict[str, Any]) -> str | None:
    """Why a record of this schema cannot be read (a field of the wrong JSON type), or None."""
    for key, types in FIELD_TYPES.items():
        value = rec.get(key)
        if value is None:
            continue
        # JSON true/false are Python bools, which are ints too: a number field must not take them.
        wrong = isinstance(value, bool) and bool not in types
        if wrong or not isinstance(value, types):
            expected = {_TEXT: "text", _NUMBER: "a number", _OBJECT: "an object", _LIST: "a list",
                        _BOOL: "true or false"}[types]
            return f"field '{key}' is a JSON {_json_type(value)}: expected {expected}"
        if isinstance(value, float) and not math.isfinite(value):
            return f"field '{key}' is {value}: expected a finite number"
    return None


def _json_type(value: Any) -> str:
    return {bool: "boolean", int: "number", float: "number", str: "string", list: "list", dict: "object"}.get(
        type(value), type(value).__name__)


def _ours(rec: dict[str, Any]) -> str | None:
    """Records of other schemas are skipped silently; ours must have fields of the right types."""
    if rec.get("schema") != SCHEMA:
        return ""
    return record_problem(rec)


def load(paths: Iterable[Path] | Path, provenance: bool = False) -> list[dict[str, Any]]:
    """Every record in the given files, or in every ``*.jsonl`` of a given folder (a file named
    twice is read once); a record whose fields have the wrong types is skipped with a warning
    naming the file, line and field. With ``provenance``, each with the file it came from in
    ``results_file``."""
    if isinstance(paths, str | Path):
        paths = [Path(paths)]
    records: list[dict[str, Any]] = []
    seen: set[Path] = set()
    for path in paths:
        path = Path(path)
        files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
        for file in files:
            if file.resolve() in seen:
                continue
            seen.add(file.resolve())
            found = read_jsonl(file, check=_ours)
            records += [{**r, "results_file": str(file)} for r in found] if provenance else found
    return records
