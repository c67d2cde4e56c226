"""Variant names parse to steps and back, and bad names fail with one line."""

import pytest

from compress import variants
from compress.errors import UserInputError


@pytest.mark.parametrize("name", [
    "fp32", "fp16", "bf16", "int8", "nf4", "fp4", "gptq-4-g128", "gptq-3-g64-act", "gptq-8-g-1", "awq-4-g128",
    "q4_k_m", "q8_0", "gguf-f16", "gguf-f32", "wanda-50", "magnitude-2:4", "sparsegpt-37.5", "layerdrop-6",
    "distill-20", "onnx-int8", "wanda-50+gptq-4-g128",
])
def test_canonical_names_round_trip(name):
    assert variants.parse(name).name == name


@pytest.mark.parametrize("alias, name", [
    ("gptq", "gptq-4-g128"), ("gptq-4", "gptq-4-g128"), ("awq", "awq-4-g128"), ("gguf", "q4_k_m"),
    ("Q4_K_M", "q4_k_m"), ("bnb", "nf4"), ("2:4", "wanda-2:4"), ("onnx", "onnx-int8"), ("wanda", "wanda-50"),
])
def test_aliases_resolve_to_canonical_names(alias, name):
    assert variants.parse(alias).name == name


def test_steps_carry_method_and_config():
    variant = variants.parse("sparsegpt-2:4+gptq-3-g64-act")
    assert [s.method for s in variant.steps] == ["prune", "gptq"]
    assert variant.steps[0].config == {"algorithm": "sparsegpt", "sparsity": 0.5, "pattern": "2:4"}
    assert variant.steps[1].config == {"bits": 3, "group_size": 64, "desc_act": True}
    assert variant.method == "gptq"


@pytest.mark.parametrize("name, why", [
    ("gptq-5", "GPTQ takes bits 2, 3, 4, 8, got 5"),
    ("awq-8", "AWQ takes bits 4"),
    ("wanda-100", "between 0 and 100"),
    ("layerdrop-0", "positive layer count"),
    ("q4_k_m+wanda-50", "only pruning, layer dropping or distillation can come before"),
    ("gptq-4+", "empty step"),
    ("q9_z", "not a known variant name"),
])
def test_bad_names_say_why(name, why):
    with pytest.raises(UserInputError, match=why):
        variants.parse(name)


def test_lists_split_on_commas():
    assert [v.name for v in variants.parse_list("fp32, nf4,q8_0")] == ["fp32", "nf4", "q8_0"]
