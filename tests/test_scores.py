"""Tests of models/inference.py and the score hand-off: probabilities keep the predictor's dtype."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.stages.scorer import merge_rows
from models.inference import ScoreCache, compute_probs
from engine.scores import Scores


class Softmax(torch.nn.Module):
    def __init__(self, dtype):
        super().__init__()
        self.dtype = dtype

    def forward(self, images):
        return torch.softmax(images.flatten(1)[:, :3].to(self.dtype), dim=1)


@pytest.mark.parametrize(("dtype", "expected"), [(torch.float32, np.float32), (torch.float64, np.float64),
                                                 (torch.bfloat16, np.float64)])
def test_compute_probs_keeps_float32_and_float64(dtype, expected):
    images = torch.randn(5, 1, 2, 2)
    probs = compute_probs(Softmax(dtype), images, torch.device("cpu"), batch_size=2)
    assert probs.dtype == expected and probs.shape == (5, 3)
    if dtype == torch.float32:  # bit-identical to the float32 softmax the paper's attacks saw
        np.testing.assert_array_equal(probs, torch.softmax(images.flatten(1)[:, :3], dim=1).numpy())


def test_merge_rows_keeps_the_dtype():
    part = Scores(np.full((2, 3), 1 / 3, dtype=np.float32), np.array([0, 1]))
    merged = merge_rows(4, [(np.array([0, 2]), part), (np.array([1, 3]), part)])
    assert merged.probs.dtype == np.float32


def test_cache_returns_the_stored_dtype(tmp_path):
    cache = ScoreCache(tmp_path)
    probs = np.full((2, 3), 1 / 3, dtype=np.float32)
    first = cache.get_or_compute("k", torch.tensor([0, 1]), True, lambda: probs)
    again = cache.get_or_compute("k", torch.tensor([0, 1]), True, lambda: pytest.fail("recomputed"))
    assert first.probs.dtype == again.probs.dtype == np.float32
