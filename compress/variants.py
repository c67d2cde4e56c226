"""Variant names: the one vocabulary shared by `plan`, `apply` and `bench`.

A variant is a compression recipe written as a short string, for example
``gptq-4-g128`` or ``q4_k_m``. Steps joined by ``+`` run in order
(``wanda-50+gptq-4``: prune to 50% sparsity, then quantize). Parsing is pure and
imports nothing heavy, so the planner can name its candidates with it.

Each method declares its own grammar in its descriptor (:mod:`compress.methods`);
``compress.methods.<name>.<Class>.grammar`` holds the line below for each::

    fp32 | fp16 | bf16                      baseline in that dtype
    int8 | nf4 | fp4                        bitsandbytes (nf4/fp4 with double quant)
    gptq-<bits>[-g<group>][-act]            GPTQ, bits in {2,3,4,8}, group 128 by default, g-1 per channel
    awq-4[-g<group>]                        AWQ 4-bit, group 128 by default
    q8_0 | q6_k | q4_k_m | ... | gguf-f16   a llama.cpp GGUF type
    magnitude-<pct> | wanda-<pct> | sparsegpt-<pct>     unstructured pruning
    magnitude-2:4 | wanda-2:4 | sparsegpt-2:4 | 2:4     semi-structured 2:4 (wanda by default)
    layerdrop-<n>                           drop the n least important decoder layers
    distill-<n>                             distil into a student of n decoder layers
    onnx-int8                               ONNX export, dynamic INT8 quantization

A setting off its default is a suffix, so a name keeps every setting that shapes the
artifact: ``nf4-nodq`` (no double quantization),
``gptq-4-g128-nosym``, ``gptq-4-g128-damp0.05``, ``awq-4-g128-nozp``, ``q4_k_m-imatrix``,
``distill-20-steps500-lr0.0002-t1-a0.7``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from compress import methods
from compress.methods.awq import BITS as AWQ_BITS
from compress.methods.base import MethodConfig, bad_variant
from compress.methods.gguf import GGUF_TYPES
from compress.methods.gptq import BITS as GPTQ_BITS
from compress.methods.prune import ALGORITHMS as PRUNE_METHODS

__all__ = ["AWQ_BITS", "GGUF_TYPES", "GPTQ_BITS", "PRUNE_METHODS", "Step", "Variant", "canonical", "parse",
           "parse_list", "parse_step", "step_name"]


@dataclass(frozen=True)
class Step:
    """One compression step: a method name and its configuration."""

    method: str
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "config": dict(self.config)}

    @property
    def descriptor(self) -> type[methods.Method]:
        return methods.descriptor(self.method)

    @property
    def settings(self) -> MethodConfig:
        """The typed config (the method's frozen dataclass) of this step."""
        return self.descriptor.config(self.config)

    @classmethod
    def of(cls, method: str, config: MethodConfig) -> Step:
        return cls(method, config.to_dict())


@dataclass(frozen=True)
class Variant:
    """A recipe of one or more steps, named by the string it was parsed from."""

    name: str
    steps: tuple[Step, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "steps": [s.to_dict() for s in self.steps]}

    @property
    def method(self) -> str:
        """The method of the last step: what the artifact's format is decided by."""
        return self.steps[-1].method


def parse_step(text: str) -> Step:
    """Parse one step such as ``gptq-4-g64`` into a :class:`Step`."""
    return Step.of(*methods.parse_step(text))


def parse(text: str) -> Variant:
    """Parse a variant string, steps joined by ``+``."""
    parts = [p for p in text.split("+")]
    if not text.strip() or any(not p.strip() for p in parts):
        raise bad_variant(text, "empty step")
    steps = tuple(parse_step(p) for p in parts)
    for step in steps[:-1]:
        if not step.descriptor.may_precede:
            raise bad_variant(text, f"only pruning, layer dropping or distillation can come before another step, got {step.method!r} first")
    return Variant(name=canonical(steps), steps=steps)


def parse_list(text: str) -> list[Variant]:
    """Parse a comma-separated list of variants."""
    return [parse(item) for item in text.split(",") if item.strip()]


def step_name(step: Step) -> str:
    """The canonical string of a step (the inverse of :func:`parse_step`)."""
    return step.descriptor.step_name(step.settings)


def canonical(steps: tuple[Step, ...] | list[Step]) -> str:
    return "+".join(step_name(s) for s in steps)
