"""`compress bench --cluster`: one Ray task per variant, placed by resources, records written by the driver.

Each variant (apply, then measure) runs as a Ray task in a worker process of its own
(``max_calls=1``, so its peak memory starts from a clean process, as with a local sweep's
``isolate``). A task asks for one GPU on a cluster with GPUs and a whole CPU node otherwise;
``--resources CPU=2,GPU=1`` overrides that. Tasks run in parallel wherever the cluster has room.

A task writes nothing to the results file: it returns its records, and the driver appends
them (:func:`compress.fsutil.append_jsonl`) once per finished task, so a record is never lost
to a dead node nor written twice by a retried task. A task whose worker or node dies, or that
Ray's memory monitor kills, is resubmitted up to ``max_retries`` times and then becomes a
``failed`` record; the sweep goes on. Ctrl-C cancels the tasks still running and keeps every
record already received.

Artifacts are built on the node that measures them, in ``--artifacts`` (a path every node
mounts) or in that node's own cache; only records travel back. The source model is read from
its path on each node, which is checked on every node before the sweep starts, or, with
``ship_model``, put in the object store once and written to each node's cache on first use.

Ray is imported only here and only when a cluster is asked for: a local sweep never loads it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from compress import results, variants
from compress.errors import UserInputError
from compress.measure.cluster_node import bench_task, node_facts, pack_model
from compress.measure.settings import BenchSettings, plan_tests
from compress.sources import Source

#: What `--cluster` takes besides ``ray://HOST:PORT``.
ADDRESSES = ("auto", "local")
#: Ray binds its servers to every interface and advertises the routable address, even when given
#: 127.0.0.1; with this set to "0" before Ray is imported it runs as a single-machine cluster on the
#: loopback address only (ray/_private/ray_constants.py ENABLE_RAY_CLUSTER; checked with ss, Ray 2.60).
LOOPBACK_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
INSTALL_HINT = "install it with `pip install 'compress[cluster]'` (ray==2.60.0) on the driver and on every node"


@dataclass(frozen=True)
class ClusterOptions:
    """Where the tasks run and what each may take."""

    address: str = "auto"  # "auto" (RAY_ADDRESS or the cluster on this machine), "ray://HOST:PORT", or "local"
    resources: dict[str, float] = field(default_factory=dict)  # per task; empty: one GPU, else a whole CPU node
    max_retries: int = 2  # resubmissions of a task whose worker or node died
    ship_model: bool = False  # put the source model in the object store once instead of reading a shared path
    local_cpus: int | None = None  # CPUs of the private cluster that address "local" starts (None: all)

    def __post_init__(self) -> None:
        if self.address not in ADDRESSES and not self.address.startswith("ray://"):
            raise UserInputError(f"--cluster takes auto, local or ray://HOST:PORT, got {self.address!r}")
        if self.max_retries < 0:
            raise UserInputError(f"--max-retries must be 0 or more, got {self.max_retries}")
        if any(v < 0 for v in self.resources.values()):
            raise UserInputError(f"--resources amounts must be 0 or more, got {self.resources}")

    def to_dict(self) -> dict[str, Any]:
        return {"address": self.address, "resources": dict(self.resources), "max_retries": self.max_retries,
                "ship_model": self.ship_model, "local_cpus": self.local_cpus}


def parse_resources(text: str | None) -> dict[str, float]:
    """``'CPU=2,GPU=1'`` → ``{'CPU': 2.0, 'GPU': 1.0}``; custom Ray resources pass through by name."""
    out: dict[str, float] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        name, sep, amount = part.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            out[name.strip()] = float(amount)
        except ValueError:
            raise UserInputError(f"--resources takes NAME=AMOUNT pairs such as CPU=2,GPU=1, "
                                 f"got {part.strip()!r}") from None
    return out


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UserInputError(f"--cluster needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


class Cluster:
    """A connection to a Ray cluster for the length of one sweep.

    ``open()`` connects (or starts the private cluster of address ``local``); :meth:`run_sweep`
    ends the connection it made when the sweep ends. ``with Cluster(options) as c:`` does the same.
    A process already connected to Ray keeps its connection, and it is never ended here.
    """

    def __init__(self, options: ClusterOptions, log: Callable[[str], None] = print) -> None:
        self.options = options
        self.log = log
        self._owned = False  # whether this object made the connection and so ends it

    def __enter__(self) -> Cluster:
        return self.open()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def open(self) -> Cluster:
        if self.options.address == "local":
            os.environ.setdefault(LOOPBACK_ONLY_ENV, "0")
        ray = import_ray()
        if ray.is_initialized():
            self.log("using this process's Ray connection")
            return self
        kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": "warning"}
        if self.options.address == "local":
            # A private cluster for this sweep only, reachable on the loopback address alone.
            kwargs.update(address="local", _node_ip_address="127.0.0.1", num_cpus=self.options.local_cpus)
        else:
            kwargs.update(address=self.options.address)
        try:
            ray.init(**kwargs)
        except (ConnectionError, RuntimeError, ValueError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise UserInputError(
                f"cannot connect to a Ray cluster at {self.options.address!r} ({first}): start one with "
                "`ray start --head --node-ip-address 127.0.0.1`, set RAY_ADDRESS, or pass --cluster ray://HOST:10001"
            ) from None
        self._owned = True
        nodes = self.nodes()
        self.log(f"Ray cluster: {len(nodes)} node(s), {self.total('CPU'):g} CPU, {self.total('GPU'):g} GPU")
        return self

    def close(self) -> None:
        if self._owned:
            import_ray().shutdown()  # disconnects; a cluster started with `ray start` keeps running
            self._owned = False

    def run_sweep(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        """:func:`run_cluster_sweep` on this cluster; the connection ends with it."""
        try:
            return run_cluster_sweep(self, *args, **kwargs)
        finally:
            self.close()

    def nodes(self) -> list[dict[str, Any]]:
        return [n for n in import_ray().nodes() if n.get("Alive")]

    def total(self, resource: str) -> float:
        return float(import_ray().cluster_resources().get(resource, 0.0))

    def device(self, requested: str) -> str:
        """``auto`` is ``cuda`` where the cluster has GPUs, else ``cpu``; the driver's own GPUs do not count."""
        gpus = self.total("GPU")
        if requested == "auto":
            return "cuda" if gpus else "cpu"
        if requested not in ("cpu", "cuda") and not requested.startswith("cuda:"):
            raise UserInputError(f"device must be auto, cpu or cuda[:N], got {requested!r}")
        if requested.startswith("cuda") and not gpus:
            raise UserInputError(f"--device {requested} asked for, but the Ray cluster has no GPU: use --device cpu")
        return requested

    def task_resources(self, device: str) -> dict[str, float]:
        """What one variant's task asks for: the override, else one GPU, else a whole CPU node.

        "A whole node" is the CPU count of the smallest node with CPUs, so that a task fits on
        every node and nothing else shares its cores while it is timed.
        """
        if self.options.resources:
            return dict(self.options.resources)
        if device.startswith("cuda"):
            return {"CPU": 1.0, "GPU": 1.0}
        cpus = [n["Resources"].get("CPU", 0.0) for n in self.nodes() if n["Resources"].get("CPU", 0.0) > 0]
        if not cpus:
            raise UserInputError("the Ray cluster has no node with CPUs: expected at least one worker node")
        return {"CPU": min(cpus)}

    def check_nodes(self, source: Source, artifacts_dir: Path | None) -> None:
        """Refuse to start when a node cannot read the model (and it is not shipped) or write the artifacts."""
        ray = import_ray()
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        check = ray.remote(num_cpus=0, max_retries=0)(node_facts)
        fingerprint = source.fingerprint()
        refs = [check.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(
                    str(source.path), fingerprint, str(artifacts_dir) if artifacts_dir else None)
                for n in self.nodes() if n["Resources"].get("CPU", 0) or n["Resources"].get("GPU", 0)]
        problems = []
        for facts in ray.get(refs):
            where = f"node {facts['node_ip']} ({facts['host']})"
            if facts["model"] != "ok" and not self.options.ship_model:
                problems.append(f"the model {source.path} {facts['model']} on {where}")
            if facts["artifacts"] != "ok":
                problems.append(f"--artifacts {artifacts_dir} {facts['artifacts']} on {where}")
        if problems:
            raise UserInputError("; ".join(problems) + ": put it on a path every node mounts (NFS, a shared volume), "
                                 "or pass --ship-model to send the model through the object store once")


