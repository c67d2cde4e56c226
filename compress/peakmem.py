"""Peak memory of a block of work: resident set size on the CPU, allocated memory on CUDA.

RSS is sampled from a background thread (the kernel keeps only a lifetime high-water
mark, ``ru_maxrss``, which cannot be reset); CUDA's own peak counter is reset and read.
"""

from __future__ import annotations

import threading

from types import TracebackType

import psutil


class PeakMemory:
    """``with PeakMemory(device) as peak: ...`` then read ``peak.rss_bytes`` / ``peak.cuda_bytes``."""

    def __init__(self, device: str = "cpu", interval_s: float = 0.02) -> None:
        self.device = device
        self.interval_s = interval_s
        self.rss_bytes = 0
        self.baseline_rss_bytes = 0
        self.cuda_bytes: int | None = None
        self._stop = threading.Event()
        self._process = psutil.Process()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.rss_bytes = max(self.rss_bytes, self._process.memory_info().rss)
            self._stop.wait(self.interval_s)

    def __enter__(self) -> PeakMemory:
        self.baseline_rss_bytes = self._process.memory_info().rss
        self.rss_bytes = self.baseline_rss_bytes
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()
        final = self.peak_so_far()
        if self.device.startswith("cuda"):
            self.cuda_bytes = final

    def peak_so_far(self) -> int:
        """The peak up to now, read while the block is still running."""
        self.rss_bytes = max(self.rss_bytes, self._process.memory_info().rss)
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
            return torch.cuda.max_memory_allocated()
        return self.rss_bytes

    @property
    def peak_bytes(self) -> int:
        """The figure that matters on this device: CUDA peak allocated, else peak RSS."""
        return self.cuda_bytes if self.cuda_bytes is not None else self.rss_bytes


