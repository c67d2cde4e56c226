"""What every method descriptor declares, and the config plumbing they share.

A method is one class (a :class:`Method` subclass in ``compress/methods/<name>.py``)
that answers everything the rest of the system asks about it:

- ``Config``: a frozen dataclass of its settings, checked in ``__post_init__``, with a
  dict round-trip (:meth:`MethodConfig.to_dict` / :meth:`MethodConfig.from_dict`);
- its grammar: :meth:`Method.parse` turns a step string into a config, :meth:`Method.name`
  writes the canonical string back; settings off their default become suffixes
  (``nf4-nodq``), so a name keeps every setting that changes the artifact;
- its storage layout for the planner: :meth:`Method.tensor_bytes`, from ``profiles/formats.toml``;
- its kernels: :attr:`Method.kernels`, rows of ``profiles/kernels.toml``, and the key of its
  row in ``runtimes.toml``'s ``engines`` tables (:meth:`Method.runtime_key`);
- where its expected quality comes from: :meth:`Method.quality_source`;
- how it is applied: :attr:`Method.apply`, a lazy ``"module:function"`` string.

Nothing here imports torch: the planner reads descriptors.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from compress.errors import UserInputError

if TYPE_CHECKING:
    from compress.model.tensors import Tensor
    from compress.model.spec import ModelSpec


def bad_variant(text: str, why: str) -> UserInputError:
    """The one error every grammar raises for a name it recognizes but cannot accept."""
    return UserInputError(f"invalid variant {text!r}: {why}; see `compress apply --help` for the variant names")


@dataclass(frozen=True)
class MethodConfig:
    """Base of every method's settings. Fields left ``None`` mean "the method's default at
    apply time" and are left out of :meth:`to_dict`, so a config written into a manifest
    or a result record holds what was asked for, no more."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if getattr(self, f.name) is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any], method: str = "") -> MethodConfig:
        """The config of ``data``; a key the method does not take is an error naming the valid ones."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserInputError(f"{method or cls.__name__} takes the settings {', '.join(sorted(known))}; "
                                 f"got {', '.join(unknown)}: drop the options that do not apply to it")
        return cls(**data)


@dataclass(frozen=True)
class Suffix:
    """A setting written as a name suffix: ``-<tag><value>``, or ``-<tag>`` / ``-no<tag>`` for a flag.

    ``default`` is the value the name leaves out (the setting as the bare name applies it).
    """

    field: str
    tag: str
    kind: type = bool
    default: Any = None

    def pattern(self) -> re.Pattern[str]:
        if self.kind is bool:
            return re.compile(rf"-(no)?{self.tag}$")
        value = r"\d+" if self.kind is int else r"\d+(?:\.\d+)?(?:e-?\d+)?" if self.kind is float else r"[a-z0-9]+"
        return re.compile(rf"-{self.tag}({value})$")

    def read(self, match: re.Match[str]) -> Any:
        return (match.group(1) is None) if self.kind is bool else self.kind(match.group(1))

    def write(self, value: Any) -> str:
        if value is None or value == self.default:
            return ""
        if self.kind is bool:
            return f"-{self.tag}" if value else f"-no{self.tag}"
        return f"-{self.tag}{value:g}" if self.kind is float else f"-{self.tag}{value}"


def split_suffixes(text: str, suffixes: tuple[Suffix, ...]) -> tuple[str, dict[str, Any]]:
    """Strip the setting suffixes off the end of ``text``: ``(core name, settings)``."""
    found: dict[str, Any] = {}
    progress = True
    while progress:
        progress = False
        for suffix in suffixes:
            if suffix.field in found:
                continue
            if m := suffix.pattern().search(text):
                found[suffix.field] = suffix.read(m)
                text = text[:m.start()]
                progress = True
    return text, found


def join_suffixes(config: MethodConfig, suffixes: tuple[Suffix, ...]) -> str:
    return "".join(s.write(getattr(config, s.field)) for s in suffixes)


@dataclass(frozen=True)
class QualitySource:
    """Where the planner finds the expected quality change of one step.

    ``kind``: ``reference`` (no change), ``table`` (``keys`` into ``profiles/quality.toml``,
    tried in order), ``layerdrop`` (the layer-drop curves), ``none`` (nothing published;
    ``note`` says why). ``gguf_ftype``: the llama.cpp file type whose per-tensor mix the
    published figures assume, for formats whose tensors may be stored otherwise on this model.
    """

    kind: str
    keys: tuple[str, ...] = ()
    note: str = ""
    gguf_ftype: str = ""


class Method:
    """One compression method; subclasses override what differs from these defaults."""

    #: The registry name (``Step.method``).
    name: ClassVar[str] = ""
    #: The settings dataclass.
    Config: ClassVar[type[MethodConfig]] = MethodConfig
    #: Bare names and what they stand for (``"gptq": "gptq-4-g128"``).
    aliases: ClassVar[dict[str, str]] = {}
    #: Settings written as name suffixes.
    suffixes: ClassVar[tuple[Suffix, ...]] = ()
    #: ``"module:function"`` taking a :class:`compress.apply.Job`; imported only when applied.
    apply: ClassVar[str] = ""
    #: Rows of ``profiles/kernels.toml`` this method's artifacts can run on, fastest first; the
    #: planner takes, per engine, the first one the device runs (compress.planner.predict).
    kernels: ClassVar[tuple[str, ...]] = ()
    #: True for steps that may come before another step (pruning, layer dropping, distillation).
    may_precede: ClassVar[bool] = False
    #: False when the step changes the architecture but not the storage format (stored fp16).
    stores_weights: ClassVar[bool] = True
    #: True when the result needs a training run before it can be served (distillation).
    needs_training: ClassVar[bool] = False
    #: Variant names the planner proposes by default, by device kind (``gpu``, ``cpu``), in
    #: the order they are listed; ``-g128`` is replaced by the model's group size.
    candidates: ClassVar[dict[str, tuple[str, ...]]] = {}
    #: One line of grammar for the docs and ``--help``.
    grammar: ClassVar[str] = ""

    # --- grammar ---------------------------------------------------------------------------

    @classmethod
    def parse(cls, text: str) -> MethodConfig | None:
        """The config named by ``text`` (lower case, aliases resolved), or None if not this method's."""
        core, settings = split_suffixes(text, cls.suffixes)
        config = cls.parse_core(core, text)
        if config is None:
            return None
        return dataclasses.replace(config, **settings) if settings else config

    @classmethod
    def parse_core(cls, core: str, text: str) -> MethodConfig | None:
        raise NotImplementedError

    @classmethod
    def step_name(cls, config: MethodConfig) -> str:
        """The canonical string of ``config``: :meth:`parse` of it gives ``config`` back."""
        return cls.core_name(config) + join_suffixes(config, cls.suffixes)

    @classmethod
    def core_name(cls, config: MethodConfig) -> str:
        raise NotImplementedError

    @classmethod
    def config(cls, data: dict[str, Any]) -> MethodConfig:
        return cls.Config.from_dict(data, cls.name)

    # --- planner ---------------------------------------------------------------------------

    @classmethod
    def tensor_bytes(cls, t: Tensor, config: MethodConfig, spec: ModelSpec, fmt: dict[str, Any], *,
                     sparse_storage: bool = False) -> int:
        """Bytes of one weight tensor stored by this method (default: linear layers and the rest fp16)."""
        return t.numel * fmt["dense_bytes"]["fp16"]

    @classmethod
    def extra_file_bytes(cls, config: MethodConfig, spec: ModelSpec) -> int:
        """Bytes the artifact holds besides its tensors (GGUF metadata)."""
        return 0

    @classmethod
    def weight_bits(cls, config: MethodConfig) -> int | None:
        """Stored width of the quantized weights (the planner matches it against a kernel's
        ``weight_bits``), or None for formats without one width."""
        return None

    @classmethod
    def model_spec(cls, config: MethodConfig, spec: ModelSpec) -> ModelSpec:
        """The architecture after this step (layer dropping and distillation change it)."""
        return spec

    @classmethod
    def runtime_key(cls, config: MethodConfig) -> str:
        """The key of this method in ``runtimes.toml``'s ``[engines.gpu]`` / ``[engines.cpu]`` tables."""
        return cls.name

    @classmethod
    def quality_source(cls, config: MethodConfig) -> QualitySource:
        return QualitySource("table", (cls.step_name(config),))


def group_bytes(t: Tensor, bits: int, group_size: int, layout: dict[str, Any]) -> int:
    """GPTQ/AWQ: packed ints + per-group fp16 scale and packed zero + optional int32 g_idx.

    ``group_size`` -1 is one group per row."""
    groups = math.ceil(t.cols / group_size) if group_size > 0 else 1
    qweight = math.ceil(t.cols * bits / 32) * 4 * t.rows
    scales = groups * t.rows * layout["scale_bytes"]
    zeros = math.ceil(groups * t.rows * bits * layout["zero_bits_per_bit"] / 8)
    g_idx = t.cols * layout["g_idx_bytes"]
    return (qweight + scales + zeros + g_idx) * t.count
