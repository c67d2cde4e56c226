"""What the source fingerprint costs: a full SHA-256 of a weight file, first use and cached.

Writes a file of ``--size-gib`` (random bytes, so no filesystem shortcut applies) to a
temporary folder, times :func:`compress.fingerprint.file_digest` on it cold (first use:
reads and hashes every byte) and then warm (cached by path, size, mtime, ctime and inode),
deletes the file, and extrapolates the first-use cost to a 7B fp16 checkpoint (13.5 GB).

The file was just written, so it is read back from the page cache where memory allows:
the first-use figure is the hashing cost; a checkpoint read cold from disk adds the disk's
read time (13.5 GB at the disk's sequential read speed) on top.

    python bench/fingerprint_cost.py [--size-gib 2] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

CHECKPOINT_7B_BYTES = 13.5e9  # 6.74B parameters x 2 bytes (Llama-2-7B in fp16)


def main() -> None:
    from compress import fingerprint

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gib", type=float, default=2.0, help="size of the test file in GiB [2]")
    parser.add_argument("--dir", default=None, help="where to write it [the system temp folder]")
    args = parser.parse_args()
    size = int(args.size_gib * 2**30)
    with tempfile.TemporaryDirectory(prefix="compress-fingerprint-", dir=args.dir) as tmp:
        os.environ["COMPRESS_CACHE"] = str(Path(tmp) / "cache")
        file = Path(tmp) / "model.safetensors"
        block = os.urandom(64 << 20)
        with open(file, "wb") as f:
            for start in range(0, size, len(block)):
                f.write(block[: min(len(block), size - start)])
        # A file is cached only once it has been left alone a moment (see compress.fingerprint).
        time.sleep(fingerprint.RACY_NS / 1e9 + 0.1)
        started = time.perf_counter()
        fingerprint.file_digest(file)
        first_s = time.perf_counter() - started
        started = time.perf_counter()
        for _ in range(100):
            fingerprint.file_digest(file)
        cached_ms = (time.perf_counter() - started) * 1000 / 100
    gbs = size / first_s / 1e9
    print(f"file {size / 1e9:.2f} GB: first use {first_s:.2f} s ({gbs:.2f} GB/s hashed), "
          f"cached {cached_ms:.3f} ms per call")
    print(f"7B fp16 checkpoint ({CHECKPOINT_7B_BYTES / 1e9:.1f} GB), extrapolated at that rate: "
          f"first use {CHECKPOINT_7B_BYTES / 1e9 / gbs:.1f} s (+ disk read time if not in the page cache), "
          f"then {cached_ms:.3f} ms per call")


if __name__ == "__main__":
    main()
