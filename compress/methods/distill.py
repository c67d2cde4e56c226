"""Knowledge distillation into a shallower student (``distill-<n>[-steps<k>][-lr<f>][-t<f>][-a<f>]``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from compress.model.catalog import student_spec
from compress.methods.base import Method, MethodConfig, QualitySource, Suffix, bad_variant

_CORE = re.compile(r"^distill-(\d+)$")


@dataclass(frozen=True)
class DistillConfig(MethodConfig):
    student_layers: int = 1
    #: Training hyperparameters; None takes compress.apply.distill.DEFAULTS.
    steps: int | None = None
    lr: float | None = None
    temperature: float | None = None
    alpha: float | None = None
    #: A local student folder instead of a layer-dropped copy of the teacher. A path is
    #: not written into the variant name; the manifest's config records it.
    student: str | None = None

    def __post_init__(self) -> None:
        if self.student_layers < 1:
            raise bad_variant(f"distill-{self.student_layers}",
                              f"distill needs a positive layer count, got {self.student_layers}")


class Distill(Method):
    name = "distill"
    Config = DistillConfig
    suffixes = (Suffix("steps", "steps", int), Suffix("lr", "lr", float), Suffix("temperature", "t", float),
                Suffix("alpha", "a", float))
    apply = "compress.apply.distill:apply"
    may_precede = True
    stores_weights = False
    needs_training = True
    grammar = "distill-<n>                             distil into a student of n decoder layers"

    @classmethod
    def parse_core(cls, core: str, text: str) -> DistillConfig | None:
        m = _CORE.match(core)
        if not m:
            return None
        n = int(m.group(1))
        if n < 1:
            raise bad_variant(text, f"distill needs a positive layer count, got {n}")
        return DistillConfig(n)

    @classmethod
    def core_name(cls, config: DistillConfig) -> str:
        return f"distill-{config.student_layers}"

    @classmethod
    def model_spec(cls, config: DistillConfig, spec: Any) -> Any:
        return student_spec(spec, config.student_layers)

    @classmethod
    def quality_source(cls, config: DistillConfig) -> QualitySource:
        return QualitySource("none", note=(
            "no published perplexity for this teacher/student pair: quality is the student's, "
            "after a distillation run (compare the student's own model card scores)"))
