"""Image files on disk: file lists, class folders, a set of image paths, split and folder checks."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.datasets.folder import IMG_EXTENSIONS

from datasets.domain import NO_LABEL
from datasets.errors import DamagedFileError


class PathSet(Dataset):
    """Image files read as RGB PIL images (like torchvision's ImageFolder loader); label 0."""

    def __init__(self, paths: Sequence[str | Path]):
        self.paths = [str(path) for path in paths]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[Image.Image, int]:
        return read_rgb(self.paths[index]), 0


def read_rgb(path: str | Path) -> Image.Image:
    """The image file ``path`` decoded as RGB; a damaged file is one DamagedFileError naming it."""
    try:
        with open(path, "rb") as handle:
            return Image.open(handle).convert("RGB")
    except (OSError, SyntaxError, ValueError) as error:  # PIL's ways of saying "cannot decode"
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DamagedFileError(f"image {path} cannot be read ({reason}); replace it with an intact "
                               "copy (re-extract the data set) or delete it") from None


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name (ImageFolder's order and extensions)."""
    return sorted((path for path in folder.iterdir()
                   if path.is_file() and path.name.lower().endswith(IMG_EXTENSIONS)),
                  key=lambda path: path.name)


def class_folders(folder: Path) -> list[Path]:
    """Sub-folders of ``folder``, sorted by name (ImageFolder's class order)."""
    return sorted((path for path in folder.iterdir() if path.is_dir() and not path.name.startswith(".")),
                  key=lambda path: path.name)


def no_labels(count: int) -> torch.Tensor:
    return torch.full((count,), NO_LABEL, dtype=torch.int64)


def check_split(split: str, valid: Sequence[str], set_name: str) -> str:
    """``split`` if valid, else a one-line ValueError listing the valid choices."""
    if split not in valid:
        raise ValueError(f"{set_name} has no split {split!r}; choose from {', '.join(valid)}")
    return split


def first_existing(candidates: Sequence[Path], marker: str) -> Path:
    """The first candidate folder that holds ``marker`` (file or folder), else the first one."""
    for candidate in candidates:
        if (Path(candidate) / marker).exists():
            return Path(candidate)
    return Path(candidates[0])
