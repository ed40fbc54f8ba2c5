"""What an audit evaluates: a user's scores, checked once at the edge (the scores-file contract).

A scores file (``.npz``) or a mapping holds arrays under these names (``*_logits`` or ``*_probs``;
labels are integer class indices):

- ``member_*`` ``(M, C)``, ``member_labels`` ``(M,)``, ``non_member_*`` ``(N, C)``,
  ``non_member_labels`` ``(N,)``: the audited samples (required);
- ``shadow_member_*``, ``shadow_member_labels``, ``shadow_non_member_*``, ``shadow_non_member_labels``:
  a shadow model's, for the attacks fitted on one (optional);
- ``reference_logits`` ``(K, M + N, C)`` over the members then the non-members and ``reference_in``
  ``(K, M + N)`` bool: LiRA (optional); ``population_logits`` ``(Z, C)``, ``population_labels``
  ``(Z,)`` and ``population_reference_logits`` ``(K, Z, C)``: RMIA's population samples (optional);
- ``set_{name}_*`` with optional ``set_{name}_labels`` (and ``set_{name}_reference_logits``
  ``(K, n, C)``): extra non-member sets, one row ``{name}`` each (optional);
- ``held_out_*``, ``held_out_labels`` (and ``held_out_reference_logits``): in-distribution
  non-members not used as attack non-members, for the held-out FPR table (optional).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from attacks.validation import as_labels, as_probs, check_same_classes, to_numpy
from engine.scores import Scores

ORIGINAL, MEMBERS = "Original", "Members"
_SET = re.compile(r"^set_(?P<name>.+?)_(?P<kind>reference_logits|logits|probs|labels)$")
KNOWN_PREFIXES = ("member", "non_member", "shadow_member", "shadow_non_member", "held_out", "population")
KNOWN_ARRAYS = ({f"{p}_{kind}" for p in KNOWN_PREFIXES for kind in ("logits", "probs", "labels")}
                | {"reference_logits", "reference_in", "population_logits", "population_labels",
                   "population_reference_logits", "held_out_reference_logits"})


@dataclass
class ScoredBlock:
    """One model's output on one block of samples: probabilities (and logits when known)."""

    scores: Scores
    logits: np.ndarray | None = None          # (n, C); the log of the probabilities when only those were given

    def __len__(self) -> int:
        return len(self.scores)

    @property
    def signal_logits(self) -> np.ndarray:
        """Logits for LiRA / RMIA: the given ones, else the log-probabilities (same softmax)."""
        if self.logits is not None:
            return self.logits
        return np.log(np.clip(self.scores.probs.astype(np.float64), np.finfo(np.float64).tiny, None))


@dataclass
class ReferenceArrays:
    """Reference models' logits over the audited rows (members then non-members) and their membership."""

    logits: np.ndarray                                     # (K, M + N, C)
    reference_in: np.ndarray                               # (K, M + N) bool
    sets: dict[str, np.ndarray] = field(default_factory=dict)   # set -> (K, n, C); OUT for every model
    held_out: np.ndarray | None = None                     # (K, H, C)
    population: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # z logits, z labels, (K, Z, C)


@dataclass
class AuditInputs:
    """Everything an audit evaluates, checked: target blocks, optional shadow, references, held-out."""

    members: ScoredBlock
    non_members: ScoredBlock
    sets: dict[str, ScoredBlock] = field(default_factory=dict)     # extra non-member rows, in order
    shadow_members: ScoredBlock | None = None
    shadow_non_members: ScoredBlock | None = None
    held_out: ScoredBlock | None = None
    population: ScoredBlock | None = None                           # known non-members, not audited
    reference: ReferenceArrays | None = None
    source_index: dict[str, np.ndarray] = field(default_factory=dict)   # set -> row in its source

    @property
    def num_classes(self) -> int:
        return self.members.scores.probs.shape[1]

    @property
    def has_shadow(self) -> bool:
        return self.shadow_members is not None

    def target_sets(self) -> dict[str, ScoredBlock]:
        """``Original`` then every extra set: the attack table's rows."""
        return {ORIGINAL: self.non_members, **self.sets}


