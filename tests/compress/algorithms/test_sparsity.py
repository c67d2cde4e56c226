"""Pruning math on nn.Linear(8, 6)-sized weights: exact fractions, n:m patterns, and
that the activation-aware methods use the activations."""

import pytest
import torch

from compress.algorithms import sparsity as sp
from compress.errors import UserInputError


@pytest.fixture
def weight() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.nn.Linear(8, 6).weight.detach().clone()


@pytest.fixture
def inputs() -> torch.Tensor:
    """Correlated calibration inputs [256 tokens, 8 features] with uneven scales, like real activations."""
    g = torch.Generator().manual_seed(1)
    base = torch.randn(256, 3, generator=g)
    mix = torch.randn(3, 8, generator=g)
    scale = torch.tensor([4.0, 1.0, 0.5, 2.0, 1.0, 0.2, 3.0, 1.0])
    return (base @ mix + 0.1 * torch.randn(256, 8, generator=g)) * scale


def zeros_per_group(w: torch.Tensor, m: int = 4) -> torch.Tensor:
    return (w.reshape(w.shape[0], -1, m) == 0).sum(dim=-1)


@pytest.mark.parametrize("fraction, expected_zeros", [(0.5, 24), (0.3, 14), (0.9, 43)])  # floor(48 · fraction)
def test_magnitude_prunes_an_exact_count_of_the_smallest(weight, fraction, expected_zeros):
    keep = sp.magnitude_mask(weight, fraction)
    assert int((~keep).sum()) == expected_zeros
    assert weight[keep].abs().min() >= weight[~keep].abs().max()


def test_ties_do_not_change_the_count():
    keep = sp.magnitude_mask(torch.ones(6, 8), 0.5)
    assert int((~keep).sum()) == 24


@pytest.mark.parametrize("method", ["magnitude", "wanda", "sparsegpt"])
def test_2_4_pattern_holds_in_every_group_of_four(weight, inputs, method):
    if method == "magnitude":
        pruned = weight * sp.magnitude_mask(weight, pattern="2:4")
    elif method == "wanda":
        pruned = weight * sp.wanda_mask(weight, sp.input_sq_norms(inputs), pattern="2:4")
    else:
        pruned = sp.sparsegpt(weight, sp.hessian(inputs), pattern="2:4")
    assert (zeros_per_group(pruned) == 2).all()
    assert sp.sparsity_of(pruned) == 0.5


def test_wanda_compares_within_each_output_row(weight, inputs):
    keep = sp.wanda_mask(weight, sp.input_sq_norms(inputs), 0.5)
    assert ((~keep).sum(dim=1) == 4).all()


def test_wanda_differs_from_magnitude_when_activations_are_skewed(weight):
    # One input feature 100× larger than the rest: Wanda keeps its weights whatever their size.
    x = torch.randn(64, 8, generator=torch.Generator().manual_seed(2))
    x[:, 0] *= 100
    weight[:, 0] = 1e-2  # the smallest weights in every row (Linear(8, 6) init is ±0.35), so magnitude prunes them
    wanda = sp.wanda_mask(weight, sp.input_sq_norms(x), 0.5)
    magnitude = sp.magnitude_mask(weight, 0.5)
    assert not torch.equal(wanda, magnitude)
    assert wanda[:, 0].all() and not magnitude[:, 0].any()


def test_wanda_scores_are_weight_times_input_norm(weight, inputs):
    expected = weight.abs() * inputs.norm(dim=0)
    torch.testing.assert_close(sp.wanda_scores(weight, sp.input_sq_norms(inputs)), expected)


def test_statistics_add_across_batches(inputs):
    torch.testing.assert_close(sp.hessian(inputs[:100]) + sp.hessian(inputs[100:]), sp.hessian(inputs))
    torch.testing.assert_close(sp.input_sq_norms(inputs[:100]) + sp.input_sq_norms(inputs[100:]),
                               sp.input_sq_norms(inputs))


@pytest.mark.parametrize("pattern", ["unstructured", "2:4"])
def test_sparsegpt_reconstructs_calibration_outputs_better_than_magnitude(weight, inputs, pattern):
    magnitude = weight * sp.magnitude_mask(weight, 0.5, pattern)
    sparsegpt = sp.sparsegpt(weight, sp.hessian(inputs), 0.5, pattern)
    assert sp.sparsity_of(sparsegpt) == sp.sparsity_of(magnitude) == 0.5
    # The OBS update moves the surviving weights to absorb the error; magnitude only zeros.
    assert sp.reconstruction_error(weight, sparsegpt, inputs) < 0.7 * sp.reconstruction_error(weight, magnitude, inputs)


@pytest.mark.parametrize("fraction, block_size", [(0.3, 4), (0.5, 4), (0.7, 128)])
def test_sparsegpt_sparsity_is_exact_across_blocks(weight, inputs, fraction, block_size):
    pruned = sp.sparsegpt(weight, sp.hessian(inputs), fraction, block_size=block_size)
    assert int((pruned == 0).sum()) == int(48 * fraction)


def test_sparsegpt_survives_inputs_that_are_always_zero(weight, inputs):
    inputs[:, 3] = 0
    pruned = sp.sparsegpt(weight, sp.hessian(inputs), 0.5)
    assert torch.isfinite(pruned).all()
    assert (pruned[:, 3] == 0).all()  # a dead input's weights are the free ones to prune


def test_sparsegpt_keeps_the_weight_dtype(weight, inputs):
    assert sp.sparsegpt(weight.to(torch.bfloat16), sp.hessian(inputs), 0.5).dtype == torch.bfloat16


@pytest.mark.parametrize("fraction", [0, 1, 1.5, -0.1])
def test_sparsity_outside_0_1_is_refused(weight, fraction):
    with pytest.raises(UserInputError, match="strictly between 0 and 1"):
        sp.magnitude_mask(weight, fraction)


def test_n_m_needs_a_width_divisible_by_m():
    with pytest.raises(UserInputError, match="multiple of 4"):
        sp.magnitude_mask(torch.randn(6, 6), pattern="2:4")


@pytest.mark.parametrize("pattern, expected", [("unstructured", None), ("2:4", (2, 4)), ("1:8", (1, 8))])
def test_parse_pattern(pattern, expected):
    assert sp.parse_pattern(pattern) == expected


@pytest.mark.parametrize("pattern", ["4:2", "2-4", "dense"])
def test_bad_patterns_are_refused(pattern):
    with pytest.raises(UserInputError):
        sp.parse_pattern(pattern)
