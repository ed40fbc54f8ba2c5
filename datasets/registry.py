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
    options : dict
        Builder-specific extras (e.g. a generator path), passed through untouched.
    """

    domain: Domain
    data_root: Path = Path("data")
    split: str = "test"
    seed: int = 42
    download: bool = False
    allow_pickle: bool = False
    options: dict = field(default_factory=dict)


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


Builder = Callable[[DataRequest], NamedSet]
_BUILDERS: dict[str, Builder] = {}
_WRAPPED = re.compile(r"^(?P<outer>\w+)\((?P<inner>.+)\)$")


def register_dataset(key: str) -> Callable[[Builder], Builder]:
    """Decorator registering ``builder(request) -> NamedSet`` under ``key``."""

    def decorate(builder: Builder) -> Builder:
        if key in _BUILDERS:
            raise ValueError(f"data set {key!r} is registered twice")
        _BUILDERS[key] = builder
        return builder

    return decorate


def dataset_names() -> tuple[str, ...]:
    """All registered base set names (perturbations excluded)."""
    _load_builtin_builders()
    return tuple(sorted(_BUILDERS))


def build_dataset(name: str, request: DataRequest) -> NamedSet:
    """Build the set called ``name`` (e.g. ``"svhn"`` or ``"permuted(cifar10)"``) for ``request``."""
    from datasets.perturbations import PERTURBATIONS, perturb

    _load_builtin_builders()
    match = _WRAPPED.match(name.strip())
    if match:
        outer, inner = match["outer"], match["inner"]
        if outer not in PERTURBATIONS:
            raise ValueError(f"unknown perturbation {outer!r} in {name!r}; "
                             f"choose from {', '.join(sorted(PERTURBATIONS))}")
        return perturb(outer, build_dataset(inner, request), request.domain, request.seed)
    if name not in _BUILDERS:
        raise ValueError(f"unknown data set {name!r}; choose from {', '.join(dataset_names())} "
                         f"or wrap one in {', '.join(sorted(PERTURBATIONS))}(...)")
    return _BUILDERS[name](request)


def _load_builtin_builders() -> None:
    """Import the modules whose builders register themselves (once)."""
    import datasets.builtin  # noqa: F401  (side effect: registration)


def as_path(path: str | Path) -> Path:
    return Path(path).expanduser()
