"""Training: determinism on CPU, both data paths, loss/optimizer settings passed through."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

import models.training as training
from models import build_model
from models.training import (DEFAULT_LR, TrainConfig, make_loss, make_optimizer, train_model,
                             train_model_on_dataset)
from utils.seeding import seeded




def tiny_data(n: int = 48, size: int = 8, classes: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``(n, 1, size, size)`` whose mean brightness encodes the label."""
    generator = torch.Generator().manual_seed(1)
    labels = torch.arange(n) % classes
    images = torch.randn(n, 1, size, size, generator=generator) * 0.1 + labels.view(-1, 1, 1, 1)
    return images, labels


def dropout_net(classes: int = 3) -> nn.Module:
    """A tiny model that draws from the global RNG while training (dropout)."""
    with seeded(0):
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Dropout(0.5),
                             nn.Linear(16, classes))


def states_equal(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


class FlipDataset(Dataset):
    """Per-sample augmentation with the global torch RNG (a random horizontal flip)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.images[index]
        if torch.rand(()) < 0.5:
            image = image.flip(-1)
        return image, int(self.labels[index])


CONFIG = TrainConfig(epochs=2, batch_size=16, lr=0.01, seed=3)


def test_same_seed_gives_identical_weights_on_cpu():
    images, labels = tiny_data()
    first, second = dropout_net(), dropout_net()
    torch.manual_seed(123)  # the global state before training must not matter
    log_a = train_model(first, images, labels, CONFIG, progress=False)
    torch.manual_seed(456)
    log_b = train_model(second, images, labels, CONFIG, progress=False)
    assert states_equal(first, second)
    assert log_a == log_b and len(log_a) == CONFIG.epochs
    other = dropout_net()
    train_model(other, images, labels, TrainConfig(epochs=2, batch_size=16, lr=0.01, seed=4), progress=False)
    assert not states_equal(first, other)


def test_training_leaves_global_rng_untouched_and_model_in_eval_mode():
    images, labels = tiny_data()
    model = dropout_net()
    before = torch.get_rng_state()
    train_model(model, images, labels, CONFIG, progress=False)
    assert torch.equal(before, torch.get_rng_state())
    assert not model.training


def test_training_learns_an_easy_task():
    images, labels = tiny_data(n=60)
    with seeded(0):
        model = build_model("salem_cnn_relu", num_classes=3, in_channels=1, image_size=8)
    log = train_model(model, images, labels, TrainConfig(epochs=4, batch_size=20, lr=0.01), progress=False)
    assert log[-1].loss < 0.7 * log[0].loss
    assert log[-1].accuracy > 0.5


def test_dataset_path_with_augmentation_is_deterministic():
    images, labels = tiny_data()
    first, second = dropout_net(), dropout_net()
    log_a = train_model_on_dataset(first, FlipDataset(images, labels), CONFIG, progress=False)
    log_b = train_model_on_dataset(second, FlipDataset(images, labels), CONFIG, progress=False)
    assert states_equal(first, second) and log_a == log_b
    assert [entry.epoch for entry in log_a] == [1, 2]


def test_dataset_path_trains_like_the_tensor_path():
    images, labels = tiny_data(n=60)
    model = dropout_net()
    log = train_model_on_dataset(model, TensorDataset(images, labels),
                                 TrainConfig(epochs=4, batch_size=20, lr=0.01), progress=False)
    assert log[-1].loss < log[0].loss and len(log) == 4


def test_loss_and_optimizer_take_the_config():
    config = TrainConfig(lr=0.02, weight_decay=3e-4, label_smoothing=0.0083)
    optimizer = make_optimizer(dropout_net(), config)
    assert isinstance(optimizer, torch.optim.Adam)
    assert optimizer.param_groups[0]["lr"] == 0.02 and optimizer.param_groups[0]["weight_decay"] == 3e-4
    assert make_loss(config).label_smoothing == 0.0083


def test_train_model_passes_label_smoothing_and_weight_decay_through(monkeypatch):
    seen = []
    def spy_loss(config):
        seen.append(("loss", config))
        return make_loss(config)

    def spy_optimizer(model, config):
        seen.append(("optimizer", config))
        return make_optimizer(model, config)

    monkeypatch.setattr(training, "make_loss", spy_loss)
    monkeypatch.setattr(training, "make_optimizer", spy_optimizer)
    config = TrainConfig(epochs=1, batch_size=16, weight_decay=1e-3, label_smoothing=0.1)
    images, labels = tiny_data()
    train_model(dropout_net(), images, labels, config, progress=False)
    assert sorted(kind for kind, _ in seen) == ["loss", "optimizer"]
    assert all(used is config for _, used in seen)


def test_label_smoothing_changes_the_loss():
    logits, targets = torch.tensor([[4.0, 0.0, 0.0]]), torch.tensor([0])
    plain = make_loss(TrainConfig())(logits, targets)
    smoothed = make_loss(TrainConfig(label_smoothing=0.1))(logits, targets)
    assert smoothed > plain


def test_config_defaults_validation_and_round_trip():
    assert DEFAULT_LR["salem_cnn_relu"] == 0.001 and DEFAULT_LR["resnet18"] == 0.01
    config = TrainConfig(epochs=3, label_smoothing=0.1)
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="batch_size=0"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="label_smoothing"):
        TrainConfig(label_smoothing=1.5)
    with pytest.raises(ValueError, match="unknown TrainConfig keys"):
        TrainConfig.from_dict({"epoch": 3})


def test_bad_inputs_are_reported():
    images, labels = tiny_data()
    with pytest.raises(ValueError, match="48 images but 47 labels"):
        train_model(dropout_net(), images, labels[:-1], CONFIG, progress=False)
    with pytest.raises(ValueError, match="empty"):
        train_model_on_dataset(dropout_net(), TensorDataset(images[:0], labels[:0]), CONFIG, progress=False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_mixed_precision_channels_last_training():
    images, labels = tiny_data()
    with seeded(0):
        model = build_model("salem_cnn_relu", num_classes=3, in_channels=1, image_size=8)
    log = train_model(model, images, labels, TrainConfig(epochs=2, batch_size=16), device="cuda",
                      progress=False)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert model.model[0].weight.is_contiguous() and len(log) == 2
    log = train_model_on_dataset(model, FlipDataset(images, labels), TrainConfig(epochs=1, batch_size=16),
                                 device="cuda", progress=False)
    assert len(log) == 1
