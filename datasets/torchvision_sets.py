"""torchvision's data set classes and archive downloads, with their errors as one-line messages."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Callable, Iterator, Sequence

from torch.utils.data import Dataset

from datasets.errors import ChecksumError, DataNotFoundError
from datasets.verification import verify_files

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
