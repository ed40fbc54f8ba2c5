"""The paper's LLLA (calibration/llla_paper.py), its noise set and its flags.

Posteriors are checked against NumPy on a tiny linear last layer (3 features, 2 classes).
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from calibration import PaperLaplacePredictor, build_predictor
from calibration.llla_paper import (PAPER_PRIOR_VARIANCES, kfac_hessian, last_linear_layer,
                                    mc_predictive, posterior, search_losses, search_objective)
from calibration.ood_noise import fake_data_noise, fake_data_pixels
from utils.seeding import seeded

BATCH_SIZES = (2, 3, 2, 4)  # four batches: the running average's weights are 0, 1/2, 2/3, 3/4


def tiny_layer(tied: bool) -> nn.Sequential:
    """``Linear(3, 2)`` behind a Flatten; ``tied``: both classes share weights (p = 1/2 always)."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(3, 2))
    with torch.no_grad():
        weight = torch.tensor([[0.7, -1.2, 0.4], [0.7, -1.2, 0.4] if tied else [-0.3, 0.9, 1.1]])
        model[1].weight.copy_(weight)
        model[1].bias.copy_(torch.tensor([0.2, 0.2] if tied else [0.5, -0.4]))
    return model.eval()


def tiny_batches(seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, 3, generator=generator), torch.randint(0, 2, (size,), generator=generator))
            for size in BATCH_SIZES]


