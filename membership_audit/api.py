"""The public calls: :func:`audit_scores` (arrays or a scores file) and :func:`audit_model`
(a model and data); both return an :class:`~membership_audit.evaluate.AuditResult`."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from membership_audit.evaluate import DEFAULT_AUDIT_ATTACKS, AuditResult, audit_inputs
from membership_audit.inputs import AuditInputs, inputs_from_arrays, load_scores_file


def audit_scores(scores: str | Path | Mapping[str, Any] | AuditInputs, *,
                 attacks: Sequence[str] = DEFAULT_AUDIT_ATTACKS, seed: int = 42,
                 attack_params: Mapping[str, Any] | None = None) -> AuditResult:
    """Audit saved scores: a ``.npz`` path or a mapping of the arrays named in
    :mod:`membership_audit.inputs` (``member_logits``, ``member_labels``, ``non_member_logits``, ...).

    Attacks whose inputs are absent are skipped (``result.skipped_attacks``, CSV column ``Skipped``).
    """
    if isinstance(scores, AuditInputs):
        inputs = scores
    elif isinstance(scores, Mapping):
        inputs = inputs_from_arrays(scores)
    else:
        inputs = load_scores_file(scores)
    return audit_inputs(inputs, attacks, seed=seed, attack_params=attack_params,
                        config={"route": "scores", "seed": seed, "attacks": list(attacks),
                                "attack_params": dict(attack_params or {})})


def audit_model(model, member_data, non_member_data, **options) -> AuditResult:
    """Audit a model (an ``nn.Module`` or ``"package.module:factory"`` with ``checkpoint=``) on data
    (folders, ``.npz`` files, torchvision names or ``(images, labels)`` tensors); see
    :func:`membership_audit.model_route.score_model_inputs` for the options."""
    from membership_audit.model_route import score_model_inputs

    attacks = options.pop("attacks", DEFAULT_AUDIT_ATTACKS)
    seed = options.get("seed", 42)
    attack_params = options.pop("attack_params", None)
    inputs, notes = score_model_inputs(model, member_data, non_member_data, **options)
    result = audit_inputs(inputs, attacks, seed=seed, attack_params=attack_params,
                          config={"route": "model", "seed": seed, "attacks": list(attacks),
                                  **{k: str(v) for k, v in options.items()}})
    result.notes.update(notes)
    return result
