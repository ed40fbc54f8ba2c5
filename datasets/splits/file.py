"""The indices file written beside every run's results: ``{stem}splits.npz``.

It holds, as int64 arrays in the order the run used them:

- ``target_train``, ``shadow_train``, ``target_test``, ``shadow_test``: indices into the pools
  named by ``train_pool`` / ``test_pool`` (both models' test splits are the same array under the
  paper's Stanford Dogs protocol);
- ``target_members``, ``target_non_members``, ``shadow_members``, ``shadow_non_members``: the
  attack subsets, as indices into the same pools (members: train pool; non-members: test pool);
- ``set_<key>`` (and ``set_<key>_base`` where the set selects from a file list): the rows of each
  non-member set taken from another data set; the Permuted, Scaled, No Normalization and Noise
  rows are built from ``target_non_members`` in its order;
- ``protocol``, ``about`` (JSON: what every array indexes), as strings.

Read it with ``numpy.load(path)`` (no pickles). The zip is written with fixed timestamps, so the
same indices give the same bytes and the same sha256 (recorded in the manifest).
"""
from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Mapping

import numpy as np

from utils.files import atomic_path

_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def write_split_file(path: str | Path, arrays: Mapping[str, np.ndarray]) -> str:
    """Write ``arrays`` as an ``.npz`` atomically and deterministically; returns its sha256.

    Keys must be valid file names (letters, digits, ``_``, ``-``, ``.``).
    """
    path = Path(path)
    with atomic_path(path) as temporary:
        with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for key, value in arrays.items():
                buffer = io.BytesIO()
                np.lib.format.write_array(buffer, np.asarray(value), allow_pickle=False)
                info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                archive.writestr(info, buffer.getvalue())
    return sha256_file(path)


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def split_arrays(splits, pools: Mapping[str, str], non_member_indices: Mapping) -> dict[str, np.ndarray]:
    """The arrays of the indices file for ``splits`` (:class:`datasets.splits.seeded.Splits`).

    Parameters
    ----------
    pools : ``{"train_pool": description, "test_pool": description}``
    non_member_indices : key -> :class:`pipeline.stages.data.SetIndices`
    """
    arrays: dict[str, np.ndarray] = {name: np.asarray(value, dtype=np.int64)
                                     for name, value in splits.as_dict().items()}
    arrays.update({name: np.asarray(value, dtype=np.int64) for name, value in splits.attack_indices().items()})
    about = {**pools, "protocol": splits.protocol,
             "attack subsets": "indices into the train pool (members) / test pool (non-members)"}
    for key, rows in non_member_indices.items():
        arrays[f"set_{key}"] = rows.positions
        if rows.base is not None:
            arrays[f"set_{key}_base"] = rows.base
        about[f"set_{key}"] = rows.description
    arrays["protocol"] = np.array(splits.protocol)
    arrays["about"] = np.array(json.dumps(about, indent=1))
    return arrays
