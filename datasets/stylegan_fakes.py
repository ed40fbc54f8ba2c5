"""Fake CIFAR-10 and Fake Dogs: StyleGAN2-ADA images generated as in the paper.

Protocol (the reference README and the paper's ``datasets/fake_*.py``): ``torch.manual_seed(seed)``;
``z = torch.randn(N, G.z_dim)`` on the CPU; for a conditional ``G`` (``c_dim > 0``) ``z`` is cut into
``c_dim`` equal chunks and chunk ``i`` is generated with the one-hot label ``i``; one image per call,
in order (StyleGAN draws its per-layer noise from the seeded RNG, so batching changes the images);
truncation psi 1.0 for CIFAR-10, 0.7 for dogs; each image is moved to the CPU and saved as the PNG
of ``(img * 127.5 + 128).clamp(0, 255).to(uint8)`` at ``Images/<class>/<index:05d>.png`` (index
restarting per class; the unconditional dog generator writes one folder ``dog``).

Checksums: the generator pickle is checked against its published MD5 before it is unpickled. A
generated folder is recorded in ``<folder>.json`` beside it (settings, :func:`folder_md5`, the
paper-definition MD5, a file signature) and verified against that record on every later build;
a missing, incomplete or changed folder is regenerated when the generator is at hand. The paper's
own folder MD5s (:data:`datasets.sources.FOLDER_MD5`) are compared and reported, not enforced:
bit-identical images need the authors' GPU and library versions.
"""
from __future__ import annotations

import contextlib
import inspect
import logging
import os
import pickle
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import PIL
import torch
from PIL import Image
from torchvision.datasets.utils import download_url

from datasets.errors import ChecksumError, DataNotFoundError
from datasets.image_folder import PathSet, check_split, class_folders, list_images, no_labels
from datasets.transforms import TransformedSet, request_transform
from datasets.verification import (checksum_mismatch, folder_md5, folder_signature, paper_folder_md5,
                                   read_json)
from datasets.registry import DataRequest, NamedSet, as_path, register_dataset
from datasets.sources import FOLDER_MD5, SOURCES
from utils.devices import resolve_device
from utils.files import md5_file, write_json
from utils.seeding import seeded

log = logging.getLogger(__name__)

PAPER_SEED = 42
PAPER_CIFAR10_FOLDERS = ("plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
FOLDER_ALIASES = {"plane": "airplane", "car": "automobile"}  # the paper's folder -> CIFAR-10 class


class PickleNotAllowedError(PermissionError):
    """Unpickling a generator was not opted into."""


@dataclass(frozen=True)
class FakeSpec:
    """A generated set: where it lives, which generator makes it, and how."""

    key: str
    display: str
    folder: str                    # under --data_root
    generator: str                 # key in datasets.sources.SOURCES
    num_images: int
    class_names: tuple[str, ...]   # folder per generator class (one for unconditional)
    truncation_psi: float
    labelled: bool                 # class folders are target classes (CIFAR-10)
    strata: int                    # unconditional: split stratified over this many generation chunks


FAKE_SETS = {
    "fake_cifar10": FakeSpec("fake_cifar10", "Fake CIFAR-10", "fake_cifar10", "stylegan2_cifar10",
                             10_000, PAPER_CIFAR10_FOLDERS, 1.0, True, 1),
    "fake_dogs": FakeSpec("fake_dogs", "Fake Dogs", "fake_afhq_dogs", "stylegan2_afhqdog",
                          5_000, ("dog",), 0.7, False, 10),
}


@contextlib.contextmanager
def _import_path(folder: str | Path | None):
    """Put ``folder`` (a stylegan2-ada-pytorch checkout: dnnlib, torch_utils) first on sys.path."""
    if not folder:
        yield
        return
    entry = str(Path(folder).expanduser())
    sys.path.insert(0, entry)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(entry)


def load_generator(generator_pkl: str | Path, allow_pickle: bool = False) -> torch.nn.Module:
    """``G_ema`` from a StyleGAN2-ADA pickle; refuses unless ``allow_pickle``."""
    if not allow_pickle:
        raise PickleNotAllowedError(f"refusing to unpickle {generator_pkl}: unpickling runs code from "
                                    f"the file; pass --allow_pickle (allow_pickle=True) if you trust it")
    try:
        with open(generator_pkl, "rb") as handle:
            data = pickle.load(handle)
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(f"unpickling {generator_pkl} needs module {error.name!r} (dnnlib, "
                                  f"torch_utils of NVlabs/stylegan2-ada-pytorch); clone it and pass "
                                  f"its path as stylegan_repo (--stylegan_repo)") from error
    if not isinstance(data, dict) or "G_ema" not in data:
        raise ValueError(f"{generator_pkl} holds no 'G_ema' generator")
    return data["G_ema"]


def _truncation_kwargs(generator: torch.nn.Module, psi: float) -> dict:
    """``{"truncation_psi": psi}``, or ``{}`` for psi 1 (as the paper called the CIFAR-10 G)."""
    if psi == 1.0:
        return {}
    parameters = inspect.signature(generator.forward).parameters.values()
    if not any(p.name == "truncation_psi" or p.kind is p.VAR_KEYWORD for p in parameters):
        raise ValueError(f"generator {type(generator).__name__} takes no truncation_psi; cannot apply "
                         f"truncation_psi={psi}")
    return {"truncation_psi": psi}


def _folder_names(class_names: Sequence[str] | None, c_dim: int) -> tuple[str, ...]:
    if c_dim == 0:
        names = tuple(class_names or ("images",))
        if len(names) != 1:
            raise ValueError(f"an unconditional generator writes one folder, got class_names {names}")
        return names
    names = tuple(class_names) if class_names else tuple(str(i) for i in range(c_dim))
    if len(names) != c_dim:
        raise ValueError(f"the generator has {c_dim} classes but {len(names)} class_names were given")
    return names


def save_png(pixels: np.ndarray, path: Path) -> None:
    """Save ``(H, W, C)`` uint8 pixels as PNG (PIL defaults, as the paper)."""
    Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels).save(path)


