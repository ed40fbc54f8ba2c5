"""Numerics as the paper's: the temperature's fitting set, fp32 training by default, --amp recorded
and enforced when loading."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import calibration.temperature as temperature
from calibration import SoftmaxPredictor
from models.small_cnn import SmallCNN
from models.training import TrainConfig, train_model
from pipeline.cli import main
from configuration.config import config_from_preset
from datasets.splits.seeded import complement
from pipeline.run import prepare_run, run_experiment

TINY = dict(epochs=2, train_set_size=80, test_set_size=80, attack_set_size=40, batch_size=32,
            progress=False, figures=False, sets=("original", "scaled"))


def tiny_config(tmp_path, **overrides):
    return config_from_preset("digits", results_dir=str(tmp_path / "results"),
                              pretrained_dir=str(tmp_path / "checkpoints"), **{**TINY, **overrides})


@pytest.mark.parametrize("temp_fit, rows, method", [("paper", "attack", "lbfgs"), ("held_out", "rest", "bounded")])
def test_temperature_fitting_set(tmp_path, monkeypatch, temp_fit, rows, method):
    """The paper fits each model's T on its own attack non-members (target: Original)."""
    calls = []

    def spy(model, **options):
        calls.append(options)
        return SoftmaxPredictor(model)

    monkeypatch.setattr(temperature, "temperature_predictor", spy)
    prepared = prepare_run(tiny_config(tmp_path, temp_scaling=True, temp_fit=temp_fit))
    assert len(calls) == 2
    for role, options in zip(("target", "shadow"), calls):
        test = prepared.data.splits[f"{role}_test"]
        attack_rows = prepared.positions[f"{role}_non_members"]
        expected = attack_rows if rows == "attack" else complement(attack_rows, len(test.labels))
        assert torch.equal(options["fit_images"], test.images[torch.as_tensor(expected)])
        assert options["temperature"] is None and options["temperature_fit"] == method
    if temp_fit == "paper":
        assert torch.equal(calls[0]["fit_images"], prepared.original.images)


def test_fixed_temperature_is_not_fitted(tmp_path):
    prepared = prepare_run(tiny_config(tmp_path, temp_scaling=True, temp_value=10.0))
    assert all(p.describe() == {"method": "temperature", "temperature": 10.0} for p in prepared.predictors.values())


def forward_dtypes(amp: bool) -> set:
    data = torch.randn(16, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(16) % 10
    model = SmallCNN(width=4)
    seen = set()
    model.register_forward_hook(lambda module, inputs, output: seen.add(output.dtype))
    train_model(model, data, labels, TrainConfig(epochs=1, batch_size=8, amp=amp), progress=False)
    return seen


def test_training_is_fp32_by_default_and_bf16_with_amp_on_cpu():
    assert TrainConfig().amp is False and TrainConfig().channels_last is False
    assert forward_dtypes(amp=False) == {torch.float32}
    assert forward_dtypes(amp=True) == {torch.bfloat16}


def test_training_uses_deterministic_algorithms_then_restores(monkeypatch):
    states = []
    original = torch.nn.Module.train

    def record(self, mode=True):
        states.append(torch.are_deterministic_algorithms_enabled())
        return original(self, mode)

    monkeypatch.setattr(torch.nn.Module, "train", record)
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,
              torch.backends.cudnn.benchmark)
    forward_dtypes(amp=False)
    assert states and all(states)
    assert (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,
            torch.backends.cudnn.benchmark) == before


def test_amp_recorded_and_mismatched_loads_name_the_flag(tmp_path):
    outputs = run_experiment(tiny_config(tmp_path, amp=True))
    manifest = json.loads(outputs.files["manifest"].read_text())
    assert manifest["config"]["amp"] is True
    assert {m["precision"] for m in manifest["models"].values()} == {"amp-bf16"}
    metadata = json.loads((tmp_path / "checkpoints" / "small_cnn_digits_target.json").read_text())
    assert metadata["precision"] == "amp-bf16" and metadata["train"]["amp"] is True

    with pytest.raises(ValueError, match=r"trained with --amp .*pass --amp to load it, or add --train"):
        run_experiment(tiny_config(tmp_path))  # an fp32 run must not load the bf16 model
    again = run_experiment(tiny_config(tmp_path, amp=True))  # the same flag loads it
    assert not any(m.trained for m in again.prepared.models.values())

    fp32 = run_experiment(tiny_config(tmp_path, train=True))  # --train retrains in fp32
    assert {m.precision for m in fp32.prepared.models.values()} == {"fp32"}
    with pytest.raises(ValueError, match=r"trained in fp32 .*drop --amp to load it"):
        run_experiment(tiny_config(tmp_path, amp=True))


@pytest.mark.slow
def test_amp_refuses_a_checkpoint_without_metadata(tmp_path, capsys):
    """The authors' released files have no JSON: they are fp32, so --amp must not load them."""
    run_experiment(tiny_config(tmp_path))
    for role in ("target", "shadow"):
        (tmp_path / "checkpoints" / f"small_cnn_digits_{role}.json").unlink()
    argv = ["--results_dir", str(tmp_path / "r"), "--pretrained_dir", str(tmp_path / "checkpoints"), "--quiet",
            "--no_figures", "--epochs", "2", "--train_set_size", "80", "--test_set_size", "80",
            "--attack_set_size", "40", "--sets", "original", "--amp"]
    assert main("digits", argv) == 2
    error = capsys.readouterr().err.strip()
    assert "--amp" in error and "authors' files are fp32" in error and len(error.splitlines()) == 1
    assert main("digits", argv[:-1]) == 0  # without --amp it loads


def test_amp_flag_in_help():
    from configuration.cli import build_parser

    text = build_parser("cifar10").format_help()
    for flag in ("--amp", "--no_verify", "--temp_fit"):
        assert flag in text
    assert np.all([build_parser(name).parse_args([]).amp is False for name in ("digits", "cifar10")])
