"""Random-weight checkpoints have the catalog architecture's exact shapes."""

import pytest

from compress.errors import UnsupportedError
from compress.planner import load_model_spec
from compress.model.spec import param_count, with_layers
from compress.synthetic import _build, checkpoint


@pytest.mark.parametrize("name", ["smollm2-135m", "qwen2.5-0.5b"])
def test_parameter_count_matches_the_planner(tmp_path, name):
    from compress.loading import load_causal_lm

    spec = with_layers(load_model_spec(name), 2)  # two layers keep the build quick
    _build(spec, tmp_path, "float32")
    model = load_causal_lm(tmp_path)
    assert sum(p.numel() for p in model.parameters()) == param_count(spec)
    assert model.config.num_key_value_heads == spec.kv_heads


def test_byte_tokenizer_round_trips(tmp_path):
    from compress.loading import load_tokenizer

    _build(with_layers(load_model_spec("smollm2-135m"), 1), tmp_path, "float32")
    tokenizer = load_tokenizer(tmp_path)
    ids = tokenizer("naïve café", add_special_tokens=False)["input_ids"]
    assert len(ids) == len("naïve café".encode())  # one token per byte
    assert tokenizer.decode(ids) == "naïve café"


def test_mixture_of_experts_is_refused():
    with pytest.raises(UnsupportedError, match="experts"):
        checkpoint("mixtral-8x7b")