def record_path(out_dir: Path, images_dirname: str = "Images") -> Path:
    return Path(out_dir) / f"{images_dirname}.json"


def generate_fake_images(generator_pkl: str | Path, out_dir: str | Path, num_images: int,
                         class_names: Sequence[str] | None = None, seed: int = PAPER_SEED,
                         truncation_psi: float = 1.0, allow_pickle: bool = False,
                         device: str | torch.device | None = None, *, images_dirname: str = "Images",
                         generator_md5: str | None = None, batch_size: int = 1,
                         stylegan_repo: str | Path | None = None) -> dict:
    """Generate ``num_images`` PNGs into ``out_dir/images_dirname`` (atomically) and record them.

    Parameters
    ----------
    class_names : folder names, one per generator class (unconditional: one name; default "images").
    generator_md5 : checked before unpickling when given (ChecksumError on mismatch).
    batch_size : images per generator call; 1 reproduces the paper, larger is faster but other images.
    stylegan_repo : checkout of NVlabs/stylegan2-ada-pytorch, needed to unpickle its generators.

    Returns
    -------
    dict : the record written to ``out_dir/<images_dirname>.json``.
    """
    out_dir, generator_pkl = Path(out_dir), Path(generator_pkl)
    pkl_md5 = md5_file(generator_pkl)
    if generator_md5 and pkl_md5 != generator_md5:
        raise ChecksumError(f"generator {generator_pkl} has md5 {pkl_md5}, expected {generator_md5}; "
                            f"download it again, or pass --no_verify to use this file")
    final, temporary = out_dir / images_dirname, out_dir / f".{images_dirname}.tmp-{os.getpid()}"
    device = resolve_device(None if device is None else str(device))
    with _import_path(stylegan_repo):
        generator = load_generator(generator_pkl, allow_pickle).eval().requires_grad_(False).to(device)
        c_dim = int(getattr(generator, "c_dim", 0))
        names = _folder_names(class_names, c_dim)
        if num_images % len(names):
            raise ValueError(f"num_images={num_images} does not split into {len(names)} equal classes")
        kwargs, per_class = _truncation_kwargs(generator, truncation_psi), num_images // len(names)
        shutil.rmtree(temporary, ignore_errors=True)
        try:
            with seeded(seed), torch.no_grad():
                latents = torch.randn(num_images, generator.z_dim)
                for class_index, name in enumerate(names):
                    (temporary / name).mkdir(parents=True)
                    label = None
                    if c_dim:
                        label = torch.zeros(1, c_dim, device=device)
                        label[:, class_index] = 1
                    for start in range(0, per_class, batch_size):
                        stop = min(start + batch_size, per_class)
                        codes = latents[class_index * per_class + start: class_index * per_class + stop]
                        labels = None if label is None else label.expand(len(codes), -1)
                        images = generator(codes.to(device), labels, **kwargs).cpu()
                        pixels = (images.permute(0, 2, 3, 1) * 127.5 + 128).clamp(0, 255).to(torch.uint8)
                        for offset, array in enumerate(pixels.numpy()):
                            save_png(array, temporary / name / f"{start + offset:05d}.png")
            record = {"num_images": num_images, "class_names": list(names), "seed": seed,
                      "truncation_psi": truncation_psi, "batch_size": batch_size,
                      "generator": str(generator_pkl), "generator_md5": pkl_md5, "device": str(device),
                      "torch": torch.__version__, "pillow": PIL.__version__,
                      "folder_md5": folder_md5(temporary),
                      "paper_folder_md5": paper_folder_md5(temporary)}
            _replace_folder(temporary, final)
        finally:
            shutil.rmtree(temporary, ignore_errors=True)
    record["signature"] = folder_signature(final)
    write_json(record_path(out_dir, images_dirname), record)
    return record


