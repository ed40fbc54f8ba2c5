"""The paper's headline figure: non-members the attack calls "member", most confident first.

Each row is one non-member set (test images, permuted or scaled images, OOD sets, GAN images);
each tile shows an image the attack wrongly flagged as a training member, titled with the class
the target model predicted and its maximum prediction score.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from reporting.figures import new_figure, place_axes, save_figure, show_tiles

TILE_INCHES = 1.35    # one tile with the gap to the next
GAP_INCHES = 0.15
TITLE_INCHES = 0.4    # above each row: the tiles' titles
TOP_INCHES = 0.25     # the figure's title
LABEL_INCHES = 1.6


@dataclass(frozen=True)
class FalsePositiveCandidates:
    """Non-members of one set with what the target model and the attack said about them.

    Attributes
    ----------
    images : ndarray or Tensor, shape (N, C, H, W), C in {1, 3}
        Images for display, values in [0, 1] (un-normalised); clipped when drawn. Only the tiles
        drawn are converted, so a large tensor may be passed as is.
    max_probs : array (N,)
        Maximum prediction score of the target model.
    predicted_member : bool array (N,)
        The attack's decision; every ``True`` here is a false positive.
    predicted_class : int array (N,)
        The target model's predicted class.
    class_names : sequence of str, optional
        Names of the target model's classes; tiles show the index when missing or out of range.
    """

    images: np.ndarray | torch.Tensor
    max_probs: np.ndarray
    predicted_member: np.ndarray
    predicted_class: np.ndarray
    class_names: Sequence[str] | None = None

    def __post_init__(self) -> None:
        for name in ("max_probs", "predicted_member", "predicted_class"):
            value = getattr(self, name)
            if isinstance(value, torch.Tensor):
                value = value.detach().cpu().numpy()
            object.__setattr__(self, name, np.asarray(value).ravel())
        if self.predicted_member.dtype != np.bool_:
            raise ValueError(f"predicted_member must be a bool array, got dtype {self.predicted_member.dtype}")
        shape = tuple(self.images.shape)
        if len(shape) != 4 or shape[1] not in (1, 3):
            raise ValueError(f"images must have shape (N, C, H, W) with C 1 or 3, got {shape}")
        lengths = {"images": shape[0], "max_probs": len(self.max_probs),
                   "predicted_member": len(self.predicted_member),
                   "predicted_class": len(self.predicted_class)}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"FalsePositiveCandidates fields differ in length: {lengths}")

    def top_false_positives(self, k: int) -> np.ndarray:
        """Indices of the ``k`` false positives with the highest maximum score, highest first."""
        positives = np.flatnonzero(self.predicted_member)
        order = np.argsort(-self.max_probs[positives], kind="stable")
        return positives[order[:k]]

    def class_name(self, index: int) -> str:
        index = int(index)
        if self.class_names is not None and 0 <= index < len(self.class_names):
            return str(self.class_names[index])
        return str(index)


def plot_false_positive_grid(candidates: Mapping[str, FalsePositiveCandidates], path: str | Path,
                             per_set: int = 8, attack: str = "Threshold") -> Path:
    """One row per set with its ``per_set`` most confident false positives.

    Parameters
    ----------
    candidates : mapping set name -> :class:`FalsePositiveCandidates`
    path : PNG to write
    per_set : tiles per row (at most)
    attack : the attack whose decisions ``predicted_member`` holds (named in the title)

    Returns
    -------
    Path
        ``path``. A set without false positives gets a row saying so.
    """
    return save_figure(false_positive_figure(candidates, per_set, attack), path)


def false_positive_figure(candidates: Mapping[str, FalsePositiveCandidates], per_set: int = 8,
                          attack: str = "Threshold"):
    """The figure of :func:`plot_false_positive_grid` (not saved): one axes per set, its tiles drawn
    as one image (an axes per tile costs far more to draw), each titled above."""
    if per_set < 1:
        raise ValueError(f"per_set must be at least 1, got {per_set}")
    rows = candidates or {"(no non-member sets)": None}
    row_inches = TILE_INCHES + TITLE_INCHES
    figure = new_figure(LABEL_INCHES + TILE_INCHES * per_set + 0.1, TOP_INCHES + row_inches * len(rows) + 0.1,
                        layout=None)
    for index, (set_name, candidate) in enumerate(rows.items()):
        bottom = 0.1 + row_inches * (len(rows) - 1 - index)
        axes = place_axes(figure, LABEL_INCHES, bottom, TILE_INCHES * per_set, TILE_INCHES - GAP_INCHES)
        chosen = candidate.top_false_positives(per_set) if candidate is not None else np.array([], int)
        total = 0 if candidate is None else len(candidate.max_probs)
        axes.set_ylabel(f"{set_name}\n{int(candidate.predicted_member.sum()) if candidate else 0}"
                        f" / {total} false positives", rotation=0, ha="right", va="center", fontsize="small")
        if not len(chosen):
            _blank(axes)
            axes.text(0.05 / per_set, 0.5, "no false positives", transform=axes.transAxes, ha="left",
                      va="center", fontsize="medium", color="dimgrey")
            continue
        tiles = [_display(candidate.images[int(i)]) for i in chosen]
        height, width = tiles[0].shape[:2]
        # the gap between tiles, in pixels, that keeps each tile (image and gap) TILE_INCHES wide
        gap = max(1, round(width * GAP_INCHES / (TILE_INCHES - GAP_INCHES)))
        show_tiles(axes, tiles + [None] * (per_set - len(tiles)), per_set, gap, frame=None)
        for column, i in enumerate(chosen):
            axes.annotate(f"{candidate.class_name(candidate.predicted_class[i])}\n{candidate.max_probs[i]:.4f}",
                          xy=(column * (width + gap) + (width - 1) / 2, 1), xycoords=("data", "axes fraction"),
                          xytext=(0, 2), textcoords="offset points", ha="center", va="bottom", fontsize="x-small")
    figure.suptitle(f"{attack} attack: its most confident false positives (non-members it calls members)",
                    fontsize="medium", y=1 - 0.08 / figure.get_figheight(), va="top")
    return figure


def _blank(axes) -> None:
    """No ticks, no frame, but keep the y-label (the row's set name) visible."""
    axes.set_xticks([])
    axes.set_yticks([])
    for spine in axes.spines.values():
        spine.set_visible(False)


def _display(image) -> np.ndarray:
    """``(C, H, W)`` in [0, 1] -> ``(H, W)`` for greyscale or ``(H, W, 3)`` for colour."""
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().float().numpy()
    image = np.clip(np.asarray(image, dtype=np.float64), 0.0, 1.0)
    return image[0] if image.shape[0] == 1 else np.transpose(image, (1, 2, 0))
