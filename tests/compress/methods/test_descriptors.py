"""Every method descriptor answers what the rest of the system asks of it, consistently."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from compress import methods, variants
from compress.commands.applying import _with_overrides
from compress.errors import UnsupportedError, UserInputError
from compress.methods import groups

PROFILES = Path(__file__).resolve().parents[3] / "profiles"


@pytest.mark.parametrize("name", sorted(methods.METHODS))
def test_each_descriptor_is_complete_and_consistent(name):
    d = methods.descriptor(name)
    assert d.name == name
    module, _, function = d.apply.partition(":")
    assert importlib.util.find_spec(module) is not None and function
    kernels = tomllib.loads((PROFILES / "kernels.toml").read_text())
    assert set(d.kernels) <= set(kernels), f"{name} names kernels missing from profiles/kernels.toml"
    for kind, proposed in d.candidates.items():
        for candidate in proposed:
            step = variants.parse_step(candidate)
            assert step.method == name and variants.step_name(step) == candidate
    for alias in d.aliases:
        assert variants.parse(alias).method == name


@pytest.mark.parametrize("name, config", [
    ("nf4-nodq", {"quant_type": "nf4", "double_quant": False}),
    ("gptq-4-g128-nosym-damp0.05", {"bits": 4, "group_size": 128, "desc_act": False, "sym": False,
                                   "damp_percent": 0.05}),
    ("awq-4-g64-nozp", {"bits": 4, "group_size": 64, "zero_point": False}),
    ("q4_k_m-imatrix", {"qtype": "Q4_K_M", "imatrix": True}),
    ("distill-20-steps500-lr0.0002-t1-a0.7", {"student_layers": 20, "steps": 500, "lr": 0.0002,
                                             "temperature": 1.0, "alpha": 0.7}),
])
def test_settings_off_their_default_are_kept_in_the_name(name, config):
    variant = variants.parse(name)
    assert variant.name == name
    assert variant.steps[0].config == config


@pytest.mark.parametrize("method, overrides, name", [
    ("nf4", {"double_quant": False}, "nf4-nodq"),
    ("nf4", {"double_quant": True}, "nf4"),
    ("gptq-4", {"sym": False, "group_size": 64}, "gptq-4-g64-nosym"),
    ("q4_k_m", {"imatrix": True}, "q4_k_m-imatrix"),
    ("wanda-50", {"sparsity": 0.25}, "wanda-25"),
])
def test_cli_options_rename_the_variant_losslessly(method, overrides, name):
    variant = _with_overrides(variants.parse(method), overrides)
    assert variant.name == name
    assert variants.parse(variant.name).steps == variant.steps


def test_an_option_of_another_method_is_refused():
    with pytest.raises(UserInputError, match="bnb takes the settings .*got bits"):
        _with_overrides(variants.parse("nf4"), {"bits": 4})
    with pytest.raises(UserInputError, match="GPTQ takes bits 2, 3, 4, 8, got 5"):
        _with_overrides(variants.parse("gptq-4"), {"bits": 5})
    with pytest.raises(UnsupportedError, match="not int8"):
        _with_overrides(variants.parse("int8"), {"double_quant": True})


def test_configs_round_trip_through_dicts():
    for name in ("fp16", "nf4-nodq", "gptq-3-g64-act", "awq-4-g128", "gguf-f16", "sparsegpt-2:4", "layerdrop-3",
                 "distill-2-steps4", "onnx-int8"):
        step = variants.parse_step(name)
        config = step.settings
        assert type(config).from_dict(config.to_dict()) == config
        assert config.to_dict() == step.config


def test_unknown_method_suggests_close_names():
    with pytest.raises(UserInputError, match="did you mean 'gptq'"):
        methods.descriptor("gtpq")


def test_group_size_rule():
    # SmolLM2-135M: hidden 576 = 2^6 * 9, so 64 divides it and 128 does not (its config.json).
    smollm = groups.input_widths(hidden=576, heads=9, head_dim=64, intermediate=1536)
    assert groups.default_group_size(smollm) == 64
    assert groups.dividing_group_sizes(smollm) == [32, 64]
    # Llama-2-7B: 4096 and 11008 = 2^8 * 43 take every usual size up to 256.
    llama = groups.input_widths(hidden=4096, heads=32, head_dim=128, intermediate=11008)
    assert groups.default_group_size(llama) == 128
    assert groups.default_group_size({"hidden_size": 100}) == -1
    with pytest.raises(UnsupportedError, match=r"group size 128 does not divide .*hidden_size 576.*use --group-size 32 or 64"):
        groups.check_group_size(128, smollm, "GPTQ")
    groups.check_group_size(-1, smollm, "GPTQ")
    # The o_proj input (heads * head_dim) counts even where it differs from hidden.
    widths = groups.config_input_widths({"hidden_size": 256, "num_attention_heads": 3, "head_dim": 96,
                                         "intermediate_size": 512})
    assert widths == {"hidden_size": 256, "num_heads*head_dim": 288, "intermediate_size": 512}
    assert groups.default_group_size(widths) == 32


def test_descriptors_import_no_torch():
    code = ("import sys; from compress import methods, variants; "
            "[d.name for d in methods.descriptors()]; variants.parse('wanda-50+gptq-4'); "
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).resolve().parents[3])
    assert result.stdout.strip() == "False"


def test_gguf_block_layouts_are_the_gguf_packages():
    """profiles/formats.toml sizes GGML blocks; the pinned gguf package (llama.cpp's own
    gguf-py, GGML_QUANT_SIZES) is the reference they must match."""
    import gguf

    blocks = tomllib.loads((PROFILES / "formats.toml").read_text())["gguf_block"]
    for name, (block_bytes, block_weights) in blocks.items():
        assert gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[name]] == (block_weights, block_bytes), name