def _replace_folder(new: Path, final: Path) -> None:
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    if final.exists():
        os.replace(final, old)
    os.replace(new, final)
    shutil.rmtree(old, ignore_errors=True)


def generated_images(folder: Path) -> tuple[list[Path], np.ndarray, list[str]]:
    """Image paths in ImageFolder order, the class-folder index of each, and the folder names."""
    classes = class_folders(folder)
    paths, folder_index = [], []
    for index, class_folder in enumerate(classes):
        files = list_images(class_folder)
        paths += files
        folder_index += [index] * len(files)
    return paths, np.asarray(folder_index, dtype=np.int64), [c.name for c in classes]


def check_generated(out_dir: Path, images_dirname: str, num_images: int,
                    paper_md5: str | None = None) -> str | None:
    """``None`` when the folder holds ``num_images`` images matching its record, else the problem.

    A complete folder without a record (e.g. made by the paper's code) is accepted and recorded;
    its paper-definition MD5 is compared with ``paper_md5`` (logged, not enforced).
    """
    folder, record_file = Path(out_dir) / images_dirname, record_path(out_dir, images_dirname)
    if not folder.is_dir():
        return "missing"
    count = len(generated_images(folder)[0])
    if count != num_images:
        return f"{folder} holds {count} images, expected {num_images}"
    record, signature = read_json(record_file), folder_signature(folder)
    if record.get("signature") == signature:
        return None
    actual = folder_md5(folder)
    if "folder_md5" in record and actual != record["folder_md5"]:
        return f"{folder} has md5 {actual}, recorded {record['folder_md5']} in {record_file.name}"
    if "folder_md5" not in record:
        record = {"source": "found on disk", "num_images": count, "folder_md5": actual,
                  "paper_folder_md5": paper_folder_md5(folder)}
        _compare_with_paper(folder, record["paper_folder_md5"], paper_md5)
    record["signature"] = signature
    with contextlib.suppress(OSError):
        write_json(record_file, record)
    return None


def _generator_file(spec: FakeSpec, request: DataRequest, root: Path, what: str, missing: bool) -> Path:
    """The generator pickle to regenerate from (downloaded if asked); one-line errors otherwise."""
    source = SOURCES[spec.generator]
    given = request.generator_pkl
    path = Path(given).expanduser() if given else root / source.filename
    error, again = (DataNotFoundError, "") if missing else (ChecksumError, "re")
    if not path.is_file() and not (request.download and not given):
        raise error(f"{what}; to {again}generate them download {source.url} (md5 {source.md5}) and pass "
                    f"--generator_pkl PATH --allow_pickle (or --download --allow_pickle)")
    if not request.allow_pickle:
        raise error(f"{what}; {again}generating them unpickles {path}, which runs code from the file: "
                    f"pass --allow_pickle (allow_pickle=True) if you trust it")
    if not path.is_file():
        try:
            download_url(source.url, str(path.parent), path.name, md5=source.md5)
        except OSError as failure:
            raise DataNotFoundError(f"{what}; downloading {source.url} failed ({failure})") from failure
    return path


