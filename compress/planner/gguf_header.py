"""A GGUF header reader for planning: key/values and tensor shapes, nothing else.

The planner needs a dozen metadata numbers and the names and shapes of the tensors. A GGUF
file opens with exactly those (GGUF specification, ggml docs/gguf.md: magic, version, tensor
count, key/value count, the key/values, then one info record per tensor), followed by the
tensor data. This reader walks that header in a memory map and skips every large array (the
tokenizer's 50k-260k strings, scores and token types) by its length prefixes instead of
decoding it, so a 260k-token vocabulary costs milliseconds, and it never touches the tensor
data. Only the standard library is used.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAGIC = b"GGUF"
#: Scalar value types of the GGUF specification: type id -> struct format.
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
#: Arrays up to this many elements are decoded (per-layer head counts, ...); longer ones
#: are skipped and kept as :class:`SkippedArray`.
MAX_DECODED_ARRAY = 1024


class GGUFHeaderError(ValueError):
    """The file is not a GGUF file, or its header is cut short."""


@dataclass(frozen=True)
class SkippedArray:
    """An array too long to be worth decoding for planning: its element type and length."""

    item_type: int
    count: int

    def __len__(self) -> int:
        return self.count


@dataclass
class GGUFHeader:
    version: int
    metadata: dict[str, Any] = field(default_factory=dict)
    tensors: dict[str, tuple[list[int], int]] = field(default_factory=dict)  # name -> (shape ne0.., ggml type)


class _Cursor:
    def __init__(self, buf: Any, path: Path) -> None:
        self.buf, self.pos, self.path = buf, 0, path

    def unpack(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.buf):
            raise GGUFHeaderError(f"{self.path} ends inside its GGUF header (at byte {self.pos}): the file is truncated")
        value = struct.unpack_from(fmt, self.buf, self.pos)[0]
        self.pos += size
        return value

    def string(self) -> str:
        n = self.unpack("<Q")
        end = self.pos + n
        if end > len(self.buf):
            raise GGUFHeaderError(f"{self.path} ends inside a GGUF string (at byte {self.pos}): the file is truncated")
        text = bytes(self.buf[self.pos:end]).decode("utf-8", errors="replace")
        self.pos = end
        return text

    def skip_strings(self, count: int) -> None:
        buf, pos, size = self.buf, self.pos, len(self.buf)
        for _ in range(count):
            if pos + 8 > size:
                raise GGUFHeaderError(f"{self.path} ends inside a GGUF string array: the file is truncated")
            pos += 8 + struct.unpack_from("<Q", buf, pos)[0]
        if pos > size:
            raise GGUFHeaderError(f"{self.path} ends inside a GGUF string array: the file is truncated")
        self.pos = pos

    def value(self, vtype: int) -> Any:
        if vtype in _SCALARS:
            return self.unpack(_SCALARS[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            item_type, count = self.unpack("<I"), self.unpack("<Q")
            if count <= MAX_DECODED_ARRAY:
                return [self.value(item_type) for _ in range(count)]
            if item_type in _SCALARS:
                self.pos += count * struct.calcsize(_SCALARS[item_type])
                if self.pos > len(self.buf):
                    raise GGUFHeaderError(f"{self.path} ends inside a GGUF array: the file is truncated")
            elif item_type == _STRING:
                self.skip_strings(count)
            else:  # arrays of arrays: walk them, without keeping anything
                for _ in range(count):
                    self.value(item_type)
            return SkippedArray(item_type, count)
        raise GGUFHeaderError(f"{self.path} has an unknown GGUF value type {vtype} at byte {self.pos}: "
                              "expected 0-12 (GGUF v2/v3)")


def read_header(path: str | Path) -> GGUFHeader:
    """The key/values and tensor infos of a GGUF file (v2 or v3), arrays longer than
    :data:`MAX_DECODED_ARRAY` skipped."""
    path = Path(path)
    with open(path, "rb") as f:
        if f.read(4) != MAGIC:
            raise GGUFHeaderError(f"{path} is not a GGUF file: expected the magic b'GGUF' at its start")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            cur = _Cursor(buf, path)
            cur.pos = 4
            version = cur.unpack("<I")
            if version not in (2, 3):
                raise GGUFHeaderError(f"{path} is GGUF version {version}: expected 2 or 3")
            n_tensors, n_kv = cur.unpack("<Q"), cur.unpack("<Q")
            header = GGUFHeader(version=version)
            for _ in range(n_kv):
                key = cur.string()
                header.metadata[key] = cur.value(cur.unpack("<I"))
            for _ in range(n_tensors):
                name = cur.string()
                dims = [cur.unpack("<Q") for _ in range(cur.unpack("<I"))]
                ggml_type = cur.unpack("<I")
                cur.unpack("<Q")  # offset of the data, not needed
                header.tensors[name] = (dims, ggml_type)
    return header
