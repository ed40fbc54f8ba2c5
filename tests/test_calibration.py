"""Predictors (softmax, temperature, LLLA), and the factory.

The digits model is trained long on few samples, so it is clearly overconfident (test ECE ~0.15);
calibration must then lower the ECE, and LLLA must lower the scores of far-away inputs.
"""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from calibration import (LaplacePredictor, PaperLaplacePredictor, SoftmaxPredictor, TemperaturePredictor, build_predictor,
                         fit_temperature)
from calibration.metrics import expected_calibration_error
from calibration.temperature import PAPER_LBFGS, fit_temperature_lbfgs, fit_temperature_to_logits
from datasets.digits import load_digits_tensors
from datasets.domain import DIGITS
from models.small_cnn import SmallCNN
from models.training import TrainConfig, train_model
from utils.seeding import seeded

SMALL_GRID = np.logspace(-3, 0, 13)  # prior variances; a short grid keeps the tests fast


def tensor_loader(images: torch.Tensor, labels: torch.Tensor, batch_size: int = 256) -> DataLoader:
    """An unshuffled loader over ``(images, labels)`` for the predictors' ``fit``."""
    return DataLoader(TensorDataset(images, labels), batch_size=batch_size, shuffle=False)



@pytest.fixture(scope="module")
def digits():
    """A SmallCNN trained 200 epochs on 100 digits; 150 held-out, ~1,550 test, noise, scaled."""
    images, labels = load_digits_tensors()
    images = DIGITS.normalize(images)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    train, val, test = order[:100], order[100:250], order[250:]
    with seeded(1):
        model = SmallCNN(width=8)
    train_model(model, images[train], labels[train],
                TrainConfig(epochs=200, batch_size=100, lr=1e-2, seed=0), progress=False)
    noise = DIGITS.normalize(torch.rand(200, 1, 8, 8, generator=torch.Generator().manual_seed(2)))
    return SimpleNamespace(model=model.eval(), train=(images[train], labels[train]),
                           val=(images[val], labels[val]), test=(images[test], labels[test]),
                           scaled=images[test] * 255, noise=noise)


@pytest.fixture(scope="module")
def llla(digits):
    """LLLA with the prior variance grid-searched on the held-out NLL."""
    predictor = LaplacePredictor(digits.model).fit(tensor_loader(*digits.train))
    predictor.optimize_prior("gridsearch", val_images=digits.val[0], val_labels=digits.val[1],
                             prior_variances=SMALL_GRID)
    return predictor


@pytest.fixture(scope="module")
def paper_llla(digits):
    """The paper's LLLA, its prior searched on a short grid with the noise term."""
    predictor = PaperLaplacePredictor(digits.model, seed=0).fit(tensor_loader(*digits.train, batch_size=64))
    predictor.optimize_prior(digits.val[0], digits.val[1], ood_images=digits.noise,
                             prior_variances=np.logspace(0, 3, 7))
    return predictor


def mmps(predictor, images: torch.Tensor) -> float:
    return predictor(images).max(1).values.mean().item()


def test_fit_temperature_recovers_a_known_temperature():
    generator = torch.Generator().manual_seed(0)
    logits = 3.0 * torch.randn(4000, 10, generator=generator)
    labels = torch.multinomial(torch.softmax(logits / 2.5, dim=1), 1, generator=generator).squeeze(1)
    assert fit_temperature_to_logits(logits, labels) == pytest.approx(2.5, rel=0.05)


def paper_fit_logits():
    generator = torch.Generator().manual_seed(0)
    logits = 4.0 * torch.randn(300, 5, generator=generator)
    labels = torch.multinomial(torch.softmax(logits / 2.0, dim=1), 1, generator=generator).squeeze(1)
    return logits, labels


def test_paper_lbfgs_fit_known_answer():
    """The paper's fit: LBFGS(lr=0.001, max_iter=10000, strong Wolfe) from T=1, gradients never zeroed."""
    logits, labels = paper_fit_logits()
    fitted = fit_temperature_lbfgs(logits, labels)
    assert fitted == pytest.approx(1.92126, abs=2e-4)  # this procedure's answer (torch 2.14, CPU)
    assert fit_temperature_to_logits(logits, labels) == pytest.approx(fitted, abs=2e-3)  # near the NLL optimum

    # the same steps written out independently, with and without the paper's missing zero_grad
    def paper_procedure(zero_grad: bool) -> float:
        temperature = torch.nn.Parameter(torch.tensor(1.0))
        optimizer = torch.optim.LBFGS([temperature], lr=0.001, max_iter=10000, line_search_fn="strong_wolfe")

        def closure():
            if zero_grad:
                optimizer.zero_grad()
            loss = torch.nn.CrossEntropyLoss()(torch.div(logits, temperature), labels)
            loss.backward()
            return loss

        optimizer.step(closure)
        return temperature.item()

    assert fitted == paper_procedure(zero_grad=False)
    assert abs(fitted - paper_procedure(zero_grad=True)) > 1e-3  # the quirk changes the answer


