"""Shared test settings."""
import pytest

from utils.threads import single_thread


@pytest.fixture(autouse=True, scope="session")
def single_torch_thread():
    """The tests' models are tiny: one thread is fastest, and never stalls on a busy 2-core machine."""
    with single_thread():
        yield
