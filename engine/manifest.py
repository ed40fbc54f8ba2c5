"""The JSON manifest written beside every run's results: config, seed, versions, checksums, timings."""
from __future__ import annotations

import hashlib
import platform
import sys
import time
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping

if TYPE_CHECKING:
    import torch

from utils.files import write_json

TRACKED_PACKAGES = ("torch", "torchvision", "numpy", "scikit-learn", "pandas", "torchmetrics",
                    "laplace-torch", "matplotlib", "tqdm")


def package_versions() -> dict[str, str]:
    """Versions of Python and the packages that shape results (``"absent"`` if not installed)."""
    versions = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    import torch

    versions["cuda"] = torch.version.cuda or "none"
    return versions


def tensor_digest(tensor: "torch.Tensor") -> str:
    """sha256 of a tensor's bytes (shape and dtype included), for data checksums."""
    digest = hashlib.sha256(f"{tuple(tensor.shape)}{tensor.dtype}".encode())
    digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


@contextmanager
def timed_into(timings: dict[str, float], stage: str) -> Iterator[None]:
    """Add the wall time of the block, in seconds, to ``timings[stage]``; tell the stage hook
    (:func:`stage_hook`) as the block starts and after it ends."""
    hook = _STAGE_HOOK.get()
    if hook is not None:
        hook(stage, None)
    start = time.perf_counter()
    try:
        yield
    finally:
        seconds = time.perf_counter() - start
        timings[stage] = round(timings.get(stage, 0.0) + seconds, 4)
    if hook is not None:
        hook(stage, seconds)


# called as hook(stage, None) when a timed stage starts and hook(stage, seconds) when it ends
_STAGE_HOOK: ContextVar[Callable[[str, float | None], None] | None] = ContextVar("stage_hook", default=None)


@contextmanager
def stage_hook(hook: Callable[[str, float | None], None] | None) -> Iterator[None]:
    """Within the block, every timed stage reports its start and end to ``hook`` (e.g. the console's
    :class:`pipeline.console.StageLines`); the previous hook is restored after it."""
    token = _STAGE_HOOK.set(hook)
    try:
        yield
    finally:
        _STAGE_HOOK.reset(token)


@dataclass(frozen=True)
class StageRecord:
    """What a stage reports for the manifest; the run adds it (:meth:`Manifest.record`)."""

    timings: Mapping[str, float] = field(default_factory=dict)
    checksums: Mapping[str, str] = field(default_factory=dict)
    models: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    notes: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class Manifest:
    """Accumulates what a run did; :meth:`write` saves it atomically."""

    config: dict
    checksums: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    models: dict = field(default_factory=dict)
    outputs: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)   # file name -> sha256 of every file of the run's set
    notes: dict = field(default_factory=dict)
    splits: dict = field(default_factory=dict)  # the run's indices file: path, protocol, sha256

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        """Add the wall time of the block, in seconds, to ``timings[stage]``."""
        with timed_into(self.timings, stage):
            yield

    def record(self, stage: StageRecord) -> None:
        """Add what a stage reported (its timings, checksums, models and notes)."""
        for name, total in stage.timings.items():
            self.timings[name] = round(self.timings.get(name, 0.0) + total, 4)
        self.checksums.update(stage.checksums)
        self.models.update(stage.models)
        self.notes.update(stage.notes)

    def write(self, path: str | Path) -> Path:
        write_json(path, {
            "config": self.config,
            "seed": self.config.get("seed"),
            "versions": package_versions(),
            "checksums": self.checksums,
            "models": self.models,
            "timings_s": self.timings,
            "outputs": self.outputs,
            "splits": self.splits,
            "files": self.files,
            "notes": self.notes,
        })
        return Path(path)
