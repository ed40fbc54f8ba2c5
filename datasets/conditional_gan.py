"""A small class-conditional GAN for 8x8 grey images that trains in seconds on a CPU.

It stands in, for the embedded ``digits`` default, for the StyleGAN2-ADA generator that the paper
(Hintersdorf et al., *To Trust or Not To Trust Prediction Scores for Membership Inference
Attacks*, IJCAI 2022) used to make "fake" CIFAR-10 images. Train it only on the attacker's (shadow)
data, never on the target's training set.

Design: fully connected networks, as in the original conditional GAN (Mirza & Osindero, 2014). An
8x8 image is only 64 numbers, and tiny convolutions run many times slower on a CPU. The generator
concatenates a label embedding with the latent and ends in a sigmoid. The discriminator sees the
image with the one-hot label and has an auxiliary classifier head (AC-GAN, Odena et al., 2017), so
each sample looks like its intended class. With a few hundred training images a plain GAN
collapses to one image per class, so the generator also maximises a mode-seeking term (Mao et al.,
2019). What it returns is an exponential moving average of the generator's weights (as StyleGAN's
``G_ema``).
"""
from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from utils.progress import bar_disabled
from utils.threads import single_thread
from utils.seeding import derive_seed, seeded


@dataclass(frozen=True)
class GANConfig:
    """Hyper-parameters of one GAN training run. They are part of the fake-data cache key.

    With ``epochs=None``, the number of epochs is derived from ``steps`` (generator updates), so
    the run time stays the same whatever the size of the data set.
    """

    steps: int = 3000              # generator updates, used when epochs is None
    epochs: int | None = None      # passes over the data; overrides steps
    batch_size: int = 64
    z_dim: int = 32
    hidden: int = 256              # widest hidden layer of both networks
    lr: float = 1e-3               # Adam, both networks
    betas: tuple[float, float] = (0.5, 0.999)
    aux_weight: float = 1.0        # auxiliary class cross-entropy (both networks)
    diversity_weight: float = 5.0  # mode-seeking term of the generator
    ema_decay: float = 0.99        # per-step decay of the returned generator's weight average

    def to_dict(self) -> dict:
        return asdict(self)


