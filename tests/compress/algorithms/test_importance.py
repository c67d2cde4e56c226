"""Block Influence and the choice of layers to drop, on hand-made hidden states."""

import pytest
import torch

from compress.algorithms.importance import block_influence, cosine_distance_sum, layers_to_drop
from compress.errors import UserInputError


def test_block_influence_of_identity_is_zero():
    x = torch.randn(2, 5, 16)
    assert block_influence(x, x.clone()) == pytest.approx(0, abs=1e-6)


def test_block_influence_grows_as_the_layer_turns_the_stream():
    x = torch.tensor([[1.0, 0.0]])
    assert block_influence(x, torch.tensor([[0.0, 1.0]])) == pytest.approx(1)  # orthogonal: cos 0
    assert block_influence(x, -x) == pytest.approx(2)  # reversed: cos −1
    assert block_influence(x, 5 * x) == pytest.approx(0)  # scaling alone does not count


def test_sums_combine_batches_exactly():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(3, 7, 8, generator=g), torch.randn(3, 7, 8, generator=g)
    first, n1 = cosine_distance_sum(a[:1], b[:1])
    rest, n2 = cosine_distance_sum(a[1:], b[1:])
    assert n1 + n2 == 21
    assert (first + rest) / (n1 + n2) == pytest.approx(block_influence(a, b), rel=1e-5)


def test_the_least_influential_layers_are_dropped():
    assert layers_to_drop([0.5, 0.1, 0.3, 0.05, 0.4], 2) == [1, 3]


def test_ties_drop_the_later_layer():
    assert layers_to_drop([0.2, 0.1, 0.1, 0.3], 1) == [2]


@pytest.mark.parametrize("n_drop", [0, 4, 5])
def test_dropping_none_or_every_layer_is_refused(n_drop):
    with pytest.raises(UserInputError, match="at least one must stay"):
        layers_to_drop([0.1, 0.2, 0.3, 0.4], n_drop)