def test_paper_lbfgs_settings(monkeypatch):
    assert PAPER_LBFGS == {"start": 1.0, "lr": 0.001, "max_iter": 10000, "line_search_fn": "strong_wolfe"}
    seen = {}
    original = torch.optim.LBFGS

    def spy(params, **options):
        params = list(params)
        seen.update(options, start=params[0].item(), dtype=params[0].dtype)
        return original(params, **options)

    monkeypatch.setattr(torch.optim, "LBFGS", spy)
    fit_temperature_lbfgs(*paper_fit_logits())
    assert seen == {"lr": 0.001, "max_iter": 10000, "line_search_fn": "strong_wolfe", "start": 1.0,
                    "dtype": torch.float32}


def test_fit_temperature_rejects_unlabelled_samples():
    with pytest.raises(ValueError, match="labels"):
        fit_temperature_to_logits(torch.zeros(3, 4), torch.tensor([0, -1, 2]))


@pytest.mark.parametrize("temperature", [0.0, -1.0, math.inf, math.nan])
def test_temperature_must_be_positive(temperature):
    with pytest.raises(ValueError, match="temperature"):
        TemperaturePredictor(torch.nn.Identity(), temperature)


def test_temperature_above_one_lowers_confidence():
    logits = 4.0 * torch.randn(50, 10, generator=torch.Generator().manual_seed(0))
    plain, hot = SoftmaxPredictor(torch.nn.Identity())(logits), TemperaturePredictor(torch.nn.Identity(), 10)(logits)
    assert (hot.max(1).values < plain.max(1).values).all()
    assert torch.equal(hot.argmax(1), plain.argmax(1))


def test_temperature_describe():
    predictor = TemperaturePredictor(torch.nn.Identity(), 10)
    assert predictor.describe() == {"method": "temperature", "temperature": 10.0}
    assert SoftmaxPredictor(torch.nn.Identity()).describe() == {"method": "softmax"}


def test_predictors_return_probability_rows(digits, llla, paper_llla):
    images = digits.test[0][:64]
    for predictor in (SoftmaxPredictor(digits.model), TemperaturePredictor(digits.model, 3.0), llla,
                      paper_llla):
        probs = predictor(images)
        assert probs.shape == (64, 10) and not probs.requires_grad
        assert torch.allclose(probs.sum(1), torch.ones(64), atol=1e-5)
        assert (probs >= 0).all()


def test_each_predictor_runs_the_model_once_per_sample(digits, llla, paper_llla):
    for predictor in (SoftmaxPredictor(digits.model), TemperaturePredictor(digits.model, 3.0), llla,
                      paper_llla):
        seen = []
        handle = predictor.model.register_forward_pre_hook(lambda module, inputs: seen.append(len(inputs[0])))
        try:
            predictor(digits.test[0][:37])
        finally:
            handle.remove()
        assert sum(seen) == 37, predictor.method


def test_temperature_scaling_lowers_test_ece(digits):
    plain = expected_calibration_error(SoftmaxPredictor(digits.model)(digits.test[0]), digits.test[1])
    predictor = build_predictor(digits.model, "temperature", fit_images=digits.val[0],
                                fit_labels=digits.val[1])
    assert predictor.temperature > 1.0  # the model is overconfident
    assert predictor.temperature == pytest.approx(fit_temperature(digits.model, *digits.val))
    calibrated = expected_calibration_error(predictor(digits.test[0]), digits.test[1])
    assert plain > 0.08 and calibrated < plain / 2


def test_llla_lowers_test_ece(digits, llla):
    plain = expected_calibration_error(SoftmaxPredictor(digits.model)(digits.test[0]), digits.test[1])
    calibrated = expected_calibration_error(llla(digits.test[0]), digits.test[1])
    assert calibrated < plain / 2


def test_llla_lowers_mmps_on_scaled_and_noise_inputs(digits, llla):
    plain = SoftmaxPredictor(digits.model)
    for images in (digits.scaled, digits.noise):
        assert mmps(llla, images) < mmps(plain, images) - 0.1


