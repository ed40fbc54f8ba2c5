"""One run's output files as one set: staged apart, committed together, listed with checksums.

A run writes every file (CSVs, figures, report, indices) into a staging folder
``{results_dir}/.staging-{stem}-{pid}``. :meth:`OutputSet.commit` then lists each staged file with
its sha256 in the manifest, and moves the set into ``results_dir``:

1. ``COMMIT.json`` is written in the staging folder (the set is complete; what to replace);
2. the previous manifest of the stem is removed, so a half-moved folder never looks complete;
3. every staged file is renamed into place, files of the previous set that the new one lacks are
   deleted (e.g. the old report and figures after a ``--no_figures`` run);
4. the manifest is renamed last and the staging folder removed.

A set that replaces one made with another configuration (e.g. another seed; see
:func:`replaced_run`) is announced in one warning and recorded in the new manifest
(``notes.replaced_run``).

An interrupt before step 1 leaves the previous set untouched (the staging folder is deleted); an
interrupt after it is rolled forward, in this process or by the next run over the folder. The next
run also removes staging folders and ``*.tmp`` files of processes that no longer run.
"""
from __future__ import annotations

import json
import logging
import os
import re
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    from engine.manifest import Manifest

try:
    import fcntl
except ImportError:  # not POSIX: commits of concurrent runs are not serialised
    fcntl = None

from utils.naming import manifest_name
from utils.files import (TEMP_SUFFIX, process_alive, remove_stale_temporaries, remove_tree, sha256_file,
                         write_json)

log = logging.getLogger(__name__)

STAGING_PREFIX = ".staging-"
COMMIT_MARKER = "COMMIT.json"
LOCK_NAME = ".outputs.lock"
SHARED_FILES = ("tradeoff.png",)   # summaries of the whole folder: never deleted as another set's leftover
# Config keys that say where or how a run ran, not what it computed: a rerun differing only in
# these does not replace "another configuration's" results.
NOT_DEFINING = ("train", "device", "download", "cache_scores", "figures", "progress", "ray_address",
                "results_dir", "pretrained_dir", "data_root", "stylegan_repo")
_move = os.replace  # one rename of a commit (tests interrupt it)
_STAGING = re.compile(r"^\.staging-(?P<stem>.*)-(?P<pid>\d+)$")


@contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """An exclusive lock on ``folder`` (``.outputs.lock``) while sets are committed or recovered."""
    if fcntl is None:
        yield
        return
    with open(folder / LOCK_NAME, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def recover_folder(results_dir: str | Path) -> None:
    """Finish or discard what killed runs left in ``results_dir``.

    Staging folders of processes that no longer run are rolled forward when they hold
    ``COMMIT.json`` (the set was complete) and deleted otherwise; stale ``*.tmp`` files in the
    folder and in its ``cache/`` are deleted.
    """
    results_dir = Path(results_dir)
    for staging in sorted(results_dir.glob(f"{STAGING_PREFIX}*")):
        match = _STAGING.match(staging.name)
        if not staging.is_dir() or not match or process_alive(int(match.group("pid"))):
            continue
        if (staging / COMMIT_MARKER).is_file():
            log.warning("finishing the interrupted commit of %s", staging)
            _finish_commit(staging, results_dir)
        else:
            log.info("removing %s, left by an interrupted run", staging)
            remove_tree(staging)
    for folder in (results_dir, results_dir / "cache"):
        for path in remove_stale_temporaries(folder):
            log.info("removed %s, left by an interrupted run", path)


class OutputSet:
    """The staging folder of one run; use as a context manager around everything that writes.

    On an exception (KeyboardInterrupt included) before :meth:`commit`, the staging folder is
    deleted and ``results_dir`` keeps its previous set.
    """

    def __init__(self, results_dir: str | Path, stem: str) -> None:
        self.results_dir = Path(results_dir)
        self.stem = stem
        self.directory = self.results_dir / f"{STAGING_PREFIX}{stem}-{os.getpid()}"
        self.committed: dict[str, Path] = {}

    def __enter__(self) -> "OutputSet":
        self.results_dir.mkdir(parents=True, exist_ok=True)
        with folder_lock(self.results_dir):
            recover_folder(self.results_dir)
        remove_tree(self.directory)
        self.directory.mkdir()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if (self.directory / COMMIT_MARKER).is_file():   # interrupted while moving: finish the move
            with folder_lock(self.results_dir):
                _finish_commit(self.directory, self.results_dir)
        remove_tree(self.directory)

    def staged_files(self) -> list[Path]:
        """Files written into the staging folder so far (temporaries excluded), sorted by name."""
        return sorted(path for path in self.directory.iterdir()
                      if path.is_file() and not path.name.endswith(TEMP_SUFFIX) and path.name != COMMIT_MARKER)

    def commit(self, manifest: Manifest) -> dict[str, Path]:
        """List every staged file with its sha256 in ``manifest``, write it, move the set into place.

        Parameters
        ----------
        manifest : engine.manifest.Manifest
            Its ``files`` receive ``{file name: sha256}``; it is written as ``{stem}manifest.json``.

        Returns
        -------
        dict of file name -> final path (the manifest included)
        """
        name = manifest_name(self.stem)
        staged = [path for path in self.staged_files() if path.name != name]
        manifest.files = {path.name: sha256_file(path) for path in staged}
        with folder_lock(self.results_dir):
            replaced = replaced_run(self.results_dir, self.stem, manifest.config)
            if replaced is not None:
                manifest.notes["replaced_run"] = replaced
                log.warning("replacing the results of another configuration in %s (%s); the new manifest "
                            "records the replaced run under notes.replaced_run", self.results_dir,
                            ", ".join(f"{key} {change['replaced']} (now {change['now']})"
                                      for key, change in list(replaced["config_differences"].items())[:4]))
            manifest.write(self.directory / name)
            previous = previous_set(self.results_dir, self.stem)
            stale = sorted(previous - set(manifest.files) - {name} - set(SHARED_FILES))
            write_json(self.directory / COMMIT_MARKER, {"manifest": name, "remove": stale})
            _finish_commit(self.directory, self.results_dir)
        self.committed = {path.name: self.results_dir / path.name for path in staged}
        self.committed[name] = self.results_dir / name
        return self.committed


def replaced_run(results_dir: Path, stem: str, config: dict) -> dict | None:
    """What the committed set of ``stem`` was, when it was made with another configuration than
    ``config`` (keys of :data:`NOT_DEFINING` aside); None when there is none or it is the same.

    Returns ``{"manifest_sha256", "seed", "config_differences": {key: {"replaced", "now"}}}``.
    """
    path = results_dir / manifest_name(stem)
    try:
        previous = json.loads(path.read_text())
        old = previous["config"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(old, dict):
        return None
    new = json.loads(json.dumps(config, default=str))
    differences = {key: {"replaced": old.get(key), "now": new.get(key)} for key in sorted(set(old) | set(new))
                   if key not in NOT_DEFINING and old.get(key) != new.get(key)}
    if not differences:
        return None
    return {"manifest_sha256": sha256_file(path), "seed": previous.get("seed"),
            "config_differences": differences}


def previous_set(results_dir: Path, stem: str) -> set[str]:
    """Names of the files the stem's current manifest lists (``files``, or older ``outputs``)."""
    path = results_dir / manifest_name(stem)
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return set()
    names = set(manifest.get("files") or {})
    for value in (manifest.get("outputs") or {}).values():
        candidate = Path(str(value))
        if candidate.parent.resolve() == results_dir.resolve():
            names.add(candidate.name)
    return {name for name in names if "/" not in name and not name.startswith(".")}


def _finish_commit(staging: Path, results_dir: Path) -> None:
    """Steps 2-4 of a commit (idempotent: files already moved are skipped)."""
    marker = json.loads((staging / COMMIT_MARKER).read_text())
    name = marker["manifest"]
    if (staging / name).is_file():
        (results_dir / name).unlink(missing_ok=True)
    for path in sorted(staging.iterdir()):
        if path.name in (name, COMMIT_MARKER) or path.name.endswith(TEMP_SUFFIX) or not path.is_file():
            continue
        _move(path, results_dir / path.name)
    for stale in marker["remove"]:
        (results_dir / stale).unlink(missing_ok=True)
    if (staging / name).is_file():
        _move(staging / name, results_dir / name)
    remove_tree(staging)


def verify_set(results_dir: str | Path, stem: str) -> list[str]:
    """Problems of the committed set of ``stem``: files missing or not matching the manifest's
    sha256; ``[]`` when the set is complete and unchanged."""
    results_dir = Path(results_dir)
    path = results_dir / manifest_name(stem)
    try:
        files = json.loads(path.read_text())["files"]
    except (OSError, ValueError, KeyError) as error:
        return [f"{path}: no readable manifest with a file list ({type(error).__name__})"]
    problems = []
    for name, digest in files.items():
        file = results_dir / name
        if not file.is_file():
            problems.append(f"{name}: missing")
        elif sha256_file(file) != digest:
            problems.append(f"{name}: sha256 differs from the manifest")
    return problems
