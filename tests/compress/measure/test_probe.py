"""`compress probe`: results in the cache, repeated runs with their spread, busy machines flagged."""

import json

import pytest

from compress.measure import probe as probe_mod
from compress.planner import load_gpu, profiles

LIMITS = {"probe_busy_load_per_core": 0.5, "probe_spread_limit_pct": 10.0}


def test_summary_is_the_median_with_samples_and_spread():
    runs = [{"copy_bandwidth_gbs": v, "device": "cpu"} for v in (10.0, 12.0, 11.0)]
    out = probe_mod.summarise_runs(runs)
    # median 11; spread (12 - 10) / 11 = 18.18%
    assert out["copy_bandwidth_gbs"] == 11.0 and out["copy_bandwidth_gbs_samples"] == [10.0, 12.0, 11.0]
    assert out["copy_bandwidth_gbs_spread_pct"] == pytest.approx(18.18, abs=0.01)
    assert any("varied by 18%" in w for w in probe_mod.busy_warnings(out, 2, LIMITS))
    assert any("load average 3.00 on 2 cores" in w
               for w in probe_mod.busy_warnings({"load_avg_1m_before": 3.0}, 2, LIMITS))
    assert probe_mod.busy_warnings({"load_avg_1m_before": 0.2, "copy_bandwidth_gbs_spread_pct": 3.0}, 2, LIMITS) == []


def test_probe_writes_to_the_cache_and_a_busy_probe_keeps_the_quiet_one(tmp_path, monkeypatch):
    monkeypatch.delenv("COMPRESS_RESULTS", raising=False)
    monkeypatch.setenv("COMPRESS_CACHE", str(tmp_path))
    assert profiles.probe_path() == tmp_path / "probe.json"
    monkeypatch.setattr(probe_mod.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    monkeypatch.setattr(probe_mod, "busy_warnings", lambda data, cores, limits: [])
    quiet, path = probe_mod.probe(device="cpu", size_mib=1, matmul_n=32, repeats=1, runs=2)
    assert path == tmp_path / "probe.json" and len(quiet["copy_bandwidth_gbs_samples"]) == 2
    first = json.loads(path.read_text())
    monkeypatch.setattr(probe_mod, "busy_warnings", lambda data, cores, limits: ["machine busy: load 9"])
    busy, _ = probe_mod.probe(device="cpu", size_mib=1, matmul_n=32, repeats=1, runs=1)
    assert busy["busy"] and busy["kept_previous"] == first["timestamp"]
    assert json.loads(path.read_text()) == first  # the noisy probe did not replace it
    assert len((tmp_path / "probe-history.jsonl").read_text().splitlines()) == 2
    host = load_gpu("cpu")
    assert host.memory_bandwidth_gbs == pytest.approx(first["copy_bandwidth_gbs"])
    probe_mod.probe(device="cpu", size_mib=1, matmul_n=32, repeats=1, runs=1, accept_busy=True)
    assert json.loads(path.read_text())["busy"]
    assert any("measured while the machine was busy" in n for n in load_gpu("cpu").notes)


def test_a_probe_of_another_machine_is_not_used_for_this_one(monkeypatch, tmp_path):
    """A cache folder can outlive its machine: the planner then says its bandwidth is the default."""
    import json
    import os

    from compress.planner import hardware
    from compress.provenance import cpu_name

    probe = {"cpu": cpu_name(), "cores": os.cpu_count(), "copy_bandwidth_gbs": 123.0, "matmul_tflops_fp32": 1.0}
    monkeypatch.setenv("COMPRESS_CACHE", str(tmp_path))
    (tmp_path / "probe.json").write_text(json.dumps(probe))
    assert hardware.probe_of_this_machine(hardware.read_probe())
    assert hardware.host_profile().memory_bandwidth_gbs == 123.0
    (tmp_path / "probe.json").write_text(json.dumps({**probe, "cpu": "Other CPU 9000"}))
    assert not hardware.probe_of_this_machine(hardware.read_probe())
    profile = hardware.host_profile()
    assert profile.memory_bandwidth_gbs != 123.0
    assert any("measured on Other CPU 9000" in note and "documented default" in note for note in profile.notes)


def test_bench_probes_an_unmeasured_machine_first(tiny_llama, tmp_path, monkeypatch):
    """The planner's predictions beside the figures then use this machine's bandwidth, not a default."""
    import json

    from compress.measure import bench

    monkeypatch.setenv("COMPRESS_AUTO_PROBE", "1")
    monkeypatch.setenv("COMPRESS_CACHE", str(tmp_path / "cache"))
    lines = []
    bench(model=str(tiny_llama), methods="fp32", results_path=tmp_path / "r.jsonl", artifacts=tmp_path / "a",
          device="cpu", tests="tg", tg=2, reps=1, warmup=0, kld_top_k=0, log=lines.append)
    assert any("no probe of this machine yet" in line for line in lines)
    probe = json.loads((tmp_path / "cache" / "probe.json").read_text())
    assert probe["copy_bandwidth_gbs"] > 0
    lines.clear()
    bench(model=str(tiny_llama), methods="fp32", results_path=tmp_path / "r.jsonl", artifacts=tmp_path / "a",
          device="cpu", tests="tg", tg=2, reps=1, warmup=0, kld_top_k=0, log=lines.append)
    assert not any("no probe" in line for line in lines)  # measured once per machine
