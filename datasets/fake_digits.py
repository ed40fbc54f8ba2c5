"""Fake digits: the embedded default's counterpart of the paper's StyleGAN2-ADA "Fake CIFAR-10".

A class-conditional GAN (:mod:`datasets.conditional_gan`) is trained on the attacker's shadow
split. As in the paper, ``num_images`` latents are drawn from one seeded generator and cut into one
equal chunk per class. Each chunk is generated with its class label. Samples that a reference
classifier assigns to another class can be dropped, as the paper did.

The generated images are cached in ``cache_dir/fake_digits_<key>.pt``, a plain tensor dict read
with ``torch.load(weights_only=True)``. The key hashes the GAN's training data, the seed, the sizes
and the GAN's hyper-parameters. The file stores the SHA-256 of its image bytes; a file that fails
the check is regenerated. Filtering is not cached: it runs on every call.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch.utils.data import TensorDataset

from datasets.conditional_gan import GANConfig, resolve_config, sample, train_conditional_gan
from datasets.domain import Domain
from datasets.errors import DataNotFoundError
from datasets.registry import DataRequest, NamedSet, register_dataset
from utils.files import atomic_path, sha256_bytes, torch_save

log = logging.getLogger(__name__)

CACHE_FORMAT = 1        # bump when the cached content or the generator changes meaning
SCORE_BATCH = 1024      # images per forward pass of the reference classifier
Classifier = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class FakeDigits:
    """Generated images with the class each was generated for.

    Attributes
    ----------
    images : float32 tensor (N, C, H, W)
        Pixels in [0, 1], after filtering when it was asked for.
    labels : int64 tensor (N,)
        Intended classes.
    checksum : str
        SHA-256 of the bytes of the *unfiltered* generated images (the cached ones).
    path : Path
        The cache file.
    num_generated : int
        Images before filtering (``num_images``).
    agreement : float or None
        Fraction of the unfiltered images that the reference classifier assigns to their intended
        class, or None without a classifier.
    """

    images: torch.Tensor
    labels: torch.Tensor
    checksum: str
    path: Path
    num_generated: int
    agreement: float | None = None

    def __len__(self) -> int:
        return len(self.images)


def make_fake_digits(shadow_images: torch.Tensor, shadow_labels: torch.Tensor, *, num_images: int,
                     seed: int, cache_dir: str | Path, reference_classifier: Classifier | None = None,
                     filter_misclassified: bool = False, device: torch.device | str = "cpu",
                     domain: Domain | None = None, num_classes: int = 10,
                     gan_config: GANConfig | None = None, progress: bool = True) -> FakeDigits:
    """Train (or load) the GAN's images, then optionally score and filter them.

    Parameters
    ----------
    shadow_images : tensor (N, C, H, W)
        The attacker's images in [0, 1]. Never pass the target's training data.
    shadow_labels : int tensor (N,)
    num_images : int
        Images to generate. They are spread over the classes as evenly as possible, the first
        classes getting one more where it does not divide.
    seed : int
        Fixes GAN training and latents: the same inputs give byte-identical images.
    cache_dir : str or Path
        Folder of the cache file (created when missing).
    reference_classifier : callable, optional
        ``images (B, C, H, W) -> logits or probabilities (B, num_classes)``, e.g. the shadow model.
        It is needed for ``agreement`` and for filtering.
    filter_misclassified : bool
        Drop images that ``reference_classifier`` assigns to another class than intended.
    device : str or torch.device
        Where the GAN trains and the classifier runs.
    domain : Domain, optional
        When given, images are normalised with ``domain.normalize`` before they reach the
        classifier (pass the shadow model's domain when passing the bare model). Without it the
        classifier gets images in [0, 1].
    num_classes : int
    gan_config : GANConfig, optional
        GAN hyper-parameters (part of the cache key). Defaults to ``GANConfig()``.
    progress : bool
        Show the GAN's progress bar.
    """
    if num_images < 1:
        raise ValueError(f"num_images must be at least 1, got {num_images}")
    if filter_misclassified and reference_classifier is None:
        raise ValueError("filter_misclassified=True needs a reference_classifier "
                         "(e.g. the shadow model)")
    shadow_images = torch.as_tensor(shadow_images).float().contiguous().cpu()
    shadow_labels = torch.as_tensor(shadow_labels).long().contiguous().cpu()
    config = resolve_config(gan_config)
    key = cache_key(shadow_images, shadow_labels, num_images, seed, num_classes, config)
    path = Path(cache_dir).expanduser() / f"fake_digits_{key}.pt"
    expected_labels = _intended_labels(num_images, num_classes)

    cached = _load_cache(path, key, expected_labels)
    if cached is None:
        generator = train_conditional_gan(shadow_images, shadow_labels, num_classes, seed=seed,
                                          device=device, progress=progress, config=config)
        images, _ = sample(generator, math.ceil(num_images / num_classes), seed=seed)
        images = images[_chunk_mask(num_images, num_classes)].contiguous()
        _save_cache(path, key, images, expected_labels)
    else:
        images = cached
    checksum = image_checksum(images)

    agreement, labels = None, expected_labels
    if reference_classifier is not None:
        predicted = _predict(reference_classifier, images, device, domain)
        agrees = predicted == expected_labels
        agreement = agrees.float().mean().item()
        log.info("fake digits: the reference classifier agrees with %.1f%% of the %d intended labels",
                 100 * agreement, num_images)
        if filter_misclassified:
            images, labels = images[agrees], expected_labels[agrees]
    return FakeDigits(images, labels, checksum, path, num_images, agreement)


def cache_key(images: torch.Tensor, labels: torch.Tensor, num_images: int, seed: int,
              num_classes: int, config: GANConfig) -> str:
    """16 hex digits identifying the GAN's training data, seed, sizes and hyper-parameters."""
    digest = hashlib.sha256()
    digest.update(images.float().contiguous().cpu().numpy().tobytes())
    digest.update(labels.long().contiguous().cpu().numpy().tobytes())
    digest.update(json.dumps({"format": CACHE_FORMAT, "shape": list(images.shape), "seed": seed,
                              "num_images": num_images, "num_classes": num_classes,
                              "gan": config.to_dict()}, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def image_checksum(images: torch.Tensor) -> str:
    """SHA-256 of the raw bytes of a float32 image tensor."""
    return sha256_bytes(images.float().contiguous().cpu().numpy().tobytes())


def fake_digits_named_set(fake: FakeDigits, domain: Domain) -> NamedSet:
    """The fake images as a scoring set: normalised for ``domain``, labels in its label space."""
    if tuple(fake.images.shape[1:]) != domain.shape:
        raise ValueError(f"fake images have shape {tuple(fake.images.shape[1:])} but the "
                         f"{domain.name!r} domain expects {domain.shape}")
    if len(fake.labels) and int(fake.labels.max()) >= domain.num_classes:
        raise ValueError(f"fake labels reach {int(fake.labels.max())} but the {domain.name!r} "
                         f"domain has {domain.num_classes} classes")
    dataset = TensorDataset(domain.normalize(fake.images), fake.labels.clone())
    return NamedSet("Fake", dataset, in_label_space=True,
                    source=f"conditional GAN on the shadow split ({fake.path})")


def save_sample_grid(images: torch.Tensor, labels: torch.Tensor, path: str | Path,
                     per_class: int = 10) -> Path:
    """Write a PNG with one row per class (labelled on the left) and up to ``per_class`` of its images.

    The tiles are one image on one axes (a montage), not an axes each: the same picture for a
    fraction of the drawing time.

    Parameters
    ----------
    images : tensor (N, C, H, W)
        Pixels in [0, 1], with 1 or 3 channels; greyscale is drawn dark on light (``gray_r``).
    labels : int tensor (N,)
    path : str or Path
        Written atomically.
    """
    from reporting.figures import new_figure, place_axes, save_figure, show_tiles

    labels = torch.as_tensor(labels)
    classes = sorted(set(labels.tolist()))
    tiles = []
    for cls in classes:
        chosen = images[labels == cls][:per_class].detach().float().cpu().clamp(0, 1).numpy()
        row = [1.0 - image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0) for image in chosen]
        tiles += row + [None] * (per_class - len(row))
    rows = max(len(classes), 1)
    tile, left, top, margin = 0.55, 0.45, 0.35, 0.15   # inches
    fig = new_figure(left + tile * per_class + margin, top + tile * rows + margin, layout=None)
    axes = place_axes(fig, left, margin, tile * per_class, tile * rows)
    gap = 2   # pixels between tiles
    height, _ = show_tiles(axes, tiles, per_class, gap)
    axes.set_yticks([row * (height + gap) + (height - 1) / 2 for row in range(len(classes))],
                    [str(cls) for cls in classes])
    axes.tick_params(length=0)
    fig.suptitle("Fake set: conditional GAN samples, one row per class", fontsize="small",
                 y=1 - 0.08 / fig.get_figheight(), va="top")
    return save_figure(fig, path, dpi=80)


def _intended_labels(num_images: int, num_classes: int) -> torch.Tensor:
    """Labels ``(num_images,)``: classes in order, equal chunks, earlier classes one more."""
    counts = [num_images // num_classes + (cls < num_images % num_classes)
              for cls in range(num_classes)]
    return torch.arange(num_classes).repeat_interleave(torch.tensor(counts))


def _chunk_mask(num_images: int, num_classes: int) -> torch.Tensor:
    """Which of ``ceil(num_images / num_classes)`` samples per class to keep ``(C * ceil,)``."""
    per_class = math.ceil(num_images / num_classes)
    counts = _intended_labels(num_images, num_classes).bincount(minlength=num_classes)
    return (torch.arange(per_class).unsqueeze(0) < counts.unsqueeze(1)).flatten()


@torch.no_grad()
def _predict(classifier: Classifier, images: torch.Tensor, device: torch.device | str,
             domain: Domain | None) -> torch.Tensor:
    """Argmax class ``(N,)`` of ``classifier`` over ``images`` ``(N, C, H, W)``, in batches."""
    predictions = []
    for start in range(0, len(images), SCORE_BATCH):
        batch = images[start:start + SCORE_BATCH].to(device)
        if domain is not None:
            batch = domain.normalize(batch)
        predictions.append(classifier(batch).argmax(1).cpu())
    return torch.cat(predictions) if predictions else torch.zeros(0, dtype=torch.int64)


def _load_cache(path: Path, key: str, expected_labels: torch.Tensor) -> torch.Tensor | None:
    """The cached images, or None when the file is missing, unreadable or fails its checks."""
    if not path.exists():
        return None
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
        images, labels = content["images"], content["labels"]
        valid = (content.get("key") == key and isinstance(images, torch.Tensor)
                 and images.dtype == torch.float32 and len(images) == len(expected_labels)
                 and torch.equal(labels, expected_labels)
                 and image_checksum(images) == content.get("sha256"))
    except (OSError, EOFError, RuntimeError, pickle.UnpicklingError, KeyError, TypeError,
            AttributeError, ValueError) as error:  # every way a damaged file fails: regenerate
        log.warning("fake digits cache %s is unreadable (%s); regenerating it", path, error)
        return None
    if not valid:
        log.warning("fake digits cache %s fails its checksum or key; regenerating it", path)
        return None
    return images


def _save_cache(path: Path, key: str, images: torch.Tensor, labels: torch.Tensor) -> None:
    """Write the plain tensor dict atomically."""
    content = {"images": images, "labels": labels, "sha256": image_checksum(images), "key": key,
               "format": CACHE_FORMAT}
    with atomic_path(path) as temporary:
        torch_save(content, temporary)


FAKE_DIGITS_IMAGES = 1000  # generated once per seed and shadow split, then subsampled per attack set


@register_dataset("fake_digits", "Fake")
def build_fake_digits(request: DataRequest) -> NamedSet:
    """The **Fake** row of the embedded default: GAN images trained on the attacker's shadow split.

    Needs ``request.attacker`` (:class:`datasets.registry.AttackerData`: the shadow split and model,
    the cache and figure folders); sizes from ``request.sizes`` (``fake_images``, ``gan_steps``,
    ``filter_fakes``).
    """
    attacker, sizes = request.attacker, request.sizes
    if attacker is None:
        raise DataNotFoundError("fake_digits is generated from the attacker's shadow split; build it "
                                "through the experiment pipeline (experiments/digits_experiments.py)")
    fake = make_fake_digits(
        attacker.images, attacker.labels,
        num_images=sizes.fake_images or FAKE_DIGITS_IMAGES, seed=request.seed,
        cache_dir=str(attacker.cache_dir), reference_classifier=attacker.shadow_model,
        filter_misclassified=sizes.filter_fakes, domain=request.domain,
        num_classes=request.domain.num_classes, progress=attacker.progress,
        gan_config=GANConfig(steps=sizes.gan_steps) if sizes.gan_steps is not None else None)
    named = fake_digits_named_set(fake, request.domain)
    if attacker.figure_dir:
        grid = save_sample_grid(fake.images, fake.labels, Path(attacker.figure_dir) / "fake_digits_samples.png")
        named.artifacts["fake_digits_samples"] = str(grid)
    named.source = f"conditional GAN on the shadow split (sha256 {fake.checksum[:12]}, agreement {fake.agreement})"
    return named
