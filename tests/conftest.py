"""Shared test settings."""
import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def single_torch_thread():
    """The tests' models are tiny: one thread is fastest, and never stalls on a busy 2-core machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