def run_cluster_sweep(cluster: Cluster, source: Source, variant_list: Sequence[variants.Variant],
                      settings: BenchSettings, options: Any, results_path: Path, artifacts_dir: Path | None,
                      resume: bool = False, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Submit one task per variant, append each task's records as it finishes; returns the records written."""
    ray = import_ray()
    from compress.measure import sweep

    results_path = Path(results_path)
    device = settings.device
    resources = cluster.task_resources(device)
    if settings.threads is None and device == "cpu":
        # A task's threads are the CPUs it holds, so that tasks sharing a node do not oversubscribe it.
        settings = replace(settings, threads=max(1, int(resources.get("CPU", 1))))
    cluster.check_nodes(source, artifacts_dir)
    existing = results.load(results_path) if results_path.exists() else []
    done = sweep.completed_tests(existing) if resume else set()
    todo = [(i, v) for i, v in enumerate(variant_list) if not _all_done(source, v, settings, options, done, log)]
    shipped = [ray.put(pack_model(source))] if cluster.options.ship_model and todo else []
    remote = ray.remote(max_calls=1, max_retries=0)(bench_task)
    task_options = {"num_cpus": resources.get("CPU", 0), "num_gpus": resources.get("GPU", 0),
                    "resources": {k: v for k, v in resources.items() if k not in ("CPU", "GPU")}}
    shown = ", ".join(f"{k}={v:g}" for k, v in resources.items())
    log(f"submitting {len(todo)} variant(s) to the cluster, {shown} each")

    def submit(index: int, variant: variants.Variant, attempt: int) -> Any:
        return remote.options(name=f"bench {variant.name}", **task_options).remote(
            source, variant, settings, options, str(artifacts_dir) if artifacts_dir else None, done, shipped, attempt)

    writer = _OrderedWriter(results_path, variant_list, existing, source.fingerprint())
    pending = {submit(i, v, 1): (i, v, 1) for i, v in todo}
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for ref in ready:
                index, variant, attempt = pending.pop(ref)
                outcome = _collect(ray, ref)
                if outcome["retry"] and attempt <= cluster.options.max_retries:
                    log(f"  {variant.name}: {outcome['reason']}; retrying ({attempt}/{cluster.options.max_retries})")
                    pending[submit(index, variant, attempt + 1)] = (index, variant, attempt + 1)
                    continue
                if "records" in outcome:
                    log(f"  {variant.name}: {len(outcome['records'])} record(s) back")
                    writer.finish(index, outcome["records"], outcome["ppl_delta_pct"])
                else:
                    tried = f" after {attempt} attempt(s)" if outcome["retry"] else ""
                    log(f"  {variant.name}: failed{tried}: {outcome['reason']}")
                    writer.finish(index, [_failure(source, variant, settings, options, outcome["reason"] + tried,
                                                   attempt)], None)
    except BaseException:  # Ctrl-C or a driver error: stop the tasks, keep what came back
        for ref in pending:
            ray.cancel(ref, force=True)
        writer.flush_all()
        raise
    writer.flush_all()
    return writer.written


def _all_done(source: Source, variant: variants.Variant, settings: BenchSettings, options: Any,
              done: set[tuple[str, str, str, str]], log: Callable[[str], None]) -> bool:
    """Whether ``--resume`` has every test of this variant already, checked here so no task starts for it."""
    if not done or settings.threads is None:
        return False  # the task knows its threads only on its node; it filters there
    from compress import apply

    key = apply.artifact_key(source, variant, options, settings.device)
    fingerprint = source.fingerprint()
    if all((fingerprint, key, t, p["settings_key"]) in done for t, p in plan_tests(settings, settings.threads).items()):
        log(f"  {variant.name}: every test already recorded for artifact {key}: skipped (--resume)")
        return True
    return False


def _collect(ray: Any, ref: Any) -> dict[str, Any]:
    """A finished task's result, or why it failed and whether a retry may help."""
    from ray import exceptions as rex

    from compress.measure.sweep import failure_reason

    try:
        return {"retry": False, **ray.get(ref)}
    except rex.TaskCancelledError:
        return {"retry": False, "reason": "cancelled"}
    except rex.RayTaskError as err:  # our code raised on the node: retrying would raise again
        cause = getattr(err, "cause", None)
        return {"retry": False, "reason": failure_reason(cause) if isinstance(cause, BaseException) else
                _first_line(err)}
    except rex.OutOfMemoryError as err:  # Ray's memory monitor killed the worker
        return {"retry": True, "reason": f"out of memory: {_first_line(err)}"}
    except rex.RayError as err:  # the worker process or its node died, an object was lost
        return {"retry": True, "reason": f"the task's worker died ({type(err).__name__}: {_first_line(err)})"}


def _first_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def _failure(source: Source, variant: variants.Variant, settings: BenchSettings, options: Any, reason: str,
             attempt: int) -> dict[str, Any]:
    """The record of a variant whose task never returned; written by the driver like any other."""
    import socket

    from compress import apply

    return results.failure(
        reason, model=source.name, model_fingerprint=source.fingerprint(), variant=variant.name, method=variant.method,
        config=dict(variant.steps[-1].config),
        artifact_key=apply.artifact_key(source, variant, options, settings.device),
        device=settings.device, threads=settings.threads, bench_settings=settings.to_dict(),
        driver_host=socket.gethostname(), cluster="ray", node_id=None, node_ip=None, attempt=attempt,
        test="load", params={"settings_key": None})


class _OrderedWriter:
    """Appends each finished variant's records, completing perplexity predictions as a local sweep would.

    A local sweep predicts a variant's perplexity from a baseline (fp32, bf16, fp16) measured
    earlier in the file or in the same sweep. Tasks finish in any order, so a variant's records
    wait until every baseline listed before it has been written; then its perplexity record gets
    the same prediction it would have had locally.
    """

    def __init__(self, path: Path, variant_list: Sequence[variants.Variant], existing: list[dict[str, Any]],
                 fingerprint: str) -> None:
        from compress.measure.context import BASELINES

        self.path = path
        self.fingerprint = fingerprint
        self.baselines = {i for i, v in enumerate(variant_list) if v.name in BASELINES}
        self.known = [r for r in existing if r.get("variant") in BASELINES and r.get("metric") == "perplexity"]
        self.finished: dict[int, tuple[list[dict[str, Any]], float | None]] = {}
        self.flushed: set[int] = set()
        self.written: list[dict[str, Any]] = []

    def finish(self, index: int, records: list[dict[str, Any]], ppl_delta_pct: float | None) -> None:
        self.finished[index] = (records, ppl_delta_pct)
        progress = True
        while progress:
            progress = False
            for i in sorted(set(self.finished) - self.flushed):
                if all(b in self.flushed for b in self.baselines if b < i):
                    self._write(i)
                    progress = True

    def flush_all(self) -> None:
        for i in sorted(set(self.finished) - self.flushed):
            self._write(i)

    def _write(self, index: int) -> None:
        from compress.measure import metrics
        from compress.measure.context import BASELINES

        records, delta = self.finished[index]
        self.flushed.add(index)
        for rec in records:
            if (rec.get("metric") == "perplexity" and rec.get("status") == "ok" and rec.get("predicted") is None
                    and delta is not None):
                key = (rec.get("params") or {}).get("settings_key")
                found = {r["variant"]: r["value"] for r in self.known
                         if r.get("status") == "ok" and r.get("model_fingerprint") == self.fingerprint
                         and (r.get("params") or {}).get("settings_key") == key}
                base = next((found[b] for b in BASELINES if b in found), None)
                if base is not None:
                    rec["predicted"] = base * (1 + delta / 100)
                    rec["prediction_error_pct"] = metrics.prediction_error_pct(rec["value"], rec["predicted"])
            results.append(self.path, rec)
            self.written.append(rec)
        self.known += [r for r in records if r.get("variant") in BASELINES and r.get("metric") == "perplexity"]
