"""The commands that build and serve a planned (variant, engine) pair, for reviews and plan notes.

Pure string building from a plan's model and candidate: ``compress apply`` with the model it
compresses and the folder it writes (:func:`apply_command`), and the engine's own serving
line (:meth:`compress.engines.base.Engine.serve_command`: ``vllm serve``, ``llama-server``;
None for an engine with no server).

Every path printed is the one ``compress apply`` writes (``--out-dir`` is always given, and a
GGUF inside is named after the model the way ``compress.apply.gguf`` names it), and every
``--model`` is one apply can open: the default model, the plan's own local folder or file, or
for a catalog model with no weights here, the folder its Hugging Face download goes to.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compress import engines, paths

#: Where the review tells a user to download a catalog model's weights (then ``--model`` of apply).
DOWNLOAD_DIR = "models"


@dataclass(frozen=True)
class ModelSource:
    """How ``compress apply`` gets at a planned model's weights."""

    model_arg: str  # what --model takes
    name: str  # what apply names the source (compress.sources.resolve), the stem of artifact names
    download: str | None = None  # the command that fetches the weights first, where they are not here


def model_source(planned: dict[str, Any]) -> ModelSource:
    """The weights of a plan's model (``plan["model"]``): the default model, a packaged one, the plan's local
    folder or file, or a catalog model's Hugging Face id downloaded into ``models/<name>``."""
    from compress import packaged, sources

    name, path = planned.get("name") or "model", planned.get("path")
    if planned.get("origin") == "catalog" and name == sources.DEFAULT_CATALOG_NAME:
        return ModelSource(sources.DEFAULT_MODEL, sources.DEFAULT_SOURCE_NAME)
    if planned.get("origin") == "catalog" and (chunked := packaged.by_name(name)) is not None:
        return ModelSource(chunked.names[0], chunked.source_name)
    if path:
        local = Path(path).parent if Path(path).name == "config.json" else Path(path)
        # Named as compress.sources.resolve names it: a file by its stem, a folder by its resolved name.
        return ModelSource(str(local), local.stem if local.suffix == ".gguf" else local.resolve().name)
    folder = f"{DOWNLOAD_DIR}/{paths.safe_name(name)}"
    hf_id = planned.get("hf_id") or (name if planned.get("origin") == "hub" else None)
    download = f"hf download {hf_id} --local-dir {folder}" if hf_id else None
    return ModelSource(folder, paths.safe_name(name), download)


def artifact_dir(source_name: str, variant: str) -> str:
    """The folder ``compress apply`` writes a variant to by default (:func:`compress.paths.artifact_dir`)."""
    return paths.artifact_dir(source_name, variant).as_posix()


def artifact_name(source_name: str, candidate: dict[str, Any]) -> str:
    """Where `compress apply` writes this candidate (:func:`artifact_dir`); for GGUF the file
    inside, which apply names ``<model>.<TYPE>.gguf``."""
    folder = artifact_dir(source_name, candidate["variant"])
    return engines.engine(candidate["runtime"]).artifact_file(folder, source_name, candidate)


def apply_command(source: ModelSource, candidate: dict[str, Any]) -> str:
    """The ``compress apply`` line that writes ``candidate`` where the serving command looks for it."""
    return (f"compress apply --model {shlex.quote(source.model_arg)} --method {candidate['variant']} "
            f"--out-dir {shlex.quote(artifact_dir(source.name, candidate['variant']))}")


def serving_command(source_name: str, candidate: dict[str, Any], context: int, batch: int = 1, gpus: int = 1,
                    on_gpu: bool = True) -> str | None:
    """The shell line that serves ``candidate`` (of the model apply names ``source_name``) at
    ``context`` tokens for ``batch`` sequences."""
    artifact = shlex.quote(artifact_name(source_name, candidate))
    return engines.engine(candidate["runtime"]).serve_command(artifact, candidate, context, batch, gpus, on_gpu)


def wrapped(command: str, width: int = 78) -> str:
    """``command`` folded into shell continuation lines of at most ``width`` characters where
    it can be (an option stays with its value), for an 80-column review."""
    groups: list[str] = []
    for token in command.split(" "):
        if token.startswith("-") or not groups or len(groups) < 2:
            groups.append(token)
        else:
            groups[-1] += f" {token}"
    lines = [groups[0]]
    for group in groups[1:]:
        if len(lines[-1]) + 1 + len(group) + 2 <= width:
            lines[-1] += f" {group}"
        else:
            lines.append(f"    {group}")
    return " \\\n".join(lines)
