"""Where the paper's data comes from, and the checksums published for it.

Provenance of the MD5s:

- archives and generator pickles: the URLs and MD5s the paper's code downloads with (listed for
  users in ``docs/data_sources.md``);
- extracted folders and the Stanford Dogs split files: the class attributes of the paper's code
  (``datasets/{afhq,stanford_dogs,fake_cifar10,fake_dogs}.py``). Folder MD5s use the paper's folder
  definition, :func:`datasets.verification.paper_folder_md5`.

CIFAR-10/100, SVHN and STL-10 are read with torchvision, whose classes carry their own file lists
and MD5s (``CIFAR10.train_list``, ``SVHN.split_list``, ``STL10.train_list``, ...); they are not
copied here so there is one source of truth.
"""
from __future__ import annotations

from dataclasses import dataclass

NVIDIA_CDN = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained"
STANFORD_DOGS_SITE = "http://vision.stanford.edu/aditya86/ImageNetDogs"


@dataclass(frozen=True)
class Source:
    """One published file: where to get it, the name it is stored under, and its MD5."""

    url: str
    filename: str
    md5: str | None


SOURCES: dict[str, Source] = {
    "afhq": Source("https://www.dropbox.com/s/raw/t9l9o3vsx2jai3z/afhq.zip", "afhq.zip",
                   "6909887208505a6e70d732fa20629995"),
    "stanford_dogs_images": Source(f"{STANFORD_DOGS_SITE}/images.tar", "images.tar",
                                   "1bb1f2a596ae7057f99d7d75860002ef"),
    "stanford_dogs_lists": Source(f"{STANFORD_DOGS_SITE}/lists.tar", "lists.tar",
                                  "edbb9f16854ec66506b5f09b583e0656"),
    # stored under the paper's file names, inside the fake set's folder
    "stylegan2_cifar10": Source(f"{NVIDIA_CDN}/cifar10.pkl", "pretrained_net_cifar10.pkl",
                                "cf50a75907b9f117266583a355ed3824"),
    "stylegan2_afhqdog": Source(f"{NVIDIA_CDN}/afhqdog.pkl", "pretrained_net_afhqdog.pkl",
                                "8fa2162d23fe76012bec12b1910b4e65"),
    "authors_checkpoints": Source(
        "https://hessenbox.tu-darmstadt.de/dl/fiBg5znMtAagRe58sCrrLtyg/pretrained_models.zip",
        "pretrained_models.zip", None),
}

# MD5 of single extracted files, keyed by path relative to --data_root (from the paper's code).
FILE_MD5: dict[str, str] = {
    "stanford_dogs/train_list.mat": "d37f459eacccfa4d299373dffba9648d",
    "stanford_dogs/test_list.mat": "66f60c285efbc3ce2fb7893bd26c6b80",
}

# Paper-definition MD5 of extracted/generated folders, keyed by path relative to --data_root.
# The fake folders' values hold for the paper's default sizes (10,000 / 5,000 images, seed 42) on
# the authors' hardware; see datasets.stylegan_fakes for how they are used.
FOLDER_MD5: dict[str, str] = {
    "afhq": "7d4838ee32104e015c8efd68f3069319",
    "stanford_dogs/Images": "c24ab0237efb75419885481a3b2dcacf",
    "fake_cifar10/Images": "bca9b625c927281f07ab838fcf647d28",
    "fake_afhq_dogs/Images": "7bed6525fb3ef93bc7a34a694ef97fc6",
}
