"""Variant names: the one vocabulary shared by `plan`, `apply` and `bench`.

A variant is a compression recipe written as a short string, for example
``gptq-4-g128`` or ``q4_k_m``. Steps joined by ``+`` run in order
(``wanda-50+gptq-4``: prune to 50% sparsity, then quantize). Parsing is pure and
imports nothing heavy, so the planner can name its candidates with it.

Grammar of one step (case-insensitive)::

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
    nvfp4 | mxfp4                           4-bit floating point with block scales (planned only:
                                            `plan` sizes them on the devices that run them)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from compress.errors import UserInputError

#: llama.cpp file types the converter and quantizer accept, by their usual names.
GGUF_TYPES = (
    "F32", "F16", "BF16", "Q8_0", "Q6_K", "Q5_K_M", "Q5_K_S", "Q5_0", "Q5_1",
    "Q4_K_M", "Q4_K_S", "Q4_0", "Q4_1", "Q3_K_L", "Q3_K_M", "Q3_K_S", "Q2_K",
)
GPTQ_BITS = (2, 3, 4, 8)
AWQ_BITS = (4,)
PRUNE_METHODS = ("magnitude", "wanda", "sparsegpt")
#: Microscaling 4-bit formats: E2M1 values with a shared scale per block (block sizes in
#: profiles/formats.toml). `plan` sizes them; `apply` cannot write them yet.
MICROSCALING = ("nvfp4", "mxfp4")
PLANNED_ONLY = ("microscaling",)
#: Bare method names and what they mean.
ALIASES = {
    "baseline": "fp32", "bnb": "nf4", "gptq": "gptq-4-g128", "awq": "awq-4-g128", "gguf": "q4_k_m",
    "prune": "wanda-50", "wanda": "wanda-50", "magnitude": "magnitude-50", "sparsegpt": "sparsegpt-50",
    "onnx": "onnx-int8",
}


@dataclass(frozen=True)
class Step:
    """One compression step: a method name and its configuration."""

    method: str
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "config": dict(self.config)}


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


_GPTQ = re.compile(r"^gptq-(\d+)(?:-g(-1|\d+))?(-act)?$")
_AWQ = re.compile(r"^awq-(\d+)(?:-g(-1|\d+))?$")
_PRUNE = re.compile(r"^(magnitude|wanda|sparsegpt)-(\d+(?:\.\d+)?|2:4)$")
_COUNT = re.compile(r"^(layerdrop|distill)-(\d+)$")


def _bad(text: str, why: str) -> UserInputError:
    return UserInputError(f"invalid variant {text!r}: {why}; see `compress apply --help` for the variant names")


def parse_step(text: str) -> Step:
    """Parse one step such as ``gptq-4-g64`` into a :class:`Step`."""
    s = text.strip().lower()
    s = ALIASES.get(s, s)
    if s in ("fp32", "fp16", "bf16"):
        return Step("baseline", {"dtype": s.replace("fp", "float").replace("bf16", "bfloat16")})
    if s == "int8":
        return Step("bnb", {"quant_type": "int8"})
    if s in ("nf4", "fp4"):
        return Step("bnb", {"quant_type": s, "double_quant": True})
    if s == "onnx-int8":
        return Step("onnx", {"weight_type": "int8"})
    if s in MICROSCALING:
        return Step("microscaling", {"format": s})
    if s == "2:4":
        return Step("prune", {"algorithm": "wanda", "sparsity": 0.5, "pattern": "2:4"})
    gguf = s[5:] if s.startswith("gguf-") else s
    if gguf.upper() in GGUF_TYPES:
        return Step("gguf", {"qtype": gguf.upper()})
    if m := _GPTQ.match(s):
        bits = int(m.group(1))
        if bits not in GPTQ_BITS:
            raise _bad(text, f"GPTQ takes bits {', '.join(map(str, GPTQ_BITS))}, got {bits}")
        group = int(m.group(2)) if m.group(2) else 128
        return Step("gptq", {"bits": bits, "group_size": group, "desc_act": bool(m.group(3))})
    if m := _AWQ.match(s):
        bits = int(m.group(1))
        if bits not in AWQ_BITS:
            raise _bad(text, f"AWQ takes bits 4, got {bits}")
        group = int(m.group(2)) if m.group(2) else 128
        return Step("awq", {"bits": bits, "group_size": group, "zero_point": True})
    if m := _PRUNE.match(s):
        algorithm, amount = m.groups()
        if amount == "2:4":
            return Step("prune", {"algorithm": algorithm, "sparsity": 0.5, "pattern": "2:4"})
        pct = float(amount)
        if not 0 < pct < 100:
            raise _bad(text, f"sparsity is a percentage between 0 and 100, got {amount}")
        return Step("prune", {"algorithm": algorithm, "sparsity": pct / 100, "pattern": "unstructured"})
    if m := _COUNT.match(s):
        kind, n = m.group(1), int(m.group(2))
        if n < 1:
            raise _bad(text, f"{kind} needs a positive layer count, got {n}")
        if kind == "layerdrop":
            return Step("layerdrop", {"drop_layers": n})
        return Step("distill", {"student_layers": n})
    raise _bad(text, "not a known variant name")


def parse(text: str) -> Variant:
    """Parse a variant string, steps joined by ``+``."""
    parts = [p for p in text.split("+")]
    if not text.strip() or any(not p.strip() for p in parts):
        raise _bad(text, "empty step")
    steps = tuple(parse_step(p) for p in parts)
    for step in steps[:-1]:
        if step.method not in ("prune", "layerdrop", "distill"):
            raise _bad(text, f"only pruning, layer dropping or distillation can come before another step, got {step.method!r} first")
    return Variant(name=canonical(steps), steps=steps)


def parse_list(text: str) -> list[Variant]:
    """Parse a comma-separated list of variants."""
    return [parse(item) for item in text.split(",") if item.strip()]


def step_name(step: Step) -> str:
    """The canonical string of a step (the inverse of :func:`parse_step`)."""
    c = step.config
    if step.method == "baseline":
        return {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}[c["dtype"]]
    if step.method == "bnb":
        return c["quant_type"]
    if step.method == "onnx":
        return "onnx-int8"
    if step.method == "microscaling":
        return c["format"]
    if step.method == "gguf":
        return c["qtype"].lower() if c["qtype"].startswith("Q") else f"gguf-{c['qtype'].lower()}"
    if step.method == "gptq":
        return f"gptq-{c['bits']}-g{c['group_size']}" + ("-act" if c.get("desc_act") else "")
    if step.method == "awq":
        return f"awq-{c['bits']}-g{c['group_size']}"
    if step.method == "prune":
        amount = "2:4" if c["pattern"] == "2:4" else f"{c['sparsity'] * 100:g}"
        return f"{c['algorithm']}-{amount}"
    if step.method == "layerdrop":
        return f"layerdrop-{c['drop_layers']}"
    if step.method == "distill":
        return f"distill-{c['student_layers']}"
    raise ValueError(f"no name for method {step.method!r}")


def canonical(steps: tuple[Step, ...] | list[Step]) -> str:
    return "+".join(step_name(s) for s in steps)
