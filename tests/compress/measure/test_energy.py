"""Energy: read from NVML on NVIDIA GPUs, and None with its reason everywhere else."""

from __future__ import annotations

import pytest

from compress.measure.energy import EnergyMeter, joules_per_token


def test_the_cpu_has_no_energy_counter_and_says_why():
    with EnergyMeter("cpu") as meter:
        sum(range(1000))
    assert meter.joules is None and "NVIDIA GPUs only" in meter.reason


def test_a_cuda_device_reads_nvml_or_names_why_not():
    with EnergyMeter("cuda:0") as meter:
        sum(range(1000))
    if meter.joules is None:
        assert meter.reason.startswith("NVML energy counter")
    else:
        assert meter.joules >= 0 and meter.reason is None


def test_joules_per_token_by_hand():
    assert joules_per_token(12.0, 4) == pytest.approx(3.0)
    assert joules_per_token(None, 4) is None and joules_per_token(12.0, 0) is None
