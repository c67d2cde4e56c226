"""Sweeps on a real local Ray cluster (127.0.0.1, CPUs only): the same records as a local sweep, faults, resume."""

from __future__ import annotations

import _thread
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from compress import apply, results, sources, variants
from compress.errors import UserInputError
from compress.measure import cluster as ray_cluster
from compress.measure import cluster_node
from compress.measure.settings import BenchSettings

TINY = BenchSettings(ppl_tokens=256, ppl_context=128, ppl_stride=128, pp_tokens=16, tg_tokens=4, reps=1, warmup=0,
                     threads=1, device="cpu", tests=("ppl", "tg"))
OPTIONS = apply.Options(device="cpu", calib_samples=4, calib_seq_len=64)
#: Differ from run to run or from machine to machine by nature: timings, ids, where it ran.
VOLATILE = {"timestamp", "run_id", "test_id", "value", "stats", "samples", "prediction_error_pct", "host",
            "cluster", "node_id", "node_ip", "attempt"}
#: ``process``: the local reference measures both variants in one process to save a start-up.
VOLATILE_PARAMS = {"process", "load_avg_1m", "window_s", "peak_rss_bytes", "baseline_rss_bytes", "added_rss_bytes",
                   "achieved_gbs", "achieved_tflops"}
#: Figures that do not depend on timing: they must match to the last digit.
EXACT = {"perplexity", "artifact_bytes"}
SWEEP_LIMIT_S = 240  # a sweep that takes longer on the shared 2-core machine is interrupted like Ctrl-C


@pytest.fixture(scope="module")
def ray_local(_isolated_cache):
    """A two-CPU Ray cluster bound to the loopback address only, shut down even when a test fails."""
    if "ray" in sys.modules:
        pytest.skip("Ray was imported before this module set it to the loopback address")
    before = os.environ.get(ray_cluster.LOOPBACK_ONLY_ENV)
    os.environ[ray_cluster.LOOPBACK_ONLY_ENV] = "0"
    ray = pytest.importorskip("ray")
    try:
        ray.init(address="local", num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
                 logging_level="warning", log_to_driver=False)
        yield ray
    finally:
        ray.shutdown()
        if before is None:
            os.environ.pop(ray_cluster.LOOPBACK_ONLY_ENV, None)
        else:
            os.environ[ray_cluster.LOOPBACK_ONLY_ENV] = before


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    return tmp_path_factory.mktemp("artifacts")


@contextlib.contextmanager
def _time_limit(seconds):
    """Interrupt the main thread (as Ctrl-C does) if the block runs past ``seconds``."""
    timer = threading.Timer(seconds, _thread.interrupt_main)
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def _cluster_sweep(ray, tiny_llama, path, artifacts, names, settings=TINY, resume=False, **cluster_options):
    options = ray_cluster.ClusterOptions(resources={"CPU": 1}, **cluster_options)
    source = sources.resolve(str(tiny_llama))
    with _time_limit(SWEEP_LIMIT_S), ray_cluster.Cluster(options, log=lambda line: None) as connection:
        return ray_cluster.run_cluster_sweep(connection, source, variants.parse_list(names), settings, OPTIONS, path,
                                             artifacts, resume=resume, log=lambda line: None)


