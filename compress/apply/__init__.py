"""Apply a compression variant to a model and write an artifact its runtime loads.

The framework here owns what every method shares: resolving the source, seeding,
calibration text, running the steps of a variant in order (``wanda-50+gptq-4``),
timing and peak memory, writing into a temporary folder renamed only when
complete, and the manifest. Each method is a module with one function,
``apply(job: Job) -> dict``, named by a lazy ``"module:function"`` string in the
method's descriptor (:attr:`compress.methods.base.Method.apply`).
"""

from __future__ import annotations

import hashlib
import json
import random
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from compress import engines, variants
from compress.errors import UserInputError
from compress.fsutil import ARTIFACT_SCHEMA, atomic_dir, check_output_dir, dir_size_bytes
from compress.registry import lookup
from compress.sources import Source

MANIFEST = "manifest.json"
MANIFEST_SCHEMA = ARTIFACT_SCHEMA


@dataclass(frozen=True)
class Options:
    """Settings shared by every method; method settings travel in the variant's config."""

    device: str = "auto"
    text: str | None = None  # calibration text: None/'default', a file, or 'wikitext-2'
    calib_samples: int = 64
    calib_seq_len: int = 512
    seed: int = 0
    force: bool = False
    trust_remote_code: bool = False  # run a source folder's own code (the user's --trust-remote-code)

    def __post_init__(self) -> None:
        if self.calib_samples < 1:
            raise UserInputError(f"--calib-samples must be at least 1, got {self.calib_samples}")
        if self.calib_seq_len < 8:
            raise UserInputError(f"--calib-seq-len must be at least 8 tokens, got {self.calib_seq_len}")
        # numpy's seed is an unsigned 32-bit number: anything else fails deep inside the first step.
        if not 0 <= self.seed < 2**32:
            raise UserInputError(f"--seed must be a whole number from 0 to {2**32 - 1:,}, got {self.seed}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Job:
    """One step's work: what a method function receives."""

    source: Source  # the step's input model
    config: dict[str, Any]  # the step's configuration (variant config plus overrides)
    out_dir: Path  # the temporary folder to write the artifact into
    device: str  # resolved: 'cpu' or 'cuda[:N]'
    options: Options
    log: Callable[[str], None] = print

    def hf_dir(self) -> Path:
        """The input as a Hugging Face folder (a GGUF source is dequantized once and cached)."""
        from compress.loading import hf_checkpoint

        return hf_checkpoint(self.source)

    def calibration_text(self) -> tuple[str, str]:
        from compress.corpus import load_text

        return load_text(self.options.text, split="calibration")

    def calibration_windows(self, tokenizer: Any) -> list[list[int]]:
        from compress.corpus import calibration_windows

        _, text = self.calibration_text()
        return calibration_windows(tokenizer, text, self.options.calib_samples, self.options.calib_seq_len,
                                   seed=self.options.seed)

    def track(self, items: Iterable[Any], description: str, total: int | None = None) -> Iterator[Any]:
        """A progress bar on stderr for a long step (none with --quiet or when stderr is not a terminal)."""
        from compress.progress import enabled, new_bar

        if not enabled():
            yield from items
            return
        with new_bar() as bar:
            yield from bar.track(items, total=total, description=description)


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def artifact_key(source: Source, variant: variants.Variant, options: Options, device: str) -> str:
    """A hash of everything that decides an artifact, to find one built before from the same inputs.

    ``device`` is the resolved device (``cpu``, ``cuda``, ``cuda:1``); its type counts, since
    methods pick different defaults on the CPU and on CUDA (bitsandbytes' compute dtype,
    GPTQModel's kernels), while the index of a CUDA device does not.
    """
    decided_by = {"source": source.fingerprint(), "variant": variant.to_dict(), "text": options.text,
                  "calib_samples": options.calib_samples, "calib_seq_len": options.calib_seq_len,
                  "seed": options.seed, "device": device.split(":")[0]}
    if source.kind == "gguf":
        from compress.loading import DEQUANTIZED_VERSION

        # Methods start from the dequantized copy: its tokenizer picks the calibration tokens
        # and is what a GGUF artifact's vocabulary is written from.
        decided_by["dequantized"] = DEQUANTIZED_VERSION
    return hashlib.sha256(json.dumps(decided_by, sort_keys=True).encode()).hexdigest()[:16]


def read_manifest(path: Path) -> dict[str, Any]:
    file = Path(path) / MANIFEST
    if not file.is_file():
        raise UserInputError(f"{path} has no {MANIFEST}: expected a folder written by `compress apply`")
    return json.loads(file.read_text())


def drop_code_files(folder: Path) -> None:
    """Remove Python files from an artifact: a source's own code travels only with --trust-remote-code."""
    for file in Path(folder).rglob("*.py"):
        file.unlink()


def run(source: Source, variant: variants.Variant, out: Path, options: Options,
        log: Callable[[str], None] = print) -> dict[str, Any]:
    """Apply every step of ``variant`` to ``source`` and write the artifact to ``out``.

    Returns the manifest, which is also written to ``out/manifest.json``.
    """
    from compress.loading import cached_hf_checkpoint, pick_device, remote_code
    from compress.peakmem import PeakMemory
    from compress.provenance import device_name, git_sha, library_versions

    planned_only = [step for step in variant.steps if getattr(step.descriptor, "planned_only", False)]
    if planned_only:
        raise UserInputError(f"{variant.name} is planned only: `compress plan` sizes it for the GPUs that run it, "
                             "but `compress apply` cannot write it yet; use another variant (e.g. q4_k_m or "
                             "gptq-4-g128) or an external tool such as llm-compressor")
    functions = [lookup({step.method: step.descriptor.apply}, step.method, "method") for step in variant.steps]
    check_output_dir(Path(out), options.force, source=source.path)  # before minutes of work, not after
    device = pick_device(options.device)
    timings: dict[str, float] = {}
    steps_info = []
    started = time.perf_counter()
    with PeakMemory(device) as peak, atomic_dir(Path(out), force=options.force) as tmp, \
            tempfile.TemporaryDirectory(prefix="compress-steps-") as scratch, remote_code(options.trust_remote_code):
        step_source = source
        for index, (step, function) in enumerate(zip(variant.steps, functions)):
            last = index == len(variant.steps) - 1
            step_out = tmp if last else Path(scratch) / f"step{index}"
            step_out.mkdir(parents=True, exist_ok=True)
            config = dict(step.config)
            seed_everything(options.seed)
            log(f"[{index + 1}/{len(variant.steps)}] {variants.step_name(step)} on {step_source.name} ({device})")
            t0 = time.perf_counter()
            info = function(Job(step_source, config, step_out, device, options, log)) or {}
            timings[variants.step_name(step)] = round(time.perf_counter() - t0, 3)
            steps_info.append({"method": step.method, "config": config, **info})
            step_source = Source("hf" if info.get("format", "hf") == "hf" else info["format"], step_out,
                                 f"{step_source.name}+{variants.step_name(step)}")
        if not options.trust_remote_code:
            drop_code_files(tmp)
        final = steps_info[-1]
        manifest = {
            "schema": MANIFEST_SCHEMA,
            "variant": variant.name,
            "steps": steps_info,
            "format": final.get("format", "hf"),
            "runtime": final.get("runtime", engines.DEFAULT),
            "file": final.get("file"),
            "source": source.to_dict(),
            "source_size_bytes": dir_size_bytes(source.path),
            # A GGUF source is compressed already; methods start from its dequantized copy.
            "input_size_bytes": dir_size_bytes(hf_folder) if (hf_folder := cached_hf_checkpoint(source)) else None,
            "size_bytes": dir_size_bytes(tmp),
            "options": {k: v for k, v in options.to_dict().items() if k != "force"},
            "device": device,
            "device_name": device_name(device),
            "libraries": library_versions(),
            "git_sha": git_sha(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        manifest["timings_s"] = {**timings, "total": round(time.perf_counter() - started, 3)}
        manifest["peak_memory_bytes"] = peak.peak_so_far()
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return manifest
