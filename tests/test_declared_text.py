"""Sentences about attacks come from their declarations: an attack added in two places (its class and
its declaration) appears in every sentence that concerns it."""
from types import SimpleNamespace

import numpy as np
import pytest

from attacks import ATTACKS, AttackSpec, LiraAttack, LossAttack
from membership_audit import audit_scores


class ThrowawayAttack(LossAttack):
    name = "Throwaway"


class ThrowawayReference(LiraAttack):
    name = "Throwaway Reference"


@pytest.fixture
def declared(monkeypatch):
    monkeypatch.setitem(ATTACKS, "throwaway", AttackSpec("throwaway", ThrowawayAttack, paper=False, uses_labels=True))
    monkeypatch.setitem(ATTACKS, "throwaway_reference", AttackSpec(
        "throwaway_reference", ThrowawayReference, paper=False, uses_labels=True, needs_reference_models=True,
        seeded=True, fixed=(("online", False),)))


def _probs(rng, n, classes=4, sharp=2.0):
    logits = rng.normal(size=(n, classes)) * sharp
    return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


def test_a_new_attack_is_named_in_the_report_and_console(declared, tmp_path):
    from pipeline.console import StageLines

    rng = np.random.default_rng(0)
    arrays = {}
    for prefix in ("member", "non_member", "shadow_member", "shadow_non_member", "held_out"):
        arrays[f"{prefix}_probs"], arrays[f"{prefix}_labels"] = _probs(rng, 60), rng.integers(0, 4, 60)
    arrays["set_Noise_probs"] = _probs(rng, 40)                        # no labels: the predicted class is used
    result = audit_scores(arrays, attacks=("threshold", "throwaway"))
    report = result.write(tmp_path, name="new")["report"].read_text()
    assert "label-using attacks (Throwaway)" in report                 # the held-out section's sentence
    assert "attacks that use labels (Throwaway)" in report              # the label-source note
    title = StageLines(SimpleNamespace(attacks=("lira", "throwaway_reference"), reference_models=8,
                                       figures=False)).title("reference_attacks")
    assert "LiRA / Throwaway Reference" in title


class BrokenAttack(LossAttack):
    name = "Broken"

    def _fit(self, *args):
        raise ValueError("cannot fit on these scores")


def test_one_attack_failing_costs_no_other_attack(monkeypatch, tmp_path):
    monkeypatch.setitem(ATTACKS, "broken", AttackSpec("broken", BrokenAttack, paper=False, uses_labels=True))
    rng = np.random.default_rng(1)
    arrays = {}
    for prefix in ("member", "non_member", "shadow_member", "shadow_non_member"):
        arrays[f"{prefix}_probs"], arrays[f"{prefix}_labels"] = _probs(rng, 50), rng.integers(0, 4, 50)
    result = audit_scores(arrays, attacks=("threshold", "broken", "loss"))
    assert "cannot fit on these scores" in result.failed_attacks["Broken"]
    assert "Broken" in result.skipped_attacks and "Broken" in result.attack_table["Skipped"].iloc[0]
    assert {"Threshold Attack AUROC", "LOSS Attack AUROC"} <= set(result.attack_table.columns)
    files = result.write(tmp_path, name="broken")
    assert "Broken not run: cannot be fitted" in files["report"].read_text()