def _local_sweep_without_ray(tiny_llama, path, artifacts, names):
    """The same sweep on this machine, in a fresh process that also shows a local sweep never imports Ray."""
    root = Path(__file__).resolve().parents[3]
    code = (
        "import json, sys\n"
        "from compress import apply, sources, variants\n"
        "from compress.measure import sweep\n"
        "from compress.measure.settings import BenchSettings\n"
        f"settings = BenchSettings.from_dict(json.loads({json.dumps(json.dumps(TINY.to_dict()))}))\n"
        f"options = apply.Options(device='cpu', calib_samples={OPTIONS.calib_samples}, "
        f"calib_seq_len={OPTIONS.calib_seq_len})\n"
        f"sweep.run_sweep(sources.resolve({str(tiny_llama)!r}), variants.parse_list({names!r}), settings, options,\n"
        f"                {str(path)!r}, {str(artifacts)!r}, log=lambda line: None)\n"
        "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(root)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"  # no ray module was loaded
    return results.load(path)


def _once_each(records):
    """No figure of a variant written twice (the perplexity test also writes KLD figures against a baseline)."""
    keys = [(r["variant"], r["test"], r["metric"]) for r in records]
    return len(keys) == len(set(keys))


def _comparable(rec):
    out = {k: v for k, v in rec.items() if k not in VOLATILE}
    out["params"] = {k: v for k, v in (rec.get("params") or {}).items() if k not in VOLATILE_PARAMS}
    if rec["metric"] in EXACT:
        out["value"], out["prediction_error_pct"] = rec["value"], rec["prediction_error_pct"]
    return out


def _by_key(records):
    return sorted((_comparable(r) for r in records), key=lambda r: (r["variant"], r["test"], r["metric"] or ""))


def _ray_task_pids(title):
    """Processes whose title Ray set to ``ray::<task name>`` while they run that task."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if cmdline.startswith(f"ray::{title}"):
            found.append(int(entry.name))
    return found


@contextlib.contextmanager
def _killing(limits):
    """SIGKILL the worker of each task ``bench <variant>`` as soon as it starts, up to ``limits[variant]`` times."""
    stop = threading.Event()
    killed: dict[str, list[int]] = {name: [] for name in limits}

    def killer():
        while not stop.is_set():
            for name, limit in limits.items():
                for pid in _ray_task_pids(f"bench {name}"):
                    if pid not in killed[name] and len(killed[name]) < limit:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGKILL)
                        killed[name].append(pid)
            time.sleep(0.05)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        yield killed
    finally:
        stop.set()
        thread.join(timeout=5)


def test_cluster_sweep_equals_a_local_sweep_and_retries_a_killed_worker(ray_local, tiny_llama, tmp_path, artifacts):
    """fp16's first worker is killed mid-task: it is retried, and the records still equal a local run's."""
    local_path, cluster_path = tmp_path / "local.jsonl", tmp_path / "cluster.jsonl"
    local = _local_sweep_without_ray(tiny_llama, local_path, artifacts, "fp32,fp16")
    with _killing({"fp16": 1}) as killed:
        remote = _cluster_sweep(ray_local, tiny_llama, cluster_path, artifacts, "fp32,fp16", max_retries=1)
    assert len(killed["fp16"]) == 1
    assert results.load(cluster_path) == json.loads(json.dumps(remote))  # the driver wrote what the tasks returned
    assert len(remote) == len(local) and {r["status"] for r in remote} == {"ok"}  # nothing lost, nothing twice
    for got, want in zip(_by_key(remote), _by_key(local)):
        differ = {k: (got.get(k), want.get(k)) for k in got.keys() | want.keys() if got.get(k) != want.get(k)}
        assert not differ, (got["variant"], got["test"], got["metric"], differ)
    for rec in remote:  # each record names where it ran, and on which attempt
        assert rec["cluster"] == "ray" and rec["node_ip"] == "127.0.0.1" and rec["node_id"]
        assert rec["host"] and rec["device"] == "cpu"
        assert rec["attempt"] == (2 if rec["variant"] == "fp16" else 1)
        assert rec["test"] != "memory" or rec["params"]["process"] == "own"  # a fresh worker process per task
    # --resume through the cluster: everything is on disk, so nothing is submitted or written
    assert _cluster_sweep(ray_local, tiny_llama, cluster_path, artifacts, "fp32,fp16", resume=True) == []
    assert len(results.load(cluster_path)) == len(remote)


def test_worker_killed_past_its_retries_becomes_a_failed_record(ray_local, tiny_llama, tmp_path, artifacts):
    path = tmp_path / "bench.jsonl"
    with _killing({"fp32": 99}) as killed:
        written = _cluster_sweep(ray_local, tiny_llama, path, artifacts, "fp32,fp16",
                                 settings=replace(TINY, tests=("ppl",)), max_retries=0, ship_model=True)
    assert len(killed["fp32"]) == 1
    stored = results.load(path)
    assert stored == json.loads(json.dumps(written))
    failed = [r for r in stored if r["variant"] == "fp32"]
    assert len(failed) == 1 and failed[0]["status"] == "failed" and failed[0]["test"] == "load"
    assert "worker died" in failed[0]["error"] and "after 1 attempt(s)" in failed[0]["error"]
    fp16 = [r for r in stored if r["variant"] == "fp16"]  # the sweep went on
    assert {r["status"] for r in fp16} == {"ok"} and {"size", "ppl", "memory"} <= {r["test"] for r in fp16}
    assert _once_each(fp16)


def test_ctrl_c_cancels_the_tasks_and_keeps_finished_records(ray_local, tiny_llama, tmp_path, artifacts):
    """Variants one at a time (each task takes both CPUs); Ctrl-C once the first is on disk."""
    path = tmp_path / "bench.jsonl"
    settings = replace(TINY, tests=("ppl",))
    source = sources.resolve(str(tiny_llama))
    options = ray_cluster.ClusterOptions(resources={"CPU": 2})

    def interrupt_after_first_variant():
        deadline = time.time() + SWEEP_LIMIT_S
        while time.time() < deadline and not any(r["test"] == "memory" for r in results.load(path)):
            time.sleep(0.05)
        _thread.interrupt_main()

    threading.Thread(target=interrupt_after_first_variant, daemon=True).start()
    with pytest.raises(KeyboardInterrupt), ray_cluster.Cluster(options, log=lambda line: None) as connection:
        ray_cluster.run_cluster_sweep(connection, source, variants.parse_list("fp32,fp16"), settings, OPTIONS, path,
                                      artifacts, log=lambda line: None)
    before = results.load(path)
    assert {r["variant"] for r in before} == {"fp32"} and {"size", "ppl", "memory"} <= {r["test"] for r in before}
    assert _once_each(before)
    deadline = time.time() + 60  # the cancelled task's worker goes away
    while time.time() < deadline and _ray_task_pids("bench fp16"):
        time.sleep(0.2)
    assert _ray_task_pids("bench fp16") == []


def test_unwritable_artifacts_path_is_refused_before_any_task(ray_local, tiny_llama, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(UserInputError, match=r"--artifacts .* is not writable .* on node 127\.0\.0\.1"):
        _cluster_sweep(ray_local, tiny_llama, tmp_path / "bench.jsonl", blocker / "artifacts", "fp32")
    assert not (tmp_path / "bench.jsonl").exists()
    facts = ray_local.get(ray_local.remote(num_cpus=0)(cluster_node.node_facts).remote(
        str(tmp_path / "missing-model"), "0" * 16, None))
    assert facts["model"] == "is not visible" and facts["node_ip"] == "127.0.0.1"


def test_shipped_model_unpacks_to_the_same_model(tiny_llama, tmp_path):
    source = sources.resolve(str(tiny_llama))
    packed = cluster_node.pack_model(source)
    path = cluster_node.unpack_model(packed, tmp_path / "models")
    assert path.name == tiny_llama.name and sources.resolve(str(path)).fingerprint() == source.fingerprint()
    assert cluster_node.unpack_model(packed, tmp_path / "models") == path  # a second task reuses it


def test_cluster_options_and_resources_are_checked():
    assert ray_cluster.parse_resources("CPU=2, GPU=1,accelerator_type:H100=0.01") == {
        "CPU": 2.0, "GPU": 1.0, "accelerator_type:H100": 0.01}
    assert ray_cluster.parse_resources(None) == {}
    with pytest.raises(UserInputError, match="NAME=AMOUNT"):
        ray_cluster.parse_resources("CPU:2")
    with pytest.raises(UserInputError, match="ray://HOST:PORT"):
        ray_cluster.ClusterOptions(address="10.0.0.1:6379")
    with pytest.raises(UserInputError, match="max-retries"):
        ray_cluster.ClusterOptions(max_retries=-1)
    assert ray_cluster.ClusterOptions(address="ray://10.0.0.1:10001").to_dict()["address"] == "ray://10.0.0.1:10001"


def test_bench_command_refuses_bad_cluster_options_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from cli import app

    base = ["bench", "--model", "default", "--methods", "fp32", "--results", str(tmp_path / "b.jsonl")]
    for extra, message in ((["--cluster", "10.0.0.1:6379"], "ray://HOST:PORT"),
                           (["--cluster", "local", "--resources", "CPU:1"], "NAME=AMOUNT"),
                           (["--cluster", "local:0"], "whole number of CPUs from 1 to")):
        result = CliRunner().invoke(app, [*base, *extra])
        assert result.exit_code != 0 and isinstance(result.exception, UserInputError), result.output
        assert message in str(result.exception)  # `compress` prints it as one line (cli.main)
    assert not (tmp_path / "b.jsonl").exists()
