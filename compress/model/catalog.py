"""The catalog of known models, ``profiles/models/*.toml``: each a :class:`ModelSpec` with its
published parameter count and source; family members share a tokenizer."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from compress.model.spec import ModelSpec, with_layers
from compress.planner import profiles


def catalog() -> dict[str, ModelSpec]:
    """Every catalog model by canonical name."""
    return dict(_catalog(profiles.profiles_dir()))


@lru_cache(maxsize=4)
def _catalog(folder: Path) -> dict[str, ModelSpec]:
    table: dict[str, ModelSpec] = {}
    for _, data in profiles.load_folder("models"):
        for entry in data.get("model", []):
            spec = ModelSpec.from_dict({**entry, "origin": "catalog"})
            table[spec.name] = spec
    return table


def _key(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def find_in_catalog(name: str) -> ModelSpec | None:
    key = _key(name)
    for spec in catalog().values():
        if key == spec.name or key in (_key(a) for a in spec.aliases) or (spec.hf_id and key == _key(spec.hf_id)):
            return spec
    return None


def family_members(spec: ModelSpec) -> list[ModelSpec]:
    """Catalog models of the same family (same tokenizer), smallest first."""
    if not spec.family:
        return []
    return sorted((m for m in catalog().values() if m.family == spec.family), key=lambda m: m.params)


def student_spec(spec: ModelSpec, student_layers: int) -> ModelSpec:
    """The distillation student: the family member with that many layers, else the same width."""
    for member in family_members(spec):
        if member.layers == student_layers and member.params < spec.params:
            return member
    return with_layers(spec, student_layers, name=f"{spec.name}-student-{student_layers}l")