def load_scores_file(path: str | Path) -> AuditInputs:
    """The checked inputs of a scores file (``.npz``, see the module docstring); one-line errors."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--scores {path}: no such file; write one with numpy.savez (see "
                                f"docs/audit_your_model.md)")
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files}
    except Exception as error:  # zip, format and pickle errors all mean "not a plain .npz"
        raise ValueError(f"--scores {path}: cannot be read as a NumPy .npz of plain arrays "
                         f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})") from None
    return inputs_from_arrays(arrays, source=f"{path}")


def inputs_from_arrays(arrays: Mapping[str, Any], source: str = "arrays") -> AuditInputs:
    """The checked inputs of a mapping name -> array (the scores-file contract)."""
    arrays = dict(arrays)
    set_parts: dict[str, dict[str, Any]] = {}
    for name in list(arrays):
        match = _SET.match(name)
        if match:
            set_parts.setdefault(match["name"], {})[match["kind"]] = arrays.pop(name)
    unknown = sorted(set(arrays) - KNOWN_ARRAYS)
    if unknown:
        raise ValueError(f"{source}: unknown array(s) {', '.join(unknown)}; valid names: member_logits/_probs, "
                         f"member_labels, non_member_*, shadow_member_*, shadow_non_member_*, held_out_*, "
                         f"reference_logits, reference_in, population_*, set_{{name}}_logits/_probs/_labels")
    members = _block(arrays, "member", source, required=True)
    non_members = _block(arrays, "non_member", source, required=True, classes=members)
    inputs = AuditInputs(members, non_members)
    shadow = (_block(arrays, "shadow_member", source, classes=members),
              _block(arrays, "shadow_non_member", source, classes=members))
    if (shadow[0] is None) != (shadow[1] is None):
        missing = "shadow_non_member" if shadow[1] is None else "shadow_member"
        raise ValueError(f"{source}: has one shadow block but not {missing}_logits (or _probs) and its labels; "
                         f"give both shadow blocks or neither")
    inputs.shadow_members, inputs.shadow_non_members = shadow
    inputs.held_out = _block(arrays, "held_out", source, classes=members)
    inputs.population = _block(arrays, "population", source, classes=members)
    for name, parts in set_parts.items():
        inputs.sets[name] = _block({f"set_{name}_{k}": v for k, v in parts.items()}, f"set_{name}", source,
                                   required=True, classes=members, labels_required=False)
    inputs.reference = _reference(arrays, set_parts, inputs, source)
    return inputs


def _block(arrays: Mapping[str, Any], prefix: str, source: str, required: bool = False,
           classes: ScoredBlock | None = None, labels_required: bool = True) -> ScoredBlock | None:
    logits_name, probs_name, labels_name = f"{prefix}_logits", f"{prefix}_probs", f"{prefix}_labels"
    if logits_name in arrays and probs_name in arrays:
        raise ValueError(f"{source}: has both {logits_name} and {probs_name}; keep one")
    if logits_name not in arrays and probs_name not in arrays:
        if required:
            raise ValueError(f"{source}: missing array {logits_name} (or {probs_name}), shape (n, classes)")
        if labels_name in arrays:
            raise ValueError(f"{source}: has {labels_name} but no {logits_name} (or {probs_name})")
        return None
    logits = None
    if logits_name in arrays:
        logits = _logits(arrays[logits_name], logits_name, source)
        probs = _softmax(logits)
        what = logits_name
    else:
        probs = as_probs(arrays[probs_name], f"{source}: {probs_name}")
        what = probs_name
    if classes is not None:
        check_same_classes(classes.scores.probs.shape[1], probs, f"{source}: {what}", "member_*")
    if labels_name in arrays:
        labels = as_labels(arrays[labels_name], len(probs), f"{source}: {labels_name}", what)
        bad = np.flatnonzero((labels < 0) | (labels >= probs.shape[1]))
        if bad.size:
            raise ValueError(f"{source}: {labels_name}[{bad[0]}] is {labels[bad[0]]}, not a class index in "
                             f"[0, {probs.shape[1]}); leave the labels out for a set without labels")
        in_space = True
    elif labels_required:
        raise ValueError(f"{source}: missing array {labels_name}, shape ({len(probs)},) integer class indices")
    else:
        labels, in_space = np.full(len(probs), -1, dtype=np.int64), False
    return ScoredBlock(Scores(probs, labels, in_space), logits)


def _logits(values: Any, name: str, source: str) -> np.ndarray:
    array = to_numpy(values, name)
    if array.dtype.kind not in "biuf" or array.ndim != 2 or array.size == 0:
        raise ValueError(f"{source}: {name} must be a non-empty numeric array (n, classes), got "
                         f"{array.dtype} {array.shape}")
    if not np.isfinite(array).all():
        row = int(np.argwhere(~np.isfinite(array))[0][0])
        raise ValueError(f"{source}: {name} has a NaN or inf value in row {row}")
    return np.asarray(array, dtype=np.float32 if array.dtype == np.float32 else np.float64)


def _softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax in the logits' own dtype (float32 saturates like a network's output)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True, dtype=exp.dtype)


def _reference(arrays: Mapping[str, Any], set_parts: dict, inputs: AuditInputs, source: str) -> ReferenceArrays | None:
    has = "reference_logits" in arrays, "reference_in" in arrays
    if not any(has):
        for name in ("population_reference_logits", "held_out_reference_logits"):
            if name in arrays:
                raise ValueError(f"{source}: has {name} but no reference_logits and reference_in")
        return None
    if not all(has):
        missing = "reference_in" if has[0] else "reference_logits"
        raise ValueError(f"{source}: missing array {missing}; reference_logits (K, M + N, C) and reference_in "
                         f"(K, M + N) bool go together")
    rows, classes = len(inputs.members) + len(inputs.non_members), inputs.num_classes
    logits = _reference_logits(arrays["reference_logits"], "reference_logits", rows, classes, source,
                               "M + N (members then non-members)")
    reference_in = to_numpy(arrays["reference_in"], "reference_in")
    if reference_in.shape != logits.shape[:2] or reference_in.dtype.kind not in "bui":
        raise ValueError(f"{source}: reference_in must be a bool array of shape {logits.shape[:2]} "
                         f"(K, M + N), got {reference_in.dtype} {reference_in.shape}")
    reference = ReferenceArrays(logits, reference_in.astype(bool))
    k = len(logits)
    for name, parts in set_parts.items():
        if "reference_logits" in parts:
            reference.sets[name] = _reference_logits(parts["reference_logits"], f"set_{name}_reference_logits",
                                                     len(inputs.sets[name]), classes, source, "the set's rows",
                                                     k)
    if "held_out_reference_logits" in arrays:
        if inputs.held_out is None:
            raise ValueError(f"{source}: has held_out_reference_logits but no held_out_logits (or _probs)")
        reference.held_out = _reference_logits(arrays["held_out_reference_logits"], "held_out_reference_logits",
                                               len(inputs.held_out), classes, source, "held-out rows", k)
    if inputs.population is not None:
        z = inputs.population
        z_refs = arrays.get("population_reference_logits")
        if z_refs is None:
            raise ValueError(f"{source}: has population_logits but no population_reference_logits (K, Z, C)")
        z_refs = _reference_logits(z_refs, "population_reference_logits", len(z), classes, source,
                                   "population rows", k)
        reference.population = (z.signal_logits, z.scores.labels, z_refs)
    return reference


def _reference_logits(values: Any, name: str, rows: int, classes: int, source: str, what: str,
                      models: int | None = None) -> np.ndarray:
    array = to_numpy(values, name)
    expected = (models if models is not None else "K", rows, classes)
    if (array.ndim != 3 or array.shape[1:] != (rows, classes) or array.dtype.kind not in "biuf"
            or (models is not None and len(array) != models)):
        raise ValueError(f"{source}: {name} must have shape {expected} ({what}), got {array.dtype} {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{source}: {name} has NaN or inf values")
    return np.asarray(array, dtype=np.float64)
