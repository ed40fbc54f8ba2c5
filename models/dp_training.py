"""DP-SGD training with Opacus (Abadi et al. 2016, "Deep Learning with Differential Privacy").

Used by :func:`models.training.train_model` and :func:`models.training.train_model_on_dataset` when
``TrainConfig.dp_epsilon`` is set (the scripts' ``--dp_epsilon``). The recipe is the package's (Adam
with ``lr`` and ``weight_decay``, cross-entropy with ``label_smoothing``) made private by Opacus:
per-sample gradients clipped to ``dp_max_grad_norm``, Gaussian noise with the noise multiplier that
Opacus' RDP accountant gives for ``dp_epsilon`` at ``dp_delta`` over the run's epochs and sampling
rate, and Poisson sampling of the batches (rate ``1 / batches per epoch``, as the accountant assumes).
The batch sampling is seeded with ``config.seed`` and the noise with a seed derived from it, so one
seed gives one model on one machine. Models with BatchNorm (which mixes samples) are refused.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from models.training import EpochLog, TrainConfig, deterministic_algorithms, make_loss, make_optimizer
from utils.progress import bar_disabled
from utils.seeding import derive_seed, seeded

ACCOUNTANT = "rdp"   # Opacus' Renyi-DP accountant (its moments accountant); conservative beside "prv"


@dataclass(frozen=True)
class DPAccounting:
    """The privacy of one DP-SGD run: the noise it adds and the epsilon the accountant gives for it."""

    epsilon: float            # the accountant's epsilon after every step (<= the target dp_epsilon)
    delta: float
    noise_multiplier: float   # noise standard deviation / max_grad_norm
    sample_rate: float        # Poisson sampling probability of each row per step
    steps: int
    max_grad_norm: float
    accountant: str = ACCOUNTANT

    def to_dict(self) -> dict:
        return {"epsilon": self.epsilon, "delta": self.delta, "noise_multiplier": self.noise_multiplier,
                "sample_rate": self.sample_rate, "steps": self.steps, "max_grad_norm": self.max_grad_norm,
                "accountant": self.accountant}


def dp_accounting(num_samples: int, config: TrainConfig) -> DPAccounting:
    """What training ``num_samples`` rows with ``config`` (``dp_epsilon`` set) costs; no model needed,
    so a loaded checkpoint's manifest can state it too.

    Raises
    ------
    ValueError when ``config.dp_epsilon`` is None or ``num_samples`` < 1.
    """
    from opacus.accountants import RDPAccountant
    from opacus.accountants.utils import get_noise_multiplier

    if config.dp_epsilon is None:
        raise ValueError("dp_accounting needs a TrainConfig with dp_epsilon set (--dp_epsilon)")
    if num_samples < 1:
        raise ValueError(f"dp_accounting: the training set is empty ({num_samples} rows)")
    batches = math.ceil(num_samples / config.batch_size)
    sample_rate, steps = 1 / batches, batches * config.epochs
    if steps == 0:
        return DPAccounting(0.0, config.dp_delta, 0.0, sample_rate, 0, config.dp_max_grad_norm)
    with warnings.catch_warnings():   # the search tries very large noise, whose best RDP order is the largest
        warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
        noise = get_noise_multiplier(target_epsilon=config.dp_epsilon, target_delta=config.dp_delta,
                                     sample_rate=sample_rate, steps=steps, accountant=ACCOUNTANT)
    accountant = RDPAccountant()
    accountant.history = [(noise, sample_rate, steps)]
    return DPAccounting(float(accountant.get_epsilon(config.dp_delta)), config.dp_delta, float(noise),
                        sample_rate, steps, config.dp_max_grad_norm)


def check_dp_model(model: nn.Module) -> None:
    """Raise a one-line ``ValueError`` when Opacus cannot train ``model`` privately (e.g. BatchNorm)."""
    from opacus.validators import ModuleValidator

    errors = ModuleValidator.validate(model, strict=False)
    if errors:
        reasons = sorted({str(error).splitlines()[0] for error in errors})
        raise ValueError(f"--dp_epsilon: {type(model).__name__} cannot be trained with DP-SGD: {'; '.join(reasons)} "
                         f"(BatchNorm mixes samples; choose an architecture without it, e.g. --model_arch small_cnn)")


def train_dp(model: nn.Module, dataset: Dataset, config: TrainConfig, device: torch.device | str = "cpu",
             desc: str = "train", progress: bool = True) -> list[EpochLog]:
    """Train ``model`` in place with DP-SGD on a map-style ``dataset`` of ``(image (C, H, W), label)``.

    Returns one :class:`models.training.EpochLog` per epoch; ``EpochLog.epsilon`` is the accountant's
    epsilon spent so far (the last one equals :func:`dp_accounting`'s). The model leaves without
    Opacus' hooks or per-sample gradients: its state dict is a plain one.
    """
    from opacus import PrivacyEngine

    if config.amp:
        raise ValueError("--dp_epsilon cannot be combined with --amp (Opacus' per-sample gradients are fp32)")
    if len(dataset) == 0:
        raise ValueError(f"{desc}: the training set is empty")
    check_dp_model(model)
    device = torch.device(device)
    accounting = dp_accounting(len(dataset), config)
    model.to(device)
    model.train()
    loader = DataLoader(dataset, batch_size=config.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(config.seed))
    with warnings.catch_warnings():   # Opacus warns that secure_mode (a CSPRNG) is off: runs here are seeded
        warnings.filterwarnings("ignore", message="Secure RNG turned off")
        engine = PrivacyEngine(accountant=ACCOUNTANT)
        private, optimizer, private_loader = engine.make_private(
            module=model, optimizer=make_optimizer(model, config), data_loader=loader,
            noise_multiplier=accounting.noise_multiplier, max_grad_norm=config.dp_max_grad_norm,
            poisson_sampling=True, noise_generator=torch.Generator(device).manual_seed(
                derive_seed(config.seed, "dp_noise")))
    try:
        with deterministic_algorithms(), seeded(derive_seed(config.seed, "train")), warnings.catch_warnings():
            # Opacus' hooks on the first layer fire for the loss's gradient, not the input's: expected
            warnings.filterwarnings("ignore", message="Full backward hook is firing")
            return _epochs(private, optimizer, private_loader, engine, config, device, desc, progress)
    finally:
        private._close()   # removes the hooks and per-sample gradients from ``model``
        model.eval()


def _epochs(private: nn.Module, optimizer, loader, engine, config: TrainConfig, device: torch.device,
            desc: str, progress: bool) -> list[EpochLog]:
    loss_fn, history = make_loss(config), []
    bar = tqdm(total=config.epochs, desc=f"{desc} (DP)", disable=bar_disabled(progress), leave=False)
    with bar:
        for epoch in range(1, config.epochs + 1):
            total_loss, correct, seen = 0.0, 0, 0
            for x, y in loader:   # Poisson sampling may draw an empty batch: its step adds noise alone
                x, y = x.to(device), y.to(device)
                logits = private(x)
                loss = loss_fn(logits, y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total_loss += loss.item() * len(y) if len(y) else 0.0
                correct += int((logits.detach().argmax(1) == y).sum())
                seen += len(y)
            history.append(EpochLog(epoch, total_loss / max(seen, 1), correct / max(seen, 1),
                                     epsilon=float(engine.get_epsilon(config.dp_delta))))
            bar.update()
            bar.set_postfix(loss=f"{history[-1].loss:.3f}", eps=f"{history[-1].epsilon:.2f}")
    return history