def hand_factors(batches, output_factors) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Running average (rho = min(1 - 1/(i+1), 0.95)) of A = X^T X / N and the given G, scaled."""
    n = sum(len(x) for x, _ in batches)
    input_avg = output_avg = None
    for i, ((x, _), output_factor) in enumerate(zip(batches, output_factors)):
        x = x.double().numpy()
        input_factor = x.T @ x / len(x)
        rho = min(1 - 1 / (i + 1), 0.95)
        input_avg = input_factor if input_avg is None else rho * input_avg + (1 - rho) * input_factor
        output_avg = output_factor if output_avg is None else rho * output_avg + (1 - rho) * output_factor
    return np.sqrt(n) * input_avg, np.sqrt(n) * output_avg, n * output_avg


def hand_posterior(input_factor, output_factor, bias_factor, variance):
    tau = 1 / variance
    return (np.linalg.inv(input_factor + np.sqrt(tau) * np.eye(3)),
            np.linalg.inv(output_factor + np.sqrt(tau) * np.eye(2)),
            np.linalg.inv(bias_factor + tau * np.eye(2)))


def close(tensor: torch.Tensor, array: np.ndarray) -> bool:
    return np.allclose(tensor.double().numpy(), array, rtol=1e-5, atol=1e-6)


def test_posterior_matches_numpy_when_the_sampled_label_does_not_matter():
    """Tied classes give p = (1/2, 1/2), so g g^T = [[1, -1], [-1, 1]] / 4 whatever label is drawn."""
    model, batches = tiny_layer(tied=True), tiny_batches()
    hessian = kfac_hessian(model, batches, n_data=sum(BATCH_SIZES))
    constant = np.array([[1.0, -1.0], [-1.0, 1.0]]) / 4
    input_factor, output_factor, bias_factor = hand_factors(batches, [constant] * len(batches))
    assert close(hessian.input_factor, input_factor) and close(hessian.output_factor, output_factor)
    assert close(hessian.bias_factor, bias_factor)

    post = posterior(hessian, 2.0)
    input_cov, output_cov, bias_cov = hand_posterior(input_factor, output_factor, bias_factor, 2.0)
    assert close(post.input_covariance, input_cov) and close(post.output_covariance, output_cov)
    assert close(post.bias_covariance, bias_cov) and post.prior_variance == 2.0

    phi = torch.tensor([[1.0, 0.5, -2.0], [0.0, 0.0, 0.0]])
    mean, covariance = post.logit_distribution(phi)
    assert close(mean, phi.double().numpy() @ model[1].weight.detach().double().numpy().T + 0.2)
    for row, features in enumerate(phi.double().numpy()):
        assert close(covariance[row], (features @ input_cov @ features) * output_cov + bias_cov)


def test_kfac_factors_match_numpy_with_the_sampled_labels():
    """BackPACK's KFAC draws one label per sample from the model's prediction (global generator)."""
    model, batches = tiny_layer(tied=False), tiny_batches(1)
    with seeded(7):
        hessian = kfac_hessian(model, batches, n_data=sum(BATCH_SIZES))
    output_factors = []
    with seeded(7), torch.no_grad():
        for x, _ in batches:
            probs = torch.softmax(model(x), dim=1)
            drawn = torch.distributions.Categorical(probs).sample(torch.Size([1]))[0]
            gradients = (probs - nn.functional.one_hot(drawn, 2)).double().numpy()
            output_factors.append(gradients.T @ gradients / len(x))
    input_factor, output_factor, bias_factor = hand_factors(batches, output_factors)
    assert close(hessian.input_factor, input_factor)
    assert close(hessian.output_factor, output_factor) and close(hessian.bias_factor, bias_factor)


def test_running_average_caps_at_0_95():
    """From batch 20 on, each new batch gets weight 0.05."""
    model = tiny_layer(tied=True)
    batches = [(torch.zeros(1, 3), torch.zeros(1, dtype=torch.long))] * 25
    batches.append((torch.ones(1, 3), torch.zeros(1, dtype=torch.long)))
    hessian = kfac_hessian(model, batches, n_data=26)
    assert close(hessian.input_factor, np.sqrt(26) * 0.05 * np.ones((3, 3)))


def fitted_tiny(seed: int, *, n_samples: int = 100) -> PaperLaplacePredictor:
    x = torch.cat([b[0] for b in tiny_batches(2)])
    y = torch.cat([b[1] for b in tiny_batches(2)])
    loader = DataLoader(TensorDataset(x, y), batch_size=4)
    return PaperLaplacePredictor(tiny_layer(tied=False), n_samples=n_samples, seed=seed).fit(loader)


def test_predictive_repeats_for_a_seed_and_differs_for_another():
    images = torch.randn(6, 3, generator=torch.Generator().manual_seed(3)) * 3
    first = fitted_tiny(seed=1).set_prior_variance(50.0)
    again = fitted_tiny(seed=1).set_prior_variance(50.0)
    other = fitted_tiny(seed=2).set_prior_variance(50.0)
    probs = first(images)
    first(torch.randn(5, 3))  # an earlier call does not change later draws
    assert torch.equal(first(images), probs) and torch.equal(again(images), probs)
    assert not torch.equal(other(images), probs)
    assert torch.allclose(probs.sum(1), torch.ones(6)) and probs.shape == (6, 2)
    assert first.describe()["hessian_digest"] == again.describe()["hessian_digest"]
    assert first.describe()["hessian_digest"] != other.describe()["hessian_digest"]  # sampled labels


def test_mc_predictive_is_the_mean_softmax_of_the_drawn_logits():
    mean = torch.tensor([[1.0, -1.0, 0.0], [0.0, 2.0, 0.5]])
    root = torch.tensor([[[1.0, 0.0, 0.0], [0.5, 0.3, 0.0], [0.1, 0.2, 0.4]]] * 2)
    covariance = root @ root.transpose(1, 2)
    probs = mc_predictive(mean, covariance, 7, torch.Generator().manual_seed(5))
    noise = torch.randn((7, 2, 3), generator=torch.Generator().manual_seed(5))
    logits = mean + torch.einsum("nij,snj->sni", root, noise)
    assert torch.allclose(probs, torch.softmax(logits, dim=2).mean(0), atol=1e-6)


def test_search_objective_by_hand():
    probs = torch.tensor([[0.5, 0.5], [0.9, 0.1]])
    ood = torch.tensor([[0.5, 0.5], [1.0, 0.0]])
    expected = (-(np.log(0.5 + 1e-8) + np.log(0.1 + 1e-8)) / 2
                + 0.25 * -(2 * np.log(0.5 + 1e-8) + np.log(1.0 + 1e-8) + np.log(1e-8)) / 4)
    assert search_objective(probs, torch.tensor([0, 1]), ood, 0.25) == pytest.approx(expected, rel=1e-6)


def test_prior_search_takes_the_grid_minimum_and_the_paper_grid():
    assert len(PAPER_PRIOR_VARIANCES) == 100 and PAPER_PRIOR_VARIANCES.dtype == torch.float32
    assert PAPER_PRIOR_VARIANCES[0] == 1 and PAPER_PRIOR_VARIANCES[-1] == pytest.approx(1000)
    predictor = fitted_tiny(seed=0, n_samples=20)
    val = tiny_batches(4)[3]
    grid = [0.01, 1.0, 100.0, 1e4]
    chosen = predictor.optimize_prior(val[0], val[1], ood_images=torch.randn(8, 3) * 5,
                                      prior_variances=grid)
    variances, losses = predictor.grid
    assert np.allclose(variances, grid) and np.isfinite(losses).all()
    assert chosen == pytest.approx(grid[int(np.argmin(losses))])
    assert predictor.describe()["prior_method"] == "ood_grid"
    assert predictor.describe()["prior_variance"] == chosen


def test_search_losses_use_the_same_posterior_as_prediction():
    """The search's eigenbasis shortcut gives the explicit posterior's objective (same draws)."""
    predictor = fitted_tiny(seed=0)
    val_x, val_y = tiny_batches(5)[3]
    ood_x = torch.randn(6, 3, generator=torch.Generator().manual_seed(6)) * 4
    variances = torch.tensor([0.5, 20.0])
    losses = search_losses(predictor.hessian, variances, val_x, val_y, ood_x, 0.25, 9,
                           torch.Generator().manual_seed(8))
    generator, expected = torch.Generator().manual_seed(8), []
    for variance in variances:
        post = posterior(predictor.hessian, variance)
        probs = mc_predictive(*post.logit_distribution(val_x), 9, generator)
        ood = mc_predictive(*post.logit_distribution(ood_x), 9, generator)
        expected.append(search_objective(probs, val_y, ood, 0.25))
    assert np.allclose(losses, expected, rtol=1e-5)
    assert not np.allclose(losses[0], losses[1])


def test_lifecycle_errors():
    predictor = PaperLaplacePredictor(tiny_layer(tied=False))
    with pytest.raises(RuntimeError, match="not fitted"):
        predictor(torch.zeros(2, 3))
    with pytest.raises(RuntimeError, match="not fitted"):
        predictor.set_prior_variance(1.0)
    predictor = fitted_tiny(seed=0)
    with pytest.raises(RuntimeError, match="no prior"):
        predictor(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="prior variance must be a positive"):
        predictor.set_prior_variance(0.0)


def test_last_linear_layer():
    model = tiny_layer(tied=False)
    assert last_linear_layer(model) is model[1]
    nested = nn.Sequential(nn.Linear(3, 4), nn.Sequential(nn.ReLU(), nn.Linear(4, 2)), nn.Identity())
    assert last_linear_layer(nested) is nested[1][1]
    with pytest.raises(ValueError, match="nn.Linear"):
        last_linear_layer(nn.Sequential(nn.ReLU()))


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 32, 32)])
def test_noise_is_torchvision_fakedata(shape):
    import torchvision
    import torchvision.transforms as T

    fake = torchvision.datasets.FakeData(size=3, image_size=shape, transform=T.ToTensor())
    ours = fake_data_pixels(3, shape)
    for index in range(3):
        assert torch.equal(ours[index], fake[index][0])
    normalized = fake_data_noise(3, shape, lambda images: (images - 0.5) / 0.25)
    assert torch.equal(normalized, (ours - 0.5) / 0.25)


# ------------------------------------------------------------------------------ factory and flags
def test_factory_builds_the_paper_llla_by_default():
    x, y = torch.cat([b[0] for b in tiny_batches()]), torch.cat([b[1] for b in tiny_batches()])
    loader = DataLoader(TensorDataset(x, y), batch_size=4)
    predictor = build_predictor(tiny_layer(tied=False), "llla", train_loader=loader, fit_images=x,
                                fit_labels=y, ood_images=torch.rand(5, 3), seed=3)
    assert isinstance(predictor, PaperLaplacePredictor)
    assert predictor.describe()["implementation"] == "paper" and predictor.describe()["seed"] == 3
    with pytest.raises(ValueError, match="not available with llla_impl='paper'"):
        build_predictor(tiny_layer(tied=False), "llla", train_loader=loader, llla_prior="marglik")


def test_cli_plumbing_of_llla_impl():
    from configuration.cli import build_parser, parse_config

    parser = build_parser("digits")
    default = parse_config("digits", ["--llla"])
    laplace = parse_config("digits", ["--llla", "--llla_impl", "laplace"])
    assert default.calibration.params == {"llla_impl": "paper", "llla_prior": None}
    assert default.run_modifier() == "LLLA_" and laplace.run_modifier() == "LLLA_laplace_"
    assert "--llla_impl" in parser.format_help()


def test_marglik_with_the_paper_llla_is_a_one_line_error(tmp_path, capsys):
    from pipeline.cli import main

    code = main("digits", ["--llla", "--llla_prior", "marglik", "--results_dir", str(tmp_path),
                           "--pretrained_dir", str(tmp_path), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "--llla_prior 'marglik' is not available with --llla_impl paper" in err


@pytest.mark.slow
def test_both_implementations_write_their_own_files(tmp_path):
    from configuration.config import config_from_preset
    from pipeline.run import run_experiment

    options = dict(epochs=3, train_set_size=120, test_set_size=120, attack_set_size=60, batch_size=32,
                   progress=False, figures=False, llla=True, sets=("original", "noise"),
                   results_dir=str(tmp_path / "results"), pretrained_dir=str(tmp_path / "models"))
    paper = run_experiment(config_from_preset("digits", **options))
    laplace = run_experiment(config_from_preset("digits", llla_impl="laplace", **options))
    assert paper.files["attack_results"].name == "small_cnn_digits_LLLA_attack_results.csv"
    assert laplace.files["attack_results"].name == "small_cnn_digits_LLLA_laplace_attack_results.csv"
    notes = json.loads(paper.files["manifest"].read_text())["notes"]["predictors"]
    assert notes["target"]["implementation"] == "paper" and notes["target"]["prior_method"] == "ood_grid"
    assert 1 <= notes["target"]["prior_variance"] <= 1000
    assert notes["target"]["seed"] != notes["shadow"]["seed"]
    again = run_experiment(config_from_preset("digits", **{**options, "cache_scores": False}))
    assert np.array_equal(again.target_scores["Noise"].probs, paper.target_scores["Noise"].probs)
