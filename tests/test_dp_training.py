"""Tests of models/dp_training.py (DP-SGD with Opacus), its flags, and the validity of the epsilon bounds."""
import copy

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from attacks import ATTACKS
from attacks.epsilon_bounds import bound_violations, epsilon_bound_table
from attacks.evaluation import AttackOutputs
from configuration.config import config_from_preset, validate_config
from datasets.digits import load_digits_tensors
from models.dp_training import check_dp_model, dp_accounting
from models.small_cnn import SmallCNN
from models.training import TrainConfig, train_model, train_model_on_dataset
from utils.naming import split_stem


def _digits(rows: int, start: int = 0):
    images, labels = load_digits_tensors()
    return images[start:start + rows], labels[start:start + rows]


def _small_cnn(seed: int = 0) -> SmallCNN:
    torch.manual_seed(seed)
    return SmallCNN(width=8)


def test_dp_model_on_digits_trains_within_the_target_epsilon():
    images, labels = _digits(300)
    config = TrainConfig(epochs=2, batch_size=32, lr=0.01, seed=3, dp_epsilon=1.0)
    model, fresh = _small_cnn(), _small_cnn()
    history = train_model(model, images, labels, config, progress=False)
    accounting = dp_accounting(len(images), config)
    assert len(history) == 2 and history[-1].epsilon == pytest.approx(accounting.epsilon)
    assert 0.9 < accounting.epsilon <= 1.0 and accounting.noise_multiplier > 1 and accounting.steps == 20
    assert accounting.sample_rate == 0.1 and accounting.to_dict()["accountant"] == "rdp"
    assert list(model.state_dict()) == list(fresh.state_dict())            # no Opacus wrapper left behind
    assert not any(hasattr(p, "grad_sample") for p in model.parameters())
    assert not any(m._forward_hooks or m._backward_hooks for m in model.modules())
    assert any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(), fresh.state_dict().values()))
    again = _small_cnn()
    train_model(again, images, labels, config, progress=False)
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):   # seeded sampling and noise
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_dp_training_on_a_dataset_and_with_empty_poisson_batches():
    images, labels = _digits(24)
    config = TrainConfig(epochs=1, batch_size=1, lr=0.01, seed=0, dp_epsilon=8.0)   # P(empty batch) ~ 1/e
    history = train_model_on_dataset(_small_cnn(), TensorDataset(images, labels), config, progress=False)
    assert history[-1].epsilon == pytest.approx(dp_accounting(24, config).epsilon) and history[-1].epsilon <= 8.0
    assert np.isfinite(history[-1].loss)


def test_batchnorm_is_refused_in_one_line():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(144, 10))
    with pytest.raises(ValueError, match=r"^--dp_epsilon: Sequential cannot be trained with DP-SGD: .*BatchNorm") as error:
        check_dp_model(model)
    assert "\n" not in str(error.value)
    images, labels = _digits(16)
    with pytest.raises(ValueError, match="BatchNorm"):
        train_model(model, images, labels, TrainConfig(epochs=1, dp_epsilon=1.0), progress=False)
    check_dp_model(_small_cnn())


def test_inplace_relus_do_not_change_the_numbers():
    images, labels = _digits(64)
    plain, inplace = _small_cnn(), _small_cnn()
    for module in inplace.modules():
        if isinstance(module, nn.ReLU):
            module.inplace = True
    config = TrainConfig(epochs=1, batch_size=16, lr=0.01, seed=0)
    train_model(plain, images, labels, config, progress=False)
    train_model(inplace, images, labels, config, progress=False)
    for a, b in zip(plain.state_dict().values(), inplace.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_train_config_records_dp_fields_only_when_set():
    assert "dp_epsilon" not in TrainConfig().to_dict()                    # ordinary checkpoints' records unchanged
    dp = TrainConfig(dp_epsilon=8.0, dp_delta=1e-6, dp_max_grad_norm=2.0)
    assert dp.to_dict()["dp_epsilon"] == 8.0 and TrainConfig.from_dict(dp.to_dict()) == dp
    for bad in ({"dp_epsilon": 0.0}, {"dp_epsilon": float("inf")}, {"dp_delta": 1.0}, {"dp_max_grad_norm": 0}):
        with pytest.raises(ValueError, match=f"TrainConfig.{next(iter(bad))}="):
            TrainConfig(**bad)
    with pytest.raises(ValueError, match="--dp_epsilon cannot be combined with --amp"):
        train_model(_small_cnn(), *_digits(8), TrainConfig(epochs=1, amp=True, dp_epsilon=1.0), progress=False)
    with pytest.raises(ValueError, match="needs a TrainConfig with dp_epsilon"):
        dp_accounting(10, TrainConfig())


def test_dp_flags_name_the_checkpoints_and_are_checked():
    config = config_from_preset("digits", dp_epsilon=8.0)
    assert config.training_modifier() == "DP_8.0_" and config.run_stem() == "small_cnn_digits_DP_8.0_"
    assert config_from_preset("digits").training_modifier() == ""
    assert split_stem("small_cnn_digits_DP_8.0_LLLA_") == ("small_cnn_digits", "DP_8.0_LLLA")
    assert config_from_preset("digits", dp_epsilon=8.0, weight_decay=3e-4).training_modifier() == "L2_0.0003_DP_8.0_"
    for values, message in (({"dp_epsilon": -1.0}, "--dp_epsilon must be a positive"),
                            ({"dp_delta": 0.0}, "--dp_delta must be in"),
                            ({"dp_max_grad_norm": -1.0}, "--dp_max_grad_norm must be a positive"),
                            ({"dp_epsilon": 1.0, "amp": True}, "--dp_epsilon cannot be combined with --amp")):
        with pytest.raises(ValueError, match=message):
            validate_config(config_from_preset("digits", **values))


def _bounds_of(dp_epsilon):
    """Epsilon bounds of every score attack against a target trained on 300 digits (shadow: the next 600 rows)."""
    images, labels = load_digits_tensors()
    config = TrainConfig(epochs=30, batch_size=32, lr=0.01, seed=1, dp_epsilon=dp_epsilon)
    parts = {name: (images[i:i + 300], labels[i:i + 300]) for name, i in
             (("in", 0), ("out", 300), ("shadow_in", 600), ("shadow_out", 900))}
    probs = {}
    for role, rows in (("target", "in"), ("shadow", "shadow_in")):
        model = _small_cnn(seed=len(role))
        train_model(model, *parts[rows], config, progress=False)
        with torch.no_grad():
            for part in ((("in", "out") if role == "target" else ("shadow_in", "shadow_out"))):
                probs[part] = torch.softmax(model(parts[part][0]), 1).numpy()
    outputs = {}
    for name, spec in ATTACKS.items():
        if spec.needs_reference_models:
            continue
        attack = spec.build({}, seed=0).fit(probs["shadow_in"], probs["shadow_out"], parts["shadow_in"][1].numpy(),
                                            parts["shadow_out"][1].numpy())
        outputs[name] = {set_name: AttackOutputs(attack.score(probs[part], parts[part][1].numpy()), np.zeros(300, bool),
                                                 np.zeros(300)) for set_name, part in (("Members", "in"), ("Original", "out"))}
    return epsilon_bound_table(outputs, None, seed=0)


def test_dp_model_bounds_stay_below_the_accountants_epsilon():
    dp_table, plain_table = _bounds_of(1.0), _bounds_of(None)
    assert len(dp_table) >= 6
    assert bound_violations(dp_table, accountant_epsilon=1.0) == []
    assert (dp_table["epsilon"] <= 1.0).all()
    assert plain_table["epsilon"].max() > dp_table["epsilon"].max()