def test_paper_llla_lowers_mmps_on_noise_and_keeps_accuracy(digits, paper_llla):
    plain = SoftmaxPredictor(digits.model)
    assert mmps(paper_llla, digits.noise) < mmps(plain, digits.noise) - 0.1
    assert mmps(paper_llla, digits.test[0]) < mmps(plain, digits.test[0])
    agree = (paper_llla(digits.test[0]).argmax(1) == plain(digits.test[0]).argmax(1)).float().mean()
    assert agree > 0.95


def test_llla_marglik_through_the_factory(digits):
    predictor = build_predictor(digits.model, "llla", train_loader=tensor_loader(*digits.train),
                                llla_impl="laplace")
    assert isinstance(predictor, LaplacePredictor)
    description = predictor.describe()
    assert description["prior_method"] == "marglik"
    assert description["prior_precision"] == predictor.prior_precision > 0
    plain = SoftmaxPredictor(digits.model)
    for images in (digits.scaled, digits.noise):
        assert mmps(predictor, images) < mmps(plain, images)


def test_ood_grid_picks_the_minimum_of_its_objective(digits):
    predictor = LaplacePredictor(digits.model).fit(tensor_loader(*digits.train))
    grid = np.logspace(0, 3, 4)
    predictor.optimize_prior("ood_grid", val_images=digits.val[0], val_labels=digits.val[1],
                             ood_images=digits.noise[:100], prior_variances=grid)
    variances, losses = predictor.grid
    assert np.array_equal(variances, grid) and losses.shape == (4,) and np.isfinite(losses).all()
    assert predictor.prior_precision == pytest.approx(1.0 / grid[np.argmin(losses)])
    assert mmps(predictor, digits.noise) < mmps(SoftmaxPredictor(digits.model), digits.noise)


def test_llla_monte_carlo_link_is_deterministic(digits):
    predictor = LaplacePredictor(digits.model, link_approx="mc", n_samples=20, seed=3)
    predictor.fit(tensor_loader(*digits.train))
    first, second = predictor(digits.test[0][:20]), predictor(digits.test[0][:20])
    assert torch.equal(first, second)
    assert torch.allclose(first.sum(1), torch.ones(20), atol=1e-5)
    assert predictor.describe()["n_samples"] == 20


def test_llla_lifecycle_errors(digits):
    predictor = LaplacePredictor(digits.model)
    with pytest.raises(RuntimeError, match="not fitted"):
        predictor(digits.test[0][:2])
    with pytest.raises(ValueError, match="link_approx"):
        LaplacePredictor(digits.model, link_approx="bridge-ish")
    predictor.fit(tensor_loader(*digits.train))
    with pytest.raises(ValueError, match="'marglik', 'gridsearch', 'ood_grid'"):
        predictor.optimize_prior("grid")
    with pytest.raises(ValueError, match="val_images"):
        predictor.optimize_prior("gridsearch")


def test_build_predictor_checks_its_options(digits):
    with pytest.raises(ValueError, match="softmax, temperature, llla"):
        build_predictor(digits.model, "platt")
    with pytest.raises(ValueError, match="temperature=T or held-out"):
        build_predictor(digits.model, "temperature")
    with pytest.raises(ValueError, match="train_loader"):
        build_predictor(digits.model, "llla")
    loader = tensor_loader(*digits.train)
    with pytest.raises(ValueError, match="valid: marglik, gridsearch, ood_grid"):
        build_predictor(digits.model, "llla", train_loader=loader, llla_prior="laplace")
    with pytest.raises(ValueError, match="fit_images"):
        build_predictor(digits.model, "llla", train_loader=loader, llla_prior="ood_grid",
                        ood_images=digits.noise)
    with pytest.raises(ValueError, match="ood_images"):
        build_predictor(digits.model, "llla", train_loader=loader, llla_prior="ood_grid",
                        fit_images=digits.val[0], fit_labels=digits.val[1])
    assert isinstance(build_predictor(digits.model), SoftmaxPredictor)
    fixed = build_predictor(digits.model, "Temperature", temperature=10)
    assert fixed.temperature == 10.0


def test_build_predictor_rejects_options_its_method_does_not_take():
    layer = torch.nn.Linear(3, 2)
    with pytest.raises(ValueError, match=r"calibration softmax: unknown option\(s\) temperature"):
        build_predictor(layer, "softmax", temperature=3.0)
    with pytest.raises(ValueError, match=r"calibration temperature: unknown option\(s\) temprature; it takes"):
        build_predictor(layer, "temperature", temprature=3.0)
    assert build_predictor(layer, "temperature", temperature=3.0).describe()["temperature"] == 3.0
