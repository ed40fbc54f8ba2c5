"""Checkpoints: paper file names, save/load round trip, one-line errors, reuse, or retrain when asked."""
from __future__ import annotations

import json

import pytest
import torch

from models import build_model
from models.checkpoints import (CheckpointError, CheckpointMismatchError, checkpoint_path, config_path,
                                fingerprint, load_checkpoint, load_or_train, save_checkpoint)
from utils.files import sha256_file
from utils.seeding import seeded




def salem(num_classes: int = 10, seed: int = 0):
    with seeded(seed):
        return build_model("salem_cnn_relu", num_classes=num_classes, in_channels=1, image_size=8).eval()


def test_checkpoint_path_uses_the_papers_names(tmp_path):
    assert (checkpoint_path(tmp_path, "resnet18", "cifar10", "", "target")
            == tmp_path / "resnet18_cifar10_target.pt")
    assert (checkpoint_path(tmp_path, "resnet18", "cifar10", "LS_0.0083_", "shadow").name
            == "resnet18_cifar10_LS_0.0083_shadow.pt")
    assert checkpoint_path(tmp_path, "resnet50", "stanford_dogs", "L2_0.001", "target").name \
        == "resnet50_stanford_dogs_L2_0.001_target.pt"
    with pytest.raises(ValueError, match="role"):
        checkpoint_path(tmp_path, "resnet18", "cifar10", "", "../target")


def test_saved_checkpoint_reproduces_outputs(tmp_path):
    model, fresh = salem(seed=0), salem(seed=1)
    path = save_checkpoint(model, tmp_path / "salem_cnn_relu_digits_target.pt", {"epochs": 3})
    assert json.loads(config_path(path).read_text()) == {"epochs": 3, "weights_sha256": sha256_file(path)}
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave nothing behind
    x = torch.randn(4, 1, 8, 8)
    assert not torch.equal(model(x), fresh(x))
    load_checkpoint(fresh, path)
    assert torch.equal(model(x), fresh(x))
    assert fingerprint(model) == fingerprint(fresh)


def test_fingerprint_tracks_weights():
    model = salem()
    before = fingerprint(model)
    assert before == fingerprint(salem()) == fingerprint(model.state_dict())
    with torch.no_grad():
        model.out.bias[0] += 1e-6
    assert fingerprint(model) != before and len(before) == 64


@pytest.mark.parametrize("wrapper", ["state_dict", "model_state_dict", "module."])
def test_wrapped_state_dicts_load(tmp_path, wrapper):
    state = salem(seed=0).state_dict()
    wrapped = ({f"module.{k}": v for k, v in state.items()} if wrapper == "module."
               else {wrapper: state, "epoch": 7})
    torch.save(wrapped, tmp_path / "wrapped.pt")
    model = load_checkpoint(salem(seed=1), tmp_path / "wrapped.pt")
    assert fingerprint(model) == fingerprint(state)


def one_line_error(model, path) -> str:
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(model, path)
    message = str(error.value)
    assert "\n" not in message and str(path) in message
    return message


def test_missing_file_is_one_line(tmp_path):
    assert "does not exist" in one_line_error(salem(), tmp_path / "absent.pt")


def test_corrupt_file_is_one_line(tmp_path):
    path = tmp_path / "corrupt.pt"
    path.write_bytes(b"not a checkpoint\n\x00\x01")
    message = one_line_error(salem(), path)
    assert "corrupt" in message and "delete it" in message
    torch.save([torch.zeros(2)], tmp_path / "list.pt")
    assert "not a state dict" in one_line_error(salem(), tmp_path / "list.pt")


def test_mismatched_file_is_one_line(tmp_path):
    path = save_checkpoint(salem(num_classes=10), tmp_path / "ten.pt", {})
    message = one_line_error(salem(num_classes=5), path)
    assert "2 shape mismatches" in message and "out.weight file (10, 128) vs model (5, 128)" in message
    with seeded(0):
        other = build_model("small_cnn", num_classes=10, in_channels=1, image_size=8)
    message = one_line_error(other, path)
    assert "missing keys (features.0.weight" in message and "unexpected keys (model.0.weight" in message


def test_load_or_train_reuses_and_retrains(tmp_path):
    path = tmp_path / "salem_cnn_relu_digits_target.pt"
    calls = []

    def train(model):
        calls.append(model)
        with torch.no_grad():
            model.out.bias.add_(len(calls))

    config = {"arch": "salem_cnn_relu", "train": {"epochs": 2, "lr": 0.001}, "sizes": (1, 2)}
    model, trained = load_or_train(salem(), path, config, train)
    assert trained and len(calls) == 1 and path.is_file() and config_path(path).is_file()
    trained_print = fingerprint(model)

    model, trained = load_or_train(salem(), path, config, train)  # same config: reuse
    assert not trained and len(calls) == 1 and fingerprint(model) == trained_print

    with pytest.raises(CheckpointMismatchError, match=r"train.epochs 2 \(requested 3\)"):  # never silently
        load_or_train(salem(), path, {**config, "train": {"epochs": 3, "lr": 0.001}}, train)
    assert len(calls) == 1 and fingerprint(load_checkpoint(salem(), path)) == trained_print

    model, trained = load_or_train(salem(), path, {**config, "train": {"epochs": 3, "lr": 0.001}}, train,
                                   force_train=True)
    assert trained and len(calls) == 2 and fingerprint(model) != trained_print


def test_load_or_train_loads_released_files_without_config(tmp_path):
    path = tmp_path / "salem_cnn_relu_cifar10_target.pt"
    released = salem(seed=5)
    torch.save(released.state_dict(), path)  # the authors' files come without JSON
    model, trained = load_or_train(salem(seed=0), path, {"anything": 1}, lambda m: pytest.fail("trained"))
    assert not trained and fingerprint(model) == fingerprint(released)


def test_load_or_train_does_not_hide_a_broken_released_file(tmp_path):
    path = tmp_path / "broken.pt"
    path.write_bytes(b"truncated")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_or_train(salem(), path, {}, lambda m: None)
