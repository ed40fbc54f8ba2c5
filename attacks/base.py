"""The lifecycle every attack shares (``fit`` on the shadow model, then ``score`` / ``predict``, one
"not fitted" error) and the declaration every attack has (:class:`AttackSpec`).

Score attacks (:class:`MembershipAttack`) see probabilities and labels; reference attacks
(:class:`ReferenceAttack`) see :class:`attacks.reference.ReferenceSignals`. Score-attack subclasses implement ``_fit``, ``_score`` (on validated arrays: float32 when given float32, else
float64) and ``_decision_threshold``, and say with ``strict`` whether members score strictly above
it (``>``) or at or above it (``>=``), as the paper's code of that attack does; this class does the
conversion, the checks, the decisions and the "not fitted" error.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Mapping

import numpy as np

from attacks.validation import as_labels, as_probs, check_same_classes
from attacks.youden import STRICT, TieRule, youden_threshold
from utils.options import Option


class NotFittedError(RuntimeError):
    """``score`` or ``predict`` was called before ``fit``."""


class FittedAttack:
    """What every attack shares: a name, a threshold fitted by ``fit``, and the decision rule."""

    name: ClassVar[str] = "Base"
    strict: ClassVar[bool] = False  # member iff score > threshold (True) or score >= threshold (False)
    fit_call: ClassVar[str] = "fit(member_probs, non_member_probs)"   # named in the "not fitted" error
    spec: "AttackSpec | None" = None   # the declaration it was built from (set by AttackSpec.construct)

    @property
    def is_fitted(self) -> bool:
        """Whether ``fit`` has completed."""
        raise NotImplementedError

    def decide(self, scores: np.ndarray) -> np.ndarray:
        """Decisions, bool array (N,), for scores (N,) of this fitted attack."""
        threshold = self.decision_threshold()
        return scores > threshold if self.strict else scores >= threshold

    def decision_threshold(self) -> float:
        """The score above which (``strict``), or at or above which, a sample is called a member."""
        self._check_fitted()
        return self._decision_threshold()

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(f"{type(self).__name__} is not fitted; call {self.fit_call} first")

    def _decision_threshold(self) -> float:
        raise NotImplementedError

    def __repr__(self) -> str:
        params = inspect.signature(type(self).__init__).parameters
        args = ", ".join(f"{p}={getattr(self, p)!r}" for p in params if p != "self" and hasattr(self, p))
        return f"{type(self).__name__}({args})"


class MembershipAttack(FittedAttack):
    """Base class of membership inference attacks on prediction scores.

    Attributes
    ----------
    name : str
        Short name used as CSV column prefix ``"{name} Attack"``.
    n_classes_ : int
        Number of classes seen by ``fit`` (set by ``fit``).
    """

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

    @property
    def is_fitted(self) -> bool:
        """Whether ``fit`` has completed."""
        return hasattr(self, "n_classes_")

    def _check_input(self, probs: Any, labels: Any) -> tuple[np.ndarray, np.ndarray | None]:
        self._check_fitted()
        p = as_probs(probs, "probs")
        check_same_classes(self.n_classes_, p, "probs", f"the data {type(self).__name__} was fitted on")
        return p, as_labels(labels, len(p), "labels", "probs")

    def _fit(self, members: np.ndarray, non_members: np.ndarray,
             member_labels: np.ndarray | None, non_member_labels: np.ndarray | None) -> None:
        raise NotImplementedError

    def _score(self, probs: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
        raise NotImplementedError


# One flag for LiRA and RMIA (declared by both; :func:`attacks.factory.attack_options` lists it once)
MODELS_PER_ROW = Option("reference_models_per_row", "LiRA and RMIA: reference models per sample (offline: OUT "
                                                    "models; online: half IN, half OUT); default: as many as "
                                                    "the row with the fewest has", type=int, minimum=1,
                        keyword="models_per_row")


class ReferenceAttack(FittedAttack):
    """Base class of attacks on the signals of K reference models (LiRA, RMIA).

    ``fit(signals, member_rows, non_member_rows)`` scores the shadow model's members and non-members
    against the reference models and keeps the Youden threshold (``ties="highest"``: members at or
    above it); ``score(signals)`` returns the attack's scores (N,), higher = member. Subclasses
    implement ``score``.
    """

    ties: ClassVar[TieRule] = "highest"
    strict = STRICT["highest"]
    fit_call = "fit(signals, member_rows, non_member_rows)"

    def score(self, signals: Any) -> np.ndarray:
        """Membership scores (N,) of the samples in ``signals``, higher = member."""
        raise NotImplementedError

    def fit(self, signals: Any, member_rows: Any, non_member_rows: Any) -> "ReferenceAttack":
        """Fit the decision threshold on the shadow model's signals: rows ``member_rows`` are its
        members, ``non_member_rows`` its non-members. All rows are scored in one call (online LiRA
        estimates its IN-OUT gap from every sample with IN models)."""
        self.__dict__.pop("threshold_", None)   # a failed re-fit leaves the attack unfitted
        scores = self.score(signals)
        self.threshold_ = youden_threshold(scores[np.asarray(member_rows)], scores[np.asarray(non_member_rows)],
                                           ties=self.ties)
        return self

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "threshold_")

    def _decision_threshold(self) -> float:
        return self.threshold_

    def score_and_predict(self, signals: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(score(signals), decisions)`` from one scoring."""
        self._check_fitted()
        scores = self.score(signals)
        return scores, self.decide(scores)


