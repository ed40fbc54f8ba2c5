"""Known membership is enough: members and non-members alone give the threshold-free metrics; a
decision threshold comes from a shadow model, else from known non-members, else none (with the reason)."""
import math

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from membership_audit import audit_scores
from pipeline.cli import main

UNTRAINED = ("Threshold", "Entropy", "LOSS", "Modified Entropy")


def _probs(rng, n, classes=5, sharp=2.0):
    logits = rng.normal(size=(n, classes)) * sharp
    return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


def _arrays(rng, n=200, leak=0.0):
    members = _probs(rng, n, sharp=2.0 + leak)
    return {"member_probs": members, "member_labels": members.argmax(1),
            "non_member_probs": _probs(rng, n), "non_member_labels": rng.integers(0, 5, n)}


def test_members_and_non_members_alone_give_threshold_free_metrics():
    rng = np.random.default_rng(0)
    arrays = _arrays(rng, leak=2.0)
    result = audit_scores(arrays)
    table = result.attack_table
    for attack in UNTRAINED:
        assert math.isfinite(table.loc["Original", f"{attack} Attack AUROC"])
        assert math.isnan(table.loc["Original", f"{attack} Attack FPR"])        # no threshold: left empty
    expected = roc_auc_score(np.r_[np.ones(200), np.zeros(200)],
                             np.r_[arrays["member_probs"].max(1), arrays["non_member_probs"].max(1)])
    assert abs(table.loc["Original", "Threshold Attack AUROC"] - expected) < 1e-9   # scikit-learn on the same scores
    assert set(result.thresholds["threshold source"]) == {"none"}
    assert {"Salem", "Shokri"} <= set(result.skipped_attacks)
    assert "shadow model's score vectors" in result.skipped_attacks["Shokri"]


def test_known_non_members_give_a_threshold_at_the_stated_fpr(tmp_path):
    rng = np.random.default_rng(1)
    arrays = _arrays(rng, leak=1.0)
    population = _probs(rng, 400)
    arrays.update(population_probs=population, population_labels=rng.integers(0, 5, 400))
    result = audit_scores(arrays)
    assert set(result.thresholds["threshold source"]) == {"population"}
    fpr = result.attack_table.loc["Original", "Threshold Attack FPR"]
    assert 0.0 <= fpr <= 0.15                  # ~5% on the population; the non-members are drawn alike
    files = result.write(tmp_path, name="known")
    thresholds = pd.read_csv(files["attack_thresholds"], index_col=0)
    assert list(thresholds.index) == list(UNTRAINED)
    assert "known non-members" in files["report"].read_text()


def test_without_signal_every_attack_is_at_chance():
    rng = np.random.default_rng(2)
    probs = _probs(rng, 4000)
    labels = rng.integers(0, 5, 4000)
    result = audit_scores({"member_probs": probs[:2000], "member_labels": labels[:2000],
                           "non_member_probs": probs[2000:], "non_member_labels": labels[2000:]})
    for attack in UNTRAINED:
        assert abs(result.attack_table.loc["Original", f"{attack} Attack AUROC"] - 0.5) < 0.03


def test_seeds_are_checked_before_any_seed_runs(tmp_path, capsys):
    code = main("digits", ["--seeds", "3", "-1", "--results_dir", str(tmp_path / "results"),
                           "--pretrained_dir", str(tmp_path / "checkpoints")])
    assert code == 2
    err = capsys.readouterr().err
    assert "--seeds" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "results").exists() and not (tmp_path / "checkpoints").exists()
