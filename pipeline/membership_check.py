"""Membership check of loaded checkpoints: are a model's members better classified than its
non-members?

A checkpoint trained on this run's members classifies them better than its non-members (that gap
is what the attacks exploit). When splits or seed differ from the run that trained the
checkpoint, "members" are mostly images it never saw and the gap vanishes: every attack number
is then meaningless. Members count as clearly better classified when their accuracy, or their
mean probability of the true class, exceeds the non-members' by at least ``MIN_Z`` standard
errors.
"""
from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass

import numpy as np

log = logging.getLogger(__name__)
MIN_Z = 2.0


@dataclass(frozen=True)
class MembershipCheck:
    """One model's accuracy and true-class probability on its attack members vs non-members."""

    role: str
    checkpoint: str
    member_accuracy: float
    non_member_accuracy: float
    member_confidence: float       # mean probability of the true class
    non_member_confidence: float
    accuracy_z: float              # gap in standard errors (two-proportion, pooled)
    confidence_z: float            # gap in standard errors (Welch)

    @property
    def clearly_better(self) -> bool:
        return max(self.accuracy_z, self.confidence_z) >= MIN_Z

    def line(self) -> str:
        return (f"membership check {self.role}: accuracy members {self.member_accuracy:.4f} vs "
                f"non-members {self.non_member_accuracy:.4f}; true-class probability "
                f"{self.member_confidence:.4f} vs {self.non_member_confidence:.4f}")

    def as_dict(self) -> dict:
        return {**asdict(self), "clearly_better": self.clearly_better}


def _accuracy_z(correct_a: np.ndarray, correct_b: np.ndarray) -> float:
    pooled = (correct_a.sum() + correct_b.sum()) / (len(correct_a) + len(correct_b))
    error = math.sqrt(pooled * (1 - pooled) * (1 / len(correct_a) + 1 / len(correct_b)))
    gap = correct_a.mean() - correct_b.mean()
    return gap / error if error > 0 else (math.inf if gap > 0 else 0.0)


def _welch_z(a: np.ndarray, b: np.ndarray) -> float:
    error = math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b)) if min(len(a), len(b)) > 1 else 0.0
    gap = a.mean() - b.mean()
    return gap / error if error > 0 else (math.inf if gap > 0 else 0.0)


def check_model(role: str, checkpoint: str, member_probs: np.ndarray, member_labels: np.ndarray,
                non_member_probs: np.ndarray, non_member_labels: np.ndarray) -> MembershipCheck:
    """Compare one model on its members and non-members.

    Parameters
    ----------
    member_probs, non_member_probs : ndarray (N, C), (M, C)
        The model's probabilities.
    member_labels, non_member_labels : int ndarray (N,), (M,)
        True classes.
    """
    correct, confidence = [], []
    for probs, labels in ((member_probs, member_labels), (non_member_probs, non_member_labels)):
        probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels, dtype=np.int64)
        correct.append((probs.argmax(axis=1) == labels).astype(np.float64))
        confidence.append(probs[np.arange(len(labels)), labels])
    return MembershipCheck(role, checkpoint, float(correct[0].mean()), float(correct[1].mean()),
                           float(confidence[0].mean()), float(confidence[1].mean()),
                           float(_accuracy_z(*correct)), float(_welch_z(*confidence)))


def check_loaded_models(models: dict, split_scores: dict) -> list[MembershipCheck]:
    """Check every model that was loaded rather than trained; log a warning for each that fails.

    Parameters
    ----------
    models : role -> :class:`pipeline.stages.models.TrainedModel`
    split_scores : role -> {"members": Scores, "non_members": Scores, ...}
    """
    checks = []
    for role, model in models.items():
        if model.trained:
            continue
        members, non_members = split_scores[role]["members"], split_scores[role]["non_members"]
        check = check_model(role, str(model.checkpoint), members.probs, members.labels,
                            non_members.probs, non_members.labels)
        checks.append(check)
        if not check.clearly_better:
            log.warning("%s: the loaded checkpoint %s does not classify its members clearly better than "
                        "its non-members, so it was likely trained on other images: the splits or --seed "
                        "differ from the checkpoint's training run (same flags, seed and data files as "
                        "that run are needed), and the attack results are not meaningful",
                        check.line(), model.checkpoint)
    return checks
