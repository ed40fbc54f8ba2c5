"""Shared pieces of the image-set builders: the domain transform, a lazily transformed view of a
base set, image lists, file and folder checksums, and one-line errors for missing or damaged data.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import transforms as T
from torchvision.datasets.folder import IMG_EXTENSIONS

from datasets.domain import NO_LABEL, Domain
from datasets.errors import ChecksumError, DamagedFileError, DataNotFoundError
from datasets.verification import checksum_mismatch
from utils.files import md5_file, write_json

# Domains whose images the paper resized keeping the aspect ratio, then centre-cropped
# (Stanford Dogs: Resize(224) + CenterCrop(224)); others were squashed (CIFAR-10: Resize((32, 32))).
CENTRE_CROP_DOMAINS = ("stanford_dogs",)
RESIZE_MODES = ("squash", "crop")


class ConvertMode:
    """``PIL.Image.convert(mode)`` as a picklable transform."""

    def __init__(self, mode: str):
        self.mode = mode

    def __call__(self, image: Image.Image) -> Image.Image:
        return image if image.mode == self.mode else image.convert(self.mode)


def domain_transform(domain: Domain, resize: str | None = None) -> T.Compose:
    """PIL image -> float32 tensor of ``domain.shape``, normalised with the domain's mean/std.

    Parameters
    ----------
    resize : {"squash", "crop"} or None
        ``"squash"``: ``Resize((s, s))`` (the paper's CIFAR-10 pipeline); ``"crop"``: ``Resize(s)``
        then ``CenterCrop(s)`` (its Stanford Dogs pipeline). ``None`` picks by ``domain.name``.
    """
    mode = resize or ("crop" if domain.name in CENTRE_CROP_DOMAINS else "squash")
    if mode not in RESIZE_MODES:
        raise ValueError(f"resize {mode!r} is not one of {', '.join(RESIZE_MODES)}")
    size = domain.image_size
    steps: list = [ConvertMode("L" if domain.channels == 1 else "RGB")]
    steps += [T.Resize((size, size))] if mode == "squash" else [T.Resize(size), T.CenterCrop(size)]
    return T.Compose(steps + [T.ToTensor(), T.Normalize(domain.mean, domain.std)])


def request_transform(request) -> T.Compose:
    """:func:`domain_transform` for a :class:`DataRequest` (honours ``options["resize"]``)."""
    return domain_transform(request.domain, request.options.get("resize"))


class TransformedSet(Dataset):
    """``base`` (items ``(PIL image, anything)``) seen through ``transform``, with fixed labels.

    Attributes
    ----------
    indices : ndarray (N,)
        Positions in ``base`` of the samples of this view, in order.
    labels : LongTensor (N,)
        The label returned for each sample (target classes or ``-1``).
    """

    def __init__(self, base: Dataset, transform: Callable, labels: Sequence[int] | torch.Tensor,
                 indices: Sequence[int] | None = None):
        self.base, self.transform = base, transform
        self.indices = np.arange(len(base)) if indices is None else np.asarray(indices, dtype=np.int64)
        self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
        if len(self.labels) != len(self.indices):
            raise ValueError(f"{len(self.labels)} labels for {len(self.indices)} samples")

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.base[int(self.indices[index])][0]
        return self.transform(image), int(self.labels[index])


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


def verify_files(set_name: str, folder: Path, files: Sequence[tuple[str, str | None]],
                 how_to_get: str, verify: bool = True) -> None:
    """Raise DataNotFoundError naming every missing file; a file whose MD5 differs is a
    ChecksumError (``verify``) or a recorded warning (``--no_verify``, :mod:`datasets.verification`)."""
    folder = Path(folder)
    missing = [name for name, _ in files if not (folder / name).is_file()]
    if missing:
        raise DataNotFoundError(f"{set_name}: missing {', '.join(missing)} in {folder}; {how_to_get}")
    for name, expected in files:
        if expected and (actual := md5_file(folder / name)) != expected:
            checksum_mismatch(f"{set_name}: {folder / name} has md5 {actual}, expected {expected}", verify,
                              f"delete it and {how_to_get}")


_TORCHVISION_MODULES = ("cifar", "svhn", "stl10")  # torchvision.datasets modules we open


@contextlib.contextmanager
def _torchvision_presence_checks_only() -> Iterator[None]:
    """While open, torchvision's CIFAR/SVHN/STL-10 constructors check that their files exist but
    not their MD5s (``--no_verify``; this module compares the MD5s itself and warns)."""
    import importlib

    modules = [importlib.import_module(f"torchvision.datasets.{name}") for name in _TORCHVISION_MODULES]
    saved = [module.check_integrity for module in modules]
    for module in modules:
        module.check_integrity = lambda fpath, md5=None: os.path.isfile(fpath)
    try:
        yield
    finally:
        for module, original in zip(modules, saved):
            module.check_integrity = original


def open_torchvision(make: Callable[[], Dataset], set_name: str, folder: Path,
                     files: Sequence[tuple[str, str | None]], url: str, download: bool,
                     verify: bool = True) -> Dataset:
    """Run torchvision's constructor ``make``; turn its "not found or corrupted" RuntimeError
    (and failed downloads) into one-line DataNotFoundError/ChecksumError naming the file.

    With ``verify=False`` (``--no_verify``) files whose MD5 differs from ``files`` are used after a
    recorded warning instead of failing."""
    how_to_get = f"get it from {url} or pass --download"
    checks = contextlib.nullcontext()
    if not verify and all((Path(folder) / name).is_file() for name, _ in files):
        verify_files(set_name, folder, files, how_to_get, verify=False)
        checks = _torchvision_presence_checks_only()
    try:
        with checks:
            return make()
    except RuntimeError as error:
        if "not found or corrupted" not in str(error):
            raise
        verify_files(set_name, folder, files, how_to_get, verify)
        raise DataNotFoundError(f"{set_name}: torchvision could not read {folder} "
                                f"({error}); {how_to_get}") from error
    except OSError as error:
        if not download:
            raise
        raise DataNotFoundError(f"{set_name}: download from {url} failed ({error}); "
                                f"put the files in {folder} by hand") from error


def fetch_archive(download: Callable, set_name: str, source, root: Path) -> None:
    """``download(url, root, filename=, md5=)`` (torchvision's ``download_and_extract_archive``)
    with failures turned into one-line DataNotFoundError/ChecksumError."""
    try:
        download(source.url, str(root), filename=source.filename, md5=source.md5)
    except OSError as error:
        raise DataNotFoundError(f"{set_name}: downloading {source.url} failed ({error}); "
                                f"put {source.filename} in {root} by hand") from error
    except RuntimeError as error:
        raise ChecksumError(f"{set_name}: downloaded {source.filename} does not have md5 {source.md5} "
                            f"({error}); delete {Path(root) / source.filename} and retry") from error


# ---------------------------------------------------------------------------------------------
# Folder checksums


def _walk_sorted(folder: Path):
    """``os.walk`` top-down with sub-folders and files sorted: yields file paths."""
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            yield Path(root) / name


def paper_folder_md5(folder: str | Path, chunk_size: int = 4096) -> str:
    """The paper's folder checksum (``_check_folder_integrity`` in its ``datasets/*.py``).

    Walk ``folder`` top-down, sub-folders and file names sorted; for every 4,096-byte chunk of
    every file, feed ``md5(chunk).digest()`` into one running MD5. Paths are not hashed, so the
    value depends only on file contents in walk order. Used to compare with the paper's values.
    """
    digest = hashlib.md5()
    for path in _walk_sorted(Path(folder)):
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(chunk_size), b""):
                digest.update(hashlib.md5(chunk).digest())
    return digest.hexdigest()


def folder_md5(folder: str | Path, chunk_size: int = 1 << 20) -> str:
    """This package's folder checksum: names and contents.

    Files are taken in order of their POSIX path relative to ``folder``; for each, the MD5 is fed
    the UTF-8 path, a NUL byte, the size as 8 little-endian bytes, then the file's bytes. Renamed,
    added, removed or changed files all change the value.
    """
    folder = Path(folder)
    digest = hashlib.md5()
    for relative, path in sorted((p.relative_to(folder).as_posix(), p) for p in _walk_sorted(folder)):
        digest.update(relative.encode("utf-8") + b"\0" + path.stat().st_size.to_bytes(8, "little"))
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(chunk_size), b""):
                digest.update(chunk)
    return digest.hexdigest()


def folder_signature(folder: str | Path) -> str:
    """Cheap fingerprint (relative path, size, mtime of every file) deciding when to re-hash."""
    folder = Path(folder)
    digest = hashlib.md5()
    for path in _walk_sorted(folder):
        stat = path.stat()
        digest.update(f"{path.relative_to(folder).as_posix()}\t{stat.st_size}\t{stat.st_mtime_ns}\n"
                      .encode("utf-8"))
    return digest.hexdigest()


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


def verify_folder(folder: Path, expected: str, stamp: Path, set_name: str, fix: str,
                  verify: bool = True) -> None:
    """Check that :func:`paper_folder_md5` of ``folder`` equals ``expected``: a ChecksumError
    otherwise (``verify``), or a recorded warning (``--no_verify``, :mod:`datasets.verification`).

    The folder's checksum is remembered in the JSON ``stamp`` (kept outside ``folder``) with
    :func:`folder_signature`; the folder is hashed again only when that signature changes.
    """
    signature = folder_signature(folder)
    cached = read_json(stamp)
    actual = cached.get("paper_folder_md5") if cached.get("signature") == signature else None
    if actual is None:
        actual = paper_folder_md5(folder)
        try:
            write_json(stamp, {"folder": str(folder), "paper_folder_md5": actual, "signature": signature})
        except OSError:
            pass  # a read-only data folder is hashed again next time
    if actual != expected:
        checksum_mismatch(f"{set_name}: folder {folder} has md5 {actual} (paper's folder checksum), "
                          f"expected {expected}", verify, fix)
