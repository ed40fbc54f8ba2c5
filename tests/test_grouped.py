"""Tests of models/grouped.py (K models as one grouped network) and of the batched step's formulations
and precisions in models/batched_training.py."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, stack_module_state, vmap

import models.batched_training as batched_training
from models.batched_training import batchable, formulation, train_stacked
from models.grouped import groupable, grouped_logits, grouped_matches, grouped_network
from models.small_cnn import SmallCNN
from models.training import TrainConfig, train_model


def stacked(models):
    params, _ = stack_module_state(models)
    return {name: value.detach().clone() for name, value in params.items()}


def tabular_mlp():
    return nn.Sequential(nn.Linear(12, 16), nn.Tanh(), nn.Linear(16, 3))


class MixesChannels(nn.Module):
    """A custom forward that subtracts the mean over channels: fine alone, wrong on grouped channels."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 10)

    def forward(self, x):
        h = self.conv(x)
        return self.fc(torch.flatten(h - h.mean(1, keepdim=True), 1))


def test_pooling_before_relu_is_the_same_function_and_gradient_as_after():
    """SmallCNN pools before its ReLUs (4x less activation work); max-pooling commutes with ReLU, so
    logits and gradients equal, bit for bit, those of the ReLU-then-pool order its checkpoints were
    trained with (same state-dict names)."""
    torch.manual_seed(0)
    model = SmallCNN()
    relu_first = SmallCNN()
    relu_first.features = nn.Sequential(relu_first.features[0], nn.ReLU(), nn.MaxPool2d(2),
                                        relu_first.features[3], nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
    relu_first.load_state_dict(model.state_dict())
    x, y = torch.randn(64, 1, 8, 8), torch.randint(0, 10, (64,))
    grads = []
    for net in (model, relu_first):
        out = net(x)
        grads.append((out, torch.autograd.grad(F.cross_entropy(out, y), list(net.parameters()))))
    assert torch.equal(grads[0][0], grads[1][0])
    assert all(torch.equal(a, b) for a, b in zip(grads[0][1], grads[1][1]))


@pytest.mark.parametrize("build, shape", [(SmallCNN, (1, 8, 8)), (tabular_mlp, (12,)),
                                          (lambda: __import__("models").build_model("salem_cnn_relu", 10, 3, 16),
                                           (3, 16, 16))])
def test_grouped_network_gives_each_model_its_own_logits_and_gradients(build, shape):
    torch.manual_seed(1)
    models = [build() for _ in range(3)]
    params = stacked(models)
    x = torch.randn(3, 5, *shape)
    y = torch.randint(0, 3, (3, 5))
    network = grouped_network(models[0])
    assert groupable(models[0]) is None and grouped_matches(network, models[0], params, x)

    def loss_alone(p, xk, yk):
        return F.cross_entropy(functional_call(models[0], p, (xk,)), yk)
    expected = vmap(grad(loss_alone))(params, x, y)
    leaves = {name: value.clone().requires_grad_() for name, value in params.items()}
    logits = grouped_logits(network, leaves, x)
    losses = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(3, 5).mean(1)
    got = dict(zip(leaves, torch.autograd.grad(losses.sum(), list(leaves.values()))))
    for name in params:
        assert torch.allclose(got[name], expected[name], rtol=1e-4, atol=1e-6), name


def test_models_without_a_grouped_form_train_under_vmap_and_still_match_training_alone():
    layer_norm = nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.LayerNorm(8), nn.Linear(8, 10))
    assert "LayerNorm" in groupable(layer_norm) and formulation(layer_norm).startswith("vmap")
    assert formulation(SmallCNN()) == "grouped, channels-last"
    torch.manual_seed(2)
    mixing = [MixesChannels() for _ in range(3)]
    params = stacked(mixing)
    x = torch.randn(3, 4, 1, 8, 8)
    assert groupable(mixing[0]) is None                          # every layer has a grouped form...
    assert not grouped_matches(grouped_network(mixing[0]), mixing[0], params, x)   # ...but the forward mixes
    generator = torch.Generator().manual_seed(3)
    images, labels = torch.randn(40, 1, 8, 8, generator=generator), torch.randint(0, 10, (40,), generator=generator)
    rows = [np.arange(0, 32), np.arange(8, 40), np.arange(4, 36)]
    recipes = [TrainConfig(epochs=2, batch_size=8, lr=0.01, seed=k) for k in range(3)]
    states, diverged = train_stacked([_copy(m) for m in mixing], recipes, images, labels, rows)
    assert not diverged
    for model, recipe, model_rows, state in zip(mixing, recipes, rows, states):
        alone = _copy(model)
        train_model(alone, images[model_rows], labels[model_rows], recipe, progress=False)
        for name, value in alone.state_dict().items():
            assert torch.allclose(state[name], value, atol=1e-4), name


def _copy(model):
    clone = type(model)()
    clone.load_state_dict(model.state_dict())
    return clone


def test_amp_recipes_batch_in_bf16_and_train_one_per_step_in_fp16(monkeypatch):
    model = SmallCNN()
    assert batchable(model, TrainConfig(amp=True)) is None                       # bf16 autocast on CPU
    monkeypatch.setattr(batched_training, "amp_dtype", lambda device: torch.float16)
    assert "fp16" in batchable(model, TrainConfig(amp=True), "cuda")              # needs a gradient scaler
    # that amp chunks train and match their models trained alone: test_reference_pool.py