class ConditionalGenerator(nn.Module):
    """Maps latents ``z`` ``(N, z_dim)`` and labels ``(N,)`` to images in [0, 1], ``(N, *shape)``.

    Parameters
    ----------
    z_dim, num_classes : int
    hidden : int
        Width of the last hidden layer. The first hidden layer has half as many units.
    shape : tuple of int
        Image shape ``(C, H, W)``, by default ``(1, 8, 8)``.
    """

    def __init__(self, z_dim: int = 32, num_classes: int = 10, hidden: int = 256,
                 shape: tuple[int, int, int] = (1, 8, 8)):
        super().__init__()
        self.z_dim, self.num_classes, self.shape = z_dim, num_classes, tuple(shape)
        self.embed = nn.Embedding(num_classes, z_dim)
        self.net = nn.Sequential(
            nn.Linear(2 * z_dim, hidden // 2), nn.LeakyReLU(0.2),
            nn.Linear(hidden // 2, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, math.prod(self.shape)), nn.Sigmoid(),
        )

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Images ``(N, *shape)`` in [0, 1] for ``z`` ``(N, z_dim)`` and int ``labels`` ``(N,)``."""
        return self.net(torch.cat([z, self.embed(labels)], dim=1)).view(-1, *self.shape)


class ConditionalDiscriminator(nn.Module):
    """Scores images ``(N, *shape)`` in [0, 1] together with their labels ``(N,)``.

    ``forward`` returns a realism logit ``(N,)`` and auxiliary class logits ``(N, num_classes)``.
    """

    def __init__(self, num_classes: int = 10, hidden: int = 256, pixels: int = 64):
        super().__init__()
        self.num_classes = num_classes
        self.features = nn.Sequential(
            nn.Linear(pixels + num_classes, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden // 2), nn.LeakyReLU(0.2),
        )
        self.realism = nn.Linear(hidden // 2, 1)
        self.classify = nn.Linear(hidden // 2, num_classes)

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        one_hot = F.one_hot(labels, self.num_classes).to(images.dtype)
        h = self.features(torch.cat([images.flatten(1) * 2.0 - 1.0, one_hot], dim=1))
        return self.realism(h).squeeze(1), self.classify(h)


def train_conditional_gan(images: torch.Tensor, labels: torch.Tensor, num_classes: int = 10, *,
                          seed: int = 42, epochs: int | None = None, batch_size: int | None = None,
                          device: torch.device | str = "cpu", progress: bool = True,
                          config: GANConfig | None = None) -> ConditionalGenerator:
    """Train a conditional generator on the attacker's images.

    Parameters
    ----------
    images : tensor (N, C, 8, 8)
        Training images in [0, 1]: the shadow split, never the target's training data.
    labels : int tensor (N,)
        Classes in ``0 .. num_classes - 1``.
    num_classes : int
    seed : int
        Fixes the initialisation, the batch order and the latents. The global RNG state is
        restored afterwards.
    epochs, batch_size : int, optional
        Override ``config.epochs`` and ``config.batch_size`` when given.
    device : str or torch.device
    progress : bool
        Show a tqdm bar.
    config : GANConfig, optional
        Defaults to ``GANConfig()``.

    Returns
    -------
    ConditionalGenerator
        The weight average, in eval mode, on ``device``.
    """
    config = resolve_config(config, epochs=epochs, batch_size=batch_size)
    images, labels = _check_training_data(images, labels, num_classes)
    epochs = config.epochs or math.ceil(config.steps / math.ceil(len(images) / config.batch_size))
    device = torch.device(device)
    with single_thread(), seeded(seed):
        return _train(images.to(device), labels.to(device), num_classes, seed, epochs, config,
                      device, progress)


def resolve_config(config: GANConfig | None = None, *, epochs: int | None = None,
                   batch_size: int | None = None) -> GANConfig:
    """``config`` (or the default) with ``epochs``/``batch_size`` overridden where given, checked."""
    config = config or GANConfig()
    if epochs is not None:
        config = replace(config, epochs=epochs)
    if batch_size is not None:
        config = replace(config, batch_size=batch_size)
    if config.epochs is not None and config.epochs < 1:
        raise ValueError(f"epochs must be at least 1 (or None to use steps), got {config.epochs}")
    if config.batch_size < 1 or config.steps < 1:
        raise ValueError(f"batch_size and steps must be at least 1, got {config.batch_size} "
                         f"and {config.steps}")
    return config


def _train(images: torch.Tensor, labels: torch.Tensor, num_classes: int, seed: int, epochs: int,
           config: GANConfig, device: torch.device, progress: bool) -> ConditionalGenerator:
    """The loop of :func:`train_conditional_gan`, on checked arguments, under a seeded RNG."""
    generator = ConditionalGenerator(config.z_dim, num_classes, config.hidden,
                                     tuple(images.shape[1:])).to(device)
    critic = ConditionalDiscriminator(num_classes, config.hidden, images[0].numel()).to(device)
    average = copy.deepcopy(generator).requires_grad_(False)
    g_opt = torch.optim.Adam(generator.parameters(), lr=config.lr, betas=config.betas)
    d_opt = torch.optim.Adam(critic.parameters(), lr=config.lr, betas=config.betas)
    order_rng = torch.Generator().manual_seed(derive_seed(seed, "gan", "order"))
    latent_rng = torch.Generator().manual_seed(derive_seed(seed, "gan", "latent"))

    bar = tqdm(range(epochs), desc="conditional GAN", disable=bar_disabled(progress), leave=False)
    for _ in bar:
        order = torch.randperm(len(images), generator=order_rng).to(device)
        for start in range(0, len(order), config.batch_size):
            batch = order[start:start + config.batch_size]
            real, real_labels = images[batch], labels[batch]
            half = (len(batch) + 1) // 2  # sample i and i + half share a label (mode seeking)
            fake_labels = torch.randint(num_classes, (half,), generator=latent_rng)
            fake_labels = fake_labels.repeat(2)[:len(batch)].to(device)
            z = torch.randn(len(batch), config.z_dim, generator=latent_rng).to(device)
            fake = generator(z, fake_labels)

            real_score, real_class = critic(real, real_labels)
            fake_score, _ = critic(fake.detach(), fake_labels)
            d_loss = (F.softplus(-real_score).mean() + F.softplus(fake_score).mean()
                      + config.aux_weight * F.cross_entropy(real_class, real_labels))
            d_opt.zero_grad(set_to_none=True)
            d_loss.backward()
            d_opt.step()

            fake_score, fake_class = critic(fake, fake_labels)
            g_loss = (F.softplus(-fake_score).mean()
                      + config.aux_weight * F.cross_entropy(fake_class, fake_labels)
                      - config.diversity_weight * _mode_seeking(fake, z, half))
            g_opt.zero_grad(set_to_none=True)
            g_loss.backward()
            g_opt.step()
            with torch.no_grad():
                for kept, current in zip(average.parameters(), generator.parameters()):
                    kept.lerp_(current, 1.0 - config.ema_decay)
        bar.set_postfix(d_loss=f"{d_loss.item():.3f}", g_loss=f"{g_loss.item():.3f}")
    return average.eval()


def _mode_seeking(fake: torch.Tensor, z: torch.Tensor, half: int) -> torch.Tensor:
    """Mean ratio of image distance to latent distance over the pairs ``(i, i + half)``.

    The pairs share a label. The generator maximises this scalar, so it cannot ignore ``z``.
    """
    pairs = len(fake) - half
    if pairs < 1:
        return fake.new_zeros(())
    image_gap = (fake[:pairs] - fake[half:]).abs().flatten(1).mean(1)
    latent_gap = (z[:pairs] - z[half:]).abs().mean(1)
    return (image_gap / latent_gap).mean()


@torch.no_grad()
def sample(generator: ConditionalGenerator, num_per_class: int,
           seed: int = 42) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``num_per_class`` images of every class. The result is fixed by ``seed``.

    As in the paper, the latents are ``randn(N, z_dim)`` from one seeded generator, and chunk ``i``
    gets label ``i``. The global RNG is not touched.

    Returns
    -------
    images : float32 tensor (num_classes * num_per_class, C, 8, 8), in [0, 1], on the CPU
    labels : int64 tensor (num_classes * num_per_class,), sorted by class
    """
    if num_per_class < 0:
        raise ValueError(f"num_per_class must be non-negative, got {num_per_class}")
    device = next(generator.parameters()).device
    total = generator.num_classes * num_per_class
    z = torch.randn(total, generator.z_dim, generator=torch.Generator().manual_seed(seed))
    labels = torch.arange(generator.num_classes).repeat_interleave(num_per_class)
    was_training = generator.training
    generator.eval()
    with single_thread():
        images = generator(z.to(device), labels.to(device)).float().cpu().contiguous()
    generator.train(was_training)
    return images, labels




def _check_training_data(images: torch.Tensor, labels: torch.Tensor,
                         num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images as float32 ``(N, C, H, W)`` in [0, 1] and labels as int64 ``(N,)``, or ValueError."""
    images = torch.as_tensor(images).float()
    labels = torch.as_tensor(labels).long()
    if images.dim() != 4:
        raise ValueError(f"images must have shape (N, C, H, W), e.g. (N, 1, 8, 8); "
                         f"got {tuple(images.shape)}")
    if labels.dim() != 1 or len(images) != len(labels):
        raise ValueError(f"{len(images)} images but labels of shape {tuple(labels.shape)}")
    if len(images) == 0:
        raise ValueError("the GAN's training set is empty")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"labels must lie in 0..{num_classes - 1}, "
                         f"got {labels.min().item()}..{labels.max().item()}")
    if images.min() < 0 or images.max() > 1:
        raise ValueError("images must lie in [0, 1]; undo the normalisation (domain.denormalize) first")
    return images, labels
