"""A plan as read back from its JSON (``compress plan --format json``): typed, checked once.

``apply --plan`` and ``bench --plan`` read plans through :func:`read_plan` /
:meth:`PlanDocument.from_dict` instead of walking nested dicts by hand. Keys this module
does not know (other versions add keys to candidates) are kept in ``extra`` and written
back by ``to_dict``, so a plan round-trips.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compress.errors import UserInputError

SCHEMA = "compress.plan/1"

#: Reason codes that mean a candidate may not run as predicted on the device: no kernel, a
#: slower fallback kernel, an engine that does not serve the format, emulated arithmetic.
KERNEL_RISKS = frozenset({"kernel_missing", "kernel_fallback", "engine_unsupported", "dtype_emulated"})


@dataclass(frozen=True)
class Reason:
    """Why a candidate is as predicted: a stable ``code`` for programs, ``text`` for people.

    Codes: kernel_missing, kernel_fallback, engine_unsupported, dtype_emulated,
    sparse_kernels, sparsity_no_gain, no_tensor_parallel, too_big, model_changes,
    needs_training; ``note`` for reasons read from a plan written without codes.
    A plan's JSON keeps ``reasons`` (the texts) and adds ``reason_codes`` beside them.
    """

    code: str
    text: str

    @property
    def kernel_risk(self) -> bool:
        return self.code in KERNEL_RISKS


@dataclass(frozen=True)
class Prediction:
    """The planner's figures for one candidate (``predicted`` in the JSON); None where absent."""

    artifact_gib: float | None = None
    peak_memory_gib: float | None = None
    decode_tok_s: float | None = None
    ttft_ms: float | None = None
    ppl_delta_pct: float | None = None
    quality_source: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Prediction:
        return cls(**{f: data.get(f) for f in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Candidate:
    """One evaluated variant of a plan."""

    variant: str
    method: str
    fits: bool
    supported: bool = True
    rank: int | None = None
    pareto: bool = False
    reasons: tuple[str, ...] = ()
    predicted: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    _KNOWN = ("variant", "method", "fits", "supported", "rank", "pareto", "reasons", "predicted")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Candidate:
        try:
            return cls(variant=str(data["variant"]), method=str(data.get("method", "")), fits=bool(data.get("fits", True)),
                       supported=bool(data.get("supported", True)), rank=data.get("rank"),
                       pareto=bool(data.get("pareto", False)), reasons=tuple(data.get("reasons") or ()),
                       predicted=dict(data.get("predicted") or {}),
                       extra={k: v for k, v in data.items() if k not in cls._KNOWN})
        except (KeyError, TypeError, AttributeError) as err:
            raise UserInputError(f"a plan candidate lacks {err}: expected `compress plan --format json` output") from None

    def to_dict(self) -> dict[str, Any]:
        return {"variant": self.variant, "method": self.method, "fits": self.fits, "supported": self.supported,
                "rank": self.rank, "pareto": self.pareto, "reasons": list(self.reasons),
                "predicted": dict(self.predicted), **self.extra}

    @property
    def prediction(self) -> Prediction:
        return Prediction.from_dict(self.predicted)

    def typed_reasons(self) -> tuple[Reason, ...]:
        """The reasons with their codes (``note`` where the plan carries no codes)."""
        codes = list(self.extra.get("reason_codes") or ())
        codes += ["note"] * (len(self.reasons) - len(codes))
        return tuple(Reason(code, text) for code, text in zip(codes, self.reasons))

    @property
    def runs_here(self) -> bool:
        """Fits the device's memory and has a kernel on it."""
        return self.fits and self.supported


@dataclass(frozen=True)
class PlanDocument:
    """The parts of a plan that its readers use, typed; the rest kept as read."""

    candidates: tuple[Candidate, ...]
    recommended: str | None
    model: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Any, where: str = "the input") -> PlanDocument:
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            got = data.get("schema") if isinstance(data, dict) else type(data).__name__
            raise UserInputError(f"{where} is not a plan: expected schema {SCHEMA!r}, got {got!r}")
        return cls(candidates=tuple(Candidate.from_dict(c) for c in data.get("candidates") or ()),
                   recommended=data.get("recommended"), model=dict(data.get("model") or {}),
                   extra={k: v for k, v in data.items() if k not in ("candidates", "recommended", "model")})

    def to_dict(self) -> dict[str, Any]:
        return {**self.extra, "model": dict(self.model), "candidates": [c.to_dict() for c in self.candidates],
                "recommended": self.recommended}

    def ranked(self) -> list[Candidate]:
        """Candidates with a rank (those that fit), best first."""
        return sorted((c for c in self.candidates if c.rank), key=lambda c: c.rank)

    def pareto(self) -> list[Candidate]:
        """Pareto-front candidates that fit and run on the plan's device, in plan order."""
        return [c for c in self.candidates if c.pareto and c.runs_here]


def read_plan(path: Path) -> PlanDocument:
    """The plan in ``path``, or one line saying what was expected."""
    from compress.fsutil import read_json_file

    data = read_json_file(Path(path), "the output of `compress plan --format json`")
    return PlanDocument.from_dict(data, str(path))


#: Architecture numbers that tell two models apart (a plan's model against --model).
SHAPE_KEYS = ("layers", "hidden", "heads", "kv_heads", "intermediate", "vocab")


def check_plan_model(planned: dict[str, Any], given: dict[str, Any], plan_path: Any, model: str) -> None:
    """Raise one line when a plan made for ``planned`` (its ``model``) is used with the model
    ``given`` (a model spec's dict, read from ``--model``): their architectures differ."""
    differ = [k for k in SHAPE_KEYS if k in planned and given.get(k) != planned.get(k)]
    if differ:
        shape = ", ".join(f"{k} {planned.get(k)} vs {given.get(k)}" for k in differ)
        raise UserInputError(f"{plan_path} was made for {planned.get('name', '?')}, not for --model {model} "
                             f"({shape}): pass the plan's model, or make a plan for this one with "
                             f"`compress plan --model {model}`")
