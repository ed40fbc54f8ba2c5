"""Lifecycle shared by all score-level attacks: ``fit`` on shadow scores, then ``score`` / ``predict``.

Subclasses implement ``_fit``, ``_score`` (on validated arrays: float32 when given float32, else
float64) and ``_decision_threshold``, and say with ``strict`` whether members score strictly above
it (``>``) or at or above it (``>=``), as the paper's code of that attack does; this class does the
conversion, the checks, the decisions and the "not fitted" error.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

import numpy as np

from attacks.validation import as_labels, as_probs, check_same_classes
from utils.options import Option


class NotFittedError(RuntimeError):
    """``score`` or ``predict`` was called before ``fit``."""


class MembershipAttack:
    """Base class of membership inference attacks on prediction scores.

    Attributes
    ----------
    name : str
        Short name used as CSV column prefix ``"{name} Attack"``.
    n_classes_ : int
        Number of classes seen by ``fit`` (set by ``fit``).
    """

    name: ClassVar[str] = "Base"
    strict: ClassVar[bool] = False  # member iff score > threshold (True) or score >= threshold (False)

    def fit(
        self,
        member_probs: Any,
        non_member_probs: Any,
        member_labels: Any = None,
        non_member_labels: Any = None,
    ) -> "MembershipAttack":
        """Fit the attack on shadow scores.

        Parameters
        ----------
        member_probs : array (N_m, C)
            Shadow-model probabilities on its training samples.
        non_member_probs : array (N_n, C)
            Shadow-model probabilities on held-out samples.
        member_labels, non_member_labels : int array (N_m,), (N_n,), optional
            Class labels; only attacks that use them (Shokri) look at them.

        Returns
        -------
        self
        """
        members = as_probs(member_probs, "member_probs")
        non_members = as_probs(non_member_probs, "non_member_probs")
        check_same_classes(members.shape[1], non_members, "non_member_probs", "member_probs")
        m_labels = as_labels(member_labels, len(members), "member_labels", "member_probs")
        n_labels = as_labels(non_member_labels, len(non_members), "non_member_labels", "non_member_probs")
        self.__dict__.pop("n_classes_", None)  # a failed re-fit leaves the attack unfitted
        self._fit(members, non_members, m_labels, n_labels)
        self.n_classes_ = members.shape[1]
        return self

    def score(self, probs: Any, labels: Any = None) -> np.ndarray:
        """Membership score, float array (N,); higher means "more likely a member".

        float32 where the paper's attack computes in float32 (see each attack), else float64.
        """
        p, y = self._check_input(probs, labels)
        return self._score(p, y)

    def predict(self, probs: Any, labels: Any = None) -> np.ndarray:
        """Membership decision, bool array (N,); ``True`` means "member"."""
        return self.score_and_predict(probs, labels)[1]

    def score_and_predict(self, probs: Any, labels: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """``(score(probs, labels), predict(probs, labels))`` from one validation and one scoring.

        Every attack decides "member" when its score is above :meth:`decision_threshold` (``>`` when
        ``strict``, ``>=`` otherwise).
        """
        p, y = self._check_input(probs, labels)
        scores = self._score(p, y)
        return scores, self.decide(scores)

    def decide(self, scores: np.ndarray) -> np.ndarray:
        """Decisions, bool array (N,), for scores (N,) of this fitted attack."""
        threshold = self.decision_threshold()
        return scores > threshold if self.strict else scores >= threshold

    def decision_threshold(self) -> float:
        """The score above which (``strict``), or at or above which, a sample is called a member."""
        if not self.is_fitted:
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit(member_probs, "
                                 f"non_member_probs) first")
        return self._decision_threshold()

    @property
    def is_fitted(self) -> bool:
        """Whether ``fit`` has completed."""
        return hasattr(self, "n_classes_")

    def _check_input(self, probs: Any, labels: Any) -> tuple[np.ndarray, np.ndarray | None]:
        if not self.is_fitted:
            raise NotFittedError(
                f"{type(self).__name__} is not fitted; call fit(member_probs, non_member_probs) first"
            )
        p = as_probs(probs, "probs")
        check_same_classes(self.n_classes_, p, "probs", f"the data {type(self).__name__} was fitted on")
        return p, as_labels(labels, len(p), "labels", "probs")

    def _fit(self, members: np.ndarray, non_members: np.ndarray,
             member_labels: np.ndarray | None, non_member_labels: np.ndarray | None) -> None:
        raise NotImplementedError

    def _score(self, probs: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
        raise NotImplementedError

    def _decision_threshold(self) -> float:
        raise NotImplementedError

    def __repr__(self) -> str:
        params = inspect.signature(type(self).__init__).parameters
        args = ", ".join(f"{p}={getattr(self, p)!r}" for p in params if p != "self" and hasattr(self, p))
        return f"{type(self).__name__}({args})"


@dataclass(frozen=True)
class AttackSpec:
    """How a run builds an attack: its ``--attacks`` name, its class and the user options it takes.

    Each declared option becomes a command-line flag (``Option.name``) and its value goes to the
    constructor keyword ``Option.keyword``; ``seeded`` attacks also get the run's attack seed.
    A new score attack is a module with its class and spec, plus one entry in
    :data:`attacks.factory.ATTACKS`.
    """

    name: str
    attack_class: type
    params: tuple[Option, ...] = ()
    seeded: bool = False
    paper: bool = True   # one of the paper's attacks (False: an extra, e.g. LOSS)

    def build(self, values: Mapping[str, Any], seed: int) -> MembershipAttack:
        """A new attack with the declared options' ``values`` (name -> value; missing: default)."""
        kwargs = {p.keyword or p.name: values.get(p.name, p.default) for p in self.params}
        if self.seeded:
            kwargs["seed"] = seed
        return self.attack_class(**kwargs)
