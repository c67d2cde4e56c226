"""Peak memory: the RSS sampler sees an allocation that is freed before the block ends."""

from __future__ import annotations

import time

from compress.peakmem import PeakMemory

MIB = 2**20


def test_the_peak_counts_memory_freed_before_the_end():
    with PeakMemory("cpu", interval_s=0.005) as peak:
        block = bytearray(96 * MIB)  # touched: bytearray zero-fills its pages
        time.sleep(0.1)
        during = peak.peak_so_far()
        del block
        time.sleep(0.05)
    assert peak.rss_bytes - peak.baseline_rss_bytes >= 80 * MIB
    assert during >= peak.baseline_rss_bytes + 80 * MIB
    assert peak.cuda_bytes is None and not peak._thread.is_alive()
