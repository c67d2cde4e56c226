"""Energy of a block of work on an NVIDIA GPU, from NVML's energy counter.

``nvmlDeviceGetTotalEnergyConsumption`` returns millijoules used since the driver was
loaded (Volta and newer; NVML API reference, "Device Queries"). The difference of two
readings is the GPU board's energy for the block. Elsewhere (no NVML, no GPU, a GPU
without the counter) the meter reads ``None``: CPU energy (RAPL) is left out.
"""

from __future__ import annotations

from types import TracebackType


class EnergyMeter:
    """``with EnergyMeter(device) as e: ...`` then ``e.joules`` (``None`` where not measurable)."""

    def __init__(self, device: str, index: int = 0) -> None:
        self.device = device
        self.index = index
        self.joules: float | None = None
        self.reason: str | None = None
        self._nvml = None
        self._handle = None
        self._start_mj: int | None = None

    def __enter__(self) -> EnergyMeter:
        if not self.device.startswith("cuda"):
            self.reason = "energy is read from NVML, which measures NVIDIA GPUs only"
            return self
        try:
            import pynvml

            pynvml.nvmlInit()
            index = int(self.device.split(":")[1]) if ":" in self.device else self.index
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            self._start_mj = pynvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)
            self._nvml = pynvml
        except Exception as err:  # NVMLError subclasses: library missing, not supported, no permission
            self.reason = f"NVML energy counter unavailable ({type(err).__name__})"
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._nvml is None or self._start_mj is None:
            return
        try:
            end_mj = self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)
            self.joules = (end_mj - self._start_mj) / 1000.0
        except Exception as err:  # NVMLError subclasses
            self.reason = f"NVML energy counter failed ({type(err).__name__})"
        finally:
            self._nvml.nvmlShutdown()


def joules_per_token(joules: float | None, tokens: int) -> float | None:
    return None if joules is None or tokens <= 0 else joules / tokens
