"""GPU profiles, kernel compatibility rules and the host profile."""

import json
import os

import pytest

from compress.errors import UserInputError
from compress.planner import hardware, profiles
from compress.planner.hardware import kernel_support, list_gpus, load_gpu

REQUIRED = ["t4", "v100", "a10g", "a10", "l4", "l40s", "a100-40gb", "a100-80gb-sxm", "a100-80gb-pcie",
            "h100-sxm", "h100-pcie", "h200", "rtx-3090", "rtx-4090", "rtx-a6000"]


def test_required_gpus_present_with_sources():
    names = {g.name for g in list_gpus()}
    assert set(REQUIRED) <= names
    for path, data in profiles.load_folder("gpus"):
        text = path.read_text()
        assert data["source"] and "http" in text, path
        # A CUDA device names its compute capability; ROCm and Metal devices their architecture.
        arch_key = "compute_capability" if data.get("backend", "cuda") == "cuda" else "arch_id"
        for key in ("memory_gib", "memory_bandwidth_gbs", arch_key, "tflops"):
            assert key in data, (path, key)
        assert {"fp32", "fp16"} <= set(data["tflops"]), path


def test_t4_has_no_flash_attention_2_and_no_bf16():
    t4 = load_gpu("t4")
    assert not kernel_support(t4, "flash_attention_2")[0]
    assert not kernel_support(t4, "bf16")[0]
    assert kernel_support(t4, "bnb_int8")[0]  # LLM.int8 needs sm75: the T4 is sm75
    assert "bf16" not in t4.tflops


@pytest.mark.parametrize("name", REQUIRED)
def test_fp8_only_on_sm89_and_newer(name):
    gpu = load_gpu(name)
    assert kernel_support(gpu, "fp8")[0] == (gpu.cc >= 8.9)
    assert ("fp8" in gpu.tflops) == (gpu.cc >= 8.9)


def test_marlin_and_sparse_need_ampere():
    assert not kernel_support(load_gpu("v100"), "marlin")[0]
    assert kernel_support(load_gpu("a10g"), "marlin")[0]
    assert kernel_support(load_gpu("a100-40gb"), "sparse_2_4")[0]
    assert not kernel_support(load_gpu("v100"), "awq_gemm")[0]


def test_unknown_gpu_suggests():
    with pytest.raises(UserInputError, match="did you mean 't4'"):
        load_gpu("t5")


def test_gpu_round_trips_through_dict():
    g = load_gpu("h100-sxm")
    assert hardware.GpuProfile.from_dict(g.to_dict()) == g


def test_nvml_names_match_profiles():
    assert hardware.match_gpu_name("NVIDIA A100-SXM4-80GB", 80).name == "a100-80gb-sxm"
    assert hardware.match_gpu_name("Tesla T4", 15).name == "t4"
    assert hardware.match_gpu_name("NVIDIA L40S", 45).name == "l40s"
    assert hardware.match_gpu_name("NVIDIA GeForce RTX 4090", 24).name == "rtx-4090"
    assert hardware.match_gpu_name("NVIDIA H100 80GB HBM3", 80).name == "h100-sxm"
    assert hardware.match_gpu_name("NVIDIA H100 PCIe", 80).name == "h100-pcie"
    assert hardware.match_gpu_name("NVIDIA A100-PCIE-40GB", 40).name == "a100-40gb-pcie"


@pytest.mark.parametrize("name, choices", [
    ("a100", "a100-40gb, a100-40gb-pcie, a100-80gb-pcie, a100-80gb-sxm"),
    ("A100-80GB", "a100-80gb-pcie, a100-80gb-sxm"),
    ("a100-80", "a100-80gb-pcie, a100-80gb-sxm"),
    ("h100", "h100-pcie, h100-sxm"),
    ("rtx", "rtx-3090, rtx-4090, rtx-5090, rtx-a6000, rtx-pro-6000"),
])
def test_a_name_of_several_cards_is_refused_with_the_choices(name, choices):
    with pytest.raises(UserInputError, match=f"could be .* profiles: expected one of {choices} "):
        load_gpu(name)


def test_names_of_one_card_resolve():
    assert [load_gpu(n).name for n in ("a10", "h100-sxm5", "a100-sxm4-80gb", "mi300", "4090")] == [
        "a10", "h100-sxm", "a100-80gb-sxm", "mi300x", "rtx-4090"]


def test_host_profile_uses_default_then_probe(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPRESS_RESULTS", str(tmp_path))
    host = load_gpu("cpu")
    assert host.kind == "cpu" and host.cores >= 1 and host.usable_memory_gib > 0
    assert any("documented default" in n for n in host.notes)
    from compress.provenance import cpu_name

    this_machine = {"cpu": cpu_name(), "cores": os.cpu_count()}  # a probe is used on the machine it measured
    (tmp_path / "probe.json").write_text(json.dumps({"host": "x", "copy_bandwidth_gbs": 12.5, "matmul_tflops_fp32": 0.3,
                                                     **this_machine}))
    probed = load_gpu("host")
    assert probed.memory_bandwidth_gbs == 12.5 and probed.tflops["fp32"] == 0.3
    assert any("measured by `compress probe`" in n for n in probed.notes)
    for damaged in ("[1, 2]", "[" * 100_000):  # not a probe: the documented default, as with no file
        (tmp_path / "probe.json").write_text(damaged)
        assert any("documented default" in n for n in load_gpu("host").notes)


def test_auto_falls_back_to_host_with_a_note():
    gpu = load_gpu("auto")
    if gpu.kind == "gpu":
        pytest.skip("a GPU is present")
    assert "planning for the host CPU" in gpu.notes[0]