@dataclass(frozen=True)
class AttackSpec:
    """One attack's declaration: its ``--attacks`` name, display name, traits, options and class.

    Each declared option becomes a command-line flag (``Option.name``) and its value goes to the
    constructor keyword ``Option.keyword``; ``seeded`` attacks also get the run's attack seed.
    A named variant (``lira_offline``) is the same declaration with some constructor keywords fixed
    (:meth:`variant`). A new attack is a module with its class and spec, plus one entry in
    :data:`attacks.factory.ATTACKS`; the pipeline reads the traits, it never names an attack.

    Traits
    ------
    paper : one of the paper's attacks (its tables; a run without reference models runs these)
    uses_labels : the score depends on the sample's class label (the held-out table's label effect)
    needs_reference_models : scored against K reference models (:class:`ReferenceAttack`)
    trains_attack_model : trains an attack model on a shadow model's score vectors (Salem, Shokri): needs one
    trained_per_class : fits one attack model per class on the shadow model's score vectors (Shokri)
    needs_population : also scored against population samples z (RMIA's reference points)
    """

    name: str
    attack_class: type
    params: tuple[Option, ...] = ()
    seeded: bool = False
    paper: bool = True
    display_name: str | None = None      # CSV prefix "{display} Attack"; default: the class's name
    uses_labels: bool = False
    needs_reference_models: bool = False
    trains_attack_model: bool = False
    trained_per_class: bool = False
    needs_population: bool = False
    fixed: tuple[tuple[str, Any], ...] = ()   # constructor keywords fixed by this named variant

    @property
    def display(self) -> str:
        """The name in tables and figures (``"LiRA Offline"``)."""
        return self.display_name or self.attack_class.name

    def variant(self, name: str, display_name: str, **fixed: Any) -> "AttackSpec":
        """The same attack under another name with constructor keywords ``fixed``."""
        return replace(self, name=name, display_name=display_name, fixed=tuple({**dict(self.fixed), **fixed}.items()))

    def construct(self, **kwargs: Any) -> FittedAttack:
        """A new attack from this variant's fixed keywords, updated by constructor keywords ``kwargs``."""
        attack = self.attack_class(**{**dict(self.fixed), **kwargs})
        if attack.name != self.display:
            attack.name = self.display
        attack.spec = self
        return attack

    def build(self, values: Mapping[str, Any], seed: int) -> FittedAttack:
        """A new attack with the declared options' ``values`` (name -> value; missing: default)."""
        kwargs = {p.keyword or p.name: values.get(p.name, p.default) for p in self.params}
        if self.seeded:
            kwargs["seed"] = seed
        return self.construct(**kwargs)
