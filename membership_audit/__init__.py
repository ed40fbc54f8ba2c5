"""Audit your own model, data or scores with the package's attacks: one call, the paper's outputs.

    from membership_audit import audit_scores, audit_model
    result = audit_scores("scores.npz")          # or a dict of arrays (see docs/audit_your_model.md)
    result.attack_table, result.held_out_table, result.sample_scores
    result.write("audit_results", name="my_model")

The reference-attack helpers a user needs are here too: :func:`balanced_membership` (a membership
matrix in which every sample is IN for half the reference models), :func:`score_metrics` (every
metric of the attack table from raw score arrays) and :func:`held_out_fpr_table`.
"""
from attacks.held_out_fpr import held_out_fpr_table
from attacks.reference import lira_scores, rmia_scores
from engine.evaluate import AuditResult
from membership_audit.api import audit_model, audit_scores
from membership_audit.inputs import AuditInputs, inputs_from_arrays, load_scores_file
from membership_audit.score_metrics import score_metrics


def __getattr__(name: str):
    """``balanced_membership`` loads torch (the reference pool's module): imported when first used."""
    if name == "balanced_membership":
        from models.reference_pool import balanced_membership

        return balanced_membership
    raise AttributeError(f"module 'membership_audit' has no attribute {name!r}")

__all__ = ["AuditInputs", "AuditResult", "audit_model", "audit_scores", "balanced_membership",
           "held_out_fpr_table", "inputs_from_arrays", "lira_scores", "load_scores_file", "rmia_scores",
           "score_metrics"]
