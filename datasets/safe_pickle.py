"""Reading pickle-format data files without running code from them.

A pickle can name any importable callable and call it while loading (``__reduce__``), so a crafted
data file runs code under ``pickle.load``, whether or not its checksum was verified. The data
files this package reads as pickles (CIFAR-10 and CIFAR-100 python batches and their meta files)
hold only dicts, lists, strings, numbers and NumPy arrays; :func:`load_data_pickle` reads them with
an unpickler that can build those and nothing else. Any other global in the file is refused with a
one-line :class:`UnsafePickleError` naming the file and the global, before anything is called.
"""
from __future__ import annotations

import _codecs
import pickle
from pathlib import Path

import numpy as np

from datasets.errors import DamagedFileError

try:  # NumPy >= 2
    from numpy._core import multiarray as _multiarray, numeric as _numeric
except ImportError:  # NumPy 1.x
    from numpy.core import multiarray as _multiarray, numeric as _numeric


# (module, name) in a pickle -> the object it may stand for. What NumPy arrays and bytes need:
# protocol 2 (the published CIFAR files, written by Python 2) uses _reconstruct/ndarray/dtype,
# protocols 4 and 5 use _reconstruct or _frombuffer; bytes at protocol 2 go through _codecs.encode.
ARRAY_GLOBALS = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    **{(module, "_reconstruct"): _multiarray._reconstruct
       for module in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(module, "scalar"): _multiarray.scalar for module in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(module, "_frombuffer"): _numeric._frombuffer for module in ("numpy.core.numeric", "numpy._core.numeric")},
    ("_codecs", "encode"): _codecs.encode,
    ("__builtin__", "bytes"): bytes, ("builtins", "bytes"): bytes,  # b"" at protocol 2 (empty arrays)
}


FIX = "delete it and get the published file again"


class UnsafePickleError(DamagedFileError):
    """A pickle-format data file names a global that such files never hold (it could run code)."""


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Builds containers, strings, numbers and NumPy arrays; refuses every other global."""

    def __init__(self, handle, path: Path, fix: str):
        super().__init__(handle, encoding="latin1")  # Python 2 pickles, as torchvision reads them
        self.path, self.fix = path, fix

    def find_class(self, module: str, name: str):
        found = ARRAY_GLOBALS.get((module, name))
        if found is None:
            raise UnsafePickleError(
                f"{self.path} names {module}.{name}, which a data file of arrays never holds; refusing "
                f"to unpickle it (unpickling would run code from the file); {self.fix}")
        return found

    def persistent_load(self, pid):
        raise UnsafePickleError(f"{self.path} uses persistent ids, which a data file of arrays never holds; "
                                f"{self.fix}")


def load_data_pickle(path: str | Path, fix: str = FIX) -> object:
    """The object pickled in data file ``path``, built only from containers, strings, numbers and
    NumPy arrays (never object arrays); ``fix`` (what to do) ends every error message.

    Raises
    ------
    UnsafePickleError
        The file names any other global (e.g. a ``__reduce__`` payload); nothing from it ran.
    DamagedFileError
        The file is empty, truncated or not a pickle; one line naming it.
    """
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            loaded = _ArraysOnlyUnpickler(handle, path, fix).load()
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, MemoryError, UnicodeDecodeError) as error:
        raise DamagedFileError(f"{path} is empty, truncated or not a pickle ({type(error).__name__}: "
                               f"{str(error)[:120] or 'no detail'}); {fix}") from None
    _refuse_object_arrays(loaded, path, fix)
    return loaded


def _refuse_object_arrays(value: object, path: Path, fix: str) -> None:
    """Object arrays hold arbitrary Python objects: a data file of pixels never has one."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, np.ndarray) and item.dtype.hasobject:
            raise UnsafePickleError(f"{path} holds an array of Python objects, which a data file of "
                                    f"arrays never holds; {fix}")
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
