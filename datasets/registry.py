"""Named data sets, built on request in a target's domain.

A builder takes a :class:`DataRequest` and returns a :class:`NamedSet`. Names are lower-case keys
(``"cifar10"``, ``"svhn"``, ``"fake_digits"``); a perturbation is applied to any set by wrapping its
name: ``"permuted(cifar10)"``, ``"scaled(svhn)"``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.utils.data import Dataset

from datasets.domain import Domain


@dataclass(frozen=True)
class DataRequest:
    """Everything a builder may need to produce a set for one target.

    Attributes
    ----------
    domain : Domain
        The target's input domain (size, channels, normalisation, label space).
    data_root : Path
        Folder holding the users' data files (``--data_root``).
    split : str
        ``"train"`` or ``"test"``: which published split to read, where a set has several.
    seed : int
        Fixes every random choice (subsets, permutations, noise, generated images).
    download : bool
        Fetch missing files from the published source (needs the network).
    allow_pickle : bool
        Opt-in to unpickling generator files, which runs code from the file.
    verify_checksums : bool
        Data whose checksum differs from the published one is an error (False: ``--no_verify``,
        a recorded warning; :func:`datasets.verification.checksum_mismatch`).
    generator_pkl, stylegan_repo : str, optional
        StyleGAN2-ADA generator pickle of the Fake sets and the checkout that unpickles it.
    augment : bool
        The set's random training transform (the paper's Stanford Dogs training) instead of its test one.
    resize : {"squash", "crop"}, optional
        How images reach the domain's size (None: the domain's own; :mod:`datasets.transforms`).
    sizes : GeneratedSizes
        Sizes of generated and tiled sets (tests make them small).
    attacker : AttackerData, optional
        What attacker-side generators (``fake_digits``) may use; None outside a run.
    """

    domain: Domain
    data_root: Path = Path("data")
    split: str = "test"
    seed: int = 42
    download: bool = False
    allow_pickle: bool = False
    verify_checksums: bool = True
    generator_pkl: str | None = None
    stylegan_repo: str | None = None
    augment: bool = False
    resize: str | None = None
    sizes: GeneratedSizes = field(default_factory=lambda: GeneratedSizes())
    attacker: AttackerData | None = None


@dataclass(frozen=True)
class GeneratedSizes:
    """Sizes of generated or tiled sets; None: the builder's default (the paper's)."""

    num_images: int | None = None      # StyleGAN Fake sets: images generated
    fake_images: int | None = None     # fake_digits: images generated
    gan_steps: int | None = None       # fake_digits: GAN training steps
    filter_fakes: bool = False         # fake_digits: drop fakes the shadow model misclassifies
    photo_tile: int | None = None      # sample_photos: patch size in pixels


@dataclass(frozen=True)
class AttackerData:
    """What attacker-side generators may use: the shadow split and model, never the target's."""

    images: torch.Tensor               # the shadow training split in [0, 1], (N, C, H, W)
    labels: torch.Tensor               # (N,)
    shadow_model: nn.Module | None     # for the agreement rate and ``filter_fakes``
    cache_dir: Path                    # where generated sets are cached
    figure_dir: Path | None = None     # where sample grids go
    progress: bool = False


@dataclass
class NamedSet:
    """A data set ready for scoring.

    ``dataset[i]`` returns ``(image, label)``: a float32 tensor of shape ``domain.shape``,
    normalised for the target, and an int label in the target's label space or ``-1``.
    """

    name: str                # display name in result tables, e.g. "STL-10"
    dataset: Dataset
    in_label_space: bool     # True when labels are target classes
    source: str = ""         # where it came from (path, generator, parent set)
    artifacts: dict = field(default_factory=dict)  # files made while building (e.g. a sample grid)

    def __len__(self) -> int:
        return len(self.dataset)


