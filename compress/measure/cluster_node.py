"""What runs on a node of a Ray cluster: the per-node check, the shipped model, one variant's task.

Imported by Ray workers (and by :mod:`compress.measure.cluster` on the driver); it imports Ray
only inside the functions that run on a node.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from compress import variants
from compress.errors import UserInputError
from compress.measure.settings import BenchSettings
from compress.sources import Source


def node_facts(model_path: str, fingerprint: str, artifacts_dir: str | None) -> dict[str, Any]:
    """Runs on one node: can it read the model (the same one) and write the artifacts folder?"""
    import socket

    import ray

    from compress.sources import Source

    path = Path(model_path)
    if not path.exists():
        model = "is not visible"
    else:
        found = Source("hf" if path.is_dir() else "gguf", path, path.name).fingerprint()
        model = "ok" if found == fingerprint else f"is a different model (fingerprint {found}, expected {fingerprint})"
    artifacts = "ok"
    if artifacts_dir:
        try:
            Path(artifacts_dir).mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=artifacts_dir, prefix=".write-check-"):
                pass
        except OSError as err:
            artifacts = f"is not writable ({err.strerror or err})"
    return {"node_ip": node_ip(ray), "host": socket.gethostname(), "model": model, "artifacts": artifacts}


def node_ip(ray: Any) -> str:
    """The address the node running this task joined the cluster with (not a guess from the routing table)."""
    node_id = ray.get_runtime_context().get_node_id()
    return next((n["NodeManagerAddress"] for n in ray.nodes() if n["NodeID"] == node_id),
                ray.util.get_node_ip_address())


def pack_model(source: Source) -> dict[str, Any]:
    """The model's files as bytes, to put in the object store once (``--ship-model``)."""
    path = source.path
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {"name": path.name, "is_file": path.is_file(), "fingerprint": source.fingerprint(),
            "files": {(f.name if path.is_file() else str(f.relative_to(path))): f.read_bytes() for f in files}}


def unpack_model(packed: dict[str, Any], cache: Path) -> Path:
    """Write a shipped model into ``cache/<fingerprint>/<name>`` (once per node) and return that path."""
    from compress.fsutil import atomic_dir

    folder = Path(cache) / packed["fingerprint"]
    target = folder / packed["name"]
    if folder.is_dir():
        return target
    with atomic_dir(folder) as tmp:
        root = tmp if packed["is_file"] else tmp / packed["name"]
        for rel, data in packed["files"].items():
            out = root / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(data)
    return target


def bench_task(source: Source, variant: variants.Variant, settings: BenchSettings, options: Any,
                artifacts_dir: str | None, done: set[tuple[str, str, str, str]], shipped: list[Any],
                attempt: int) -> dict[str, Any]:
    """Runs in a Ray worker: apply and measure one variant; return its records, write none."""
    import socket

    import ray

    from compress.loading import quiet_libraries
    from compress.measure import sweep
    from compress.measure.context import environment
    from compress.paths import cache_dir

    quiet_libraries()
    placement = {"cluster": "ray", "node_id": ray.get_runtime_context().get_node_id(),
                 "node_ip": node_ip(ray), "attempt": attempt}
    if shipped:
        source = replace(source, path=unpack_model(ray.get(shipped[0]), cache_dir("models")))
    elif not source.path.exists():
        raise UserInputError(f"the model {source.path} is not visible on node {placement['node_ip']} "
                             f"({socket.gethostname()}): put it on a shared path or pass --ship-model")
    artifacts = Path(artifacts_dir) if artifacts_dir else cache_dir("artifacts")
    with tempfile.TemporaryDirectory(prefix="compress-task-") as scratch:
        # The records go to a scratch file the driver never reads: the returned list is what counts.
        env = environment(source, settings, Path(scratch) / "records.jsonl")
        env.isolated = True
        env.where.update(placement)
        with sweep._remote_code(options):
            written = sweep._bench_variant(env, variant, options, env.results_path, artifacts, done,
                                           sweep._log_to_stderr)
        delta = env.predictions(variant).get("ppl_delta_pct")
    return {"records": written, "ppl_delta_pct": delta}
