"""Fixtures shared by the method tests."""

import pytest


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread: on a shared 2-core machine, OpenMP threads that spin-wait for a
    descheduled partner make the small per-column ops of pruning and training up to 40× slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