@dataclass(frozen=True)
class SetDeclaration:
    """What a set key means before anything is built.

    Attributes
    ----------
    key : the ``--sets`` name (``"stl10"``)
    display_name : its row name in result tables (``"STL-10"``; presets may respell it; None: the
        name its builder gives it)
    paper_split : the published split the paper read it from (``DataRequest.split`` for its rows)
    paper_seed : the seed the paper's data set class fixes whatever the run's ``--seed``
    derived : it perturbs the Original non-members (their rows, in their order) instead of loading data
    """

    key: str
    display_name: str | None = None
    paper_split: str | None = None
    paper_seed: int | None = None
    derived: bool = False


Builder = Callable[[DataRequest], NamedSet]
_BUILDERS: dict[str, Builder] = {}
_DECLARATIONS: dict[str, SetDeclaration] = {}
_WRAPPED = re.compile(r"^(?P<outer>\w+)\((?P<inner>.+)\)$")


def declare_set(declaration: SetDeclaration) -> SetDeclaration:
    """Record what set ``declaration.key`` means (builders do this through :func:`register_dataset`)."""
    if declaration.key in _DECLARATIONS:
        raise ValueError(f"data set {declaration.key!r} is declared twice")
    _DECLARATIONS[declaration.key] = declaration
    return declaration


def register_dataset(key: str, display_name: str | None = None, paper_split: str | None = None,
                     paper_seed: int | None = None) -> Callable[[Builder], Builder]:
    """Decorator registering ``builder(request) -> NamedSet`` under ``key``, with the set's
    declaration (:class:`SetDeclaration`; the display name defaults to the key)."""

    def decorate(builder: Builder) -> Builder:
        if key in _BUILDERS:
            raise ValueError(f"data set {key!r} is registered twice")
        declare_set(SetDeclaration(key, display_name, paper_split, paper_seed))
        _BUILDERS[key] = builder
        return builder

    return decorate


def set_declaration(key: str) -> SetDeclaration | None:
    """The declaration of set ``key`` (registered builders and the derived sets), or None."""
    _load_builtin_builders()
    return _DECLARATIONS.get(key)


def set_declarations() -> dict[str, SetDeclaration]:
    """Every declared set key -> its declaration."""
    _load_builtin_builders()
    return dict(_DECLARATIONS)


def derived_set_names() -> tuple[str, ...]:
    """The set keys that perturb the Original non-members (``original`` and each perturbation)."""
    _load_builtin_builders()
    return tuple(key for key, declared in _DECLARATIONS.items() if declared.derived)


def dataset_names() -> tuple[str, ...]:
    """All registered base set names (perturbations excluded)."""
    _load_builtin_builders()
    return tuple(sorted(_BUILDERS))


def build_dataset(name: str, request: DataRequest) -> NamedSet:
    """Build the set called ``name`` (e.g. ``"svhn"`` or ``"permuted(cifar10)"``) for ``request``."""
    from datasets.perturbations import PERTURBATIONS, perturb

    _load_builtin_builders()
    wrapped = unwrap(name)
    if wrapped:
        outer, inner = wrapped
        if outer not in PERTURBATIONS:
            raise ValueError(f"unknown perturbation {outer!r} in {name!r}; "
                             f"choose from {', '.join(sorted(PERTURBATIONS))}")
        return perturb(outer, build_dataset(inner, request), request.domain, request.seed)
    if name not in _BUILDERS:
        raise ValueError(f"unknown data set {name!r}; choose from {', '.join(dataset_names())} "
                         f"or wrap one in {', '.join(sorted(PERTURBATIONS))}(...)")
    return _BUILDERS[name](request)


def unwrap(name: str) -> tuple[str, str] | None:
    """``"permuted(cifar10)"`` -> ``("permuted", "cifar10")``; ``None`` for a name that wraps nothing."""
    match = _WRAPPED.match(name.strip())
    return (match["outer"], match["inner"]) if match else None


def _load_builtin_builders() -> None:
    """Import the modules whose builders register themselves (once)."""
    import datasets.builtin  # noqa: F401  (side effect: registration)
    import datasets.perturbations  # noqa: F401  (the derived sets' declarations)


def as_path(path: str | Path) -> Path:
    return Path(path).expanduser()