def _regenerate(spec: FakeSpec, request: DataRequest, root: Path, dirname: str, num_images: int,
                problem: str) -> None:
    missing = problem == "missing"
    what = f"{spec.display}: " + (f"no images in {root / dirname}" if missing else problem)
    pkl = _generator_file(spec, request, root, what, missing)
    if not missing:
        log.warning("%s; regenerating", what)
    expected, verify = SOURCES[spec.generator].md5, request.verify_checksums
    if expected and not verify and (actual := md5_file(pkl)) != expected:
        checksum_mismatch(f"generator {pkl} has md5 {actual}, expected {expected}", False, "")
    record = generate_fake_images(pkl, root, num_images, spec.class_names, seed=request.seed,
                                  truncation_psi=spec.truncation_psi, allow_pickle=True,
                                  images_dirname=dirname,
                                  generator_md5=expected if verify else None,
                                  stylegan_repo=request.stylegan_repo)
    _compare_with_paper(root / dirname, record["paper_folder_md5"], _paper_md5(spec, dirname))


def _paper_md5(spec: FakeSpec, dirname: str) -> str | None:
    return FOLDER_MD5.get(f"{spec.folder}/Images") if dirname == "Images" else None


def _compare_with_paper(folder: Path, actual: str, paper: str | None) -> None:
    if paper and actual == paper:
        log.info("%s: identical to the paper's images (folder md5 %s)", folder, paper)
    elif paper:
        log.warning("%s: images differ from the paper's (folder md5 %s, paper %s); bit-identical "
                    "images need the authors' GPU and library versions", folder, actual, paper)


def build_fake(spec: FakeSpec, request: DataRequest) -> NamedSet:
    """One half (``train``/``test``) of the stratified 50/50 split of a generated set.

    Uses ``request.sizes.num_images`` (default the paper's), ``generator_pkl``, ``stylegan_repo``,
    ``verify_checksums``. Sets other than the paper's (seed 42, default size) live in
    ``Images_seed<seed>_n<num_images>`` so they never overwrite it.
    """
    from sklearn.model_selection import train_test_split

    split = check_split(request.split, ("train", "test"), spec.key)
    root = as_path(request.data_root) / spec.folder
    num_images = request.sizes.num_images or spec.num_images
    default = (request.seed, num_images) == (PAPER_SEED, spec.num_images)
    dirname = "Images" if default else f"Images_seed{request.seed}_n{num_images}"
    problem = check_generated(root, dirname, num_images, _paper_md5(spec, dirname))
    if problem:
        _regenerate(spec, request, root, dirname, num_images, problem)
    paths, folder_index, names = generated_images(root / dirname)
    strata = folder_index
    if len(names) == 1 and spec.strata > 1:  # the paper's 10 folders of an unconditional G
        strata = np.arange(len(paths)) // -(-len(paths) // spec.strata)
    halves = train_test_split(np.arange(len(paths)), test_size=0.5, random_state=request.seed,
                              shuffle=True, stratify=strata)
    chosen = halves[0] if split == "train" else halves[1]
    classes = [FOLDER_ALIASES.get(name, name) for name in names]
    in_space = spec.labelled and all(name in request.domain.class_names for name in classes)
    if in_space:
        to_target = np.array([request.domain.class_names.index(name) for name in classes])
        labels = to_target[folder_index[chosen]]
    else:
        labels = no_labels(len(chosen))
    return NamedSet(spec.display, TransformedSet(PathSet(paths), request_transform(request), labels,
                                                 chosen), in_space, str(root / dirname))


@register_dataset("fake_cifar10", FAKE_SETS["fake_cifar10"].display, paper_split="train", paper_seed=42)
def build_fake_cifar10(request: DataRequest) -> NamedSet:
    """Fake CIFAR-10 (10,000 class-conditional StyleGAN2-ADA images), labels in CIFAR-10 space."""
    return build_fake(FAKE_SETS["fake_cifar10"], request)


@register_dataset("fake_dogs", FAKE_SETS["fake_dogs"].display, paper_split="train", paper_seed=42)
def build_fake_dogs(request: DataRequest) -> NamedSet:
    """Fake Dogs (5,000 AFHQ-dog StyleGAN2-ADA images, psi 0.7), labels -1."""
    return build_fake(FAKE_SETS["fake_dogs"], request)
