"""Thread control for tiny models: one thread is fastest for them, and never stalls waiting on a
busy machine's other cores."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator



@contextmanager
def single_thread() -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(1)``; restore the previous count afterwards."""
    import torch
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
