"""Reading a Hugging Face checkpoint's ``config.json``: the one reader the planner, ``sources``,
the methods' apply functions, the GGUF writer and the memory checks share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from compress.errors import UserInputError
from compress.fsutil import read_json_file


def read_config(path: Path | str) -> dict[str, Any]:
    """The ``config.json`` at ``path`` (the file, or the checkpoint folder holding it) as a dict;
    a file that is missing, unreadable, not JSON or not an object is refused in one line."""
    file = Path(path)
    file = file / "config.json" if file.is_dir() else file
    config = read_json_file(file, "a transformers config.json")
    if not isinstance(config, dict):
        raise UserInputError(f"{file} holds a JSON {type(config).__name__}: expected an object of model settings; "
                             "the checkpoint is corrupt")
    return config
