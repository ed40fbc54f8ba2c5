"""Any classifier: 2 to 100 classes (1,000 checked by hand), tabular features and images, on the
scores route (with shadow arrays) and the model route."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from attacks import ATTACKS
from membership_audit import audit_model, audit_scores
from membership_audit.user_data import FEATURES, IMAGES, data_kind
from reporting.summary import headline_finding

CLASSES = (2, 3, 10, 100)
SCORE_ATTACKS = [spec.display for spec in ATTACKS.values() if not spec.needs_reference_models]
SALEM_NOTE = "k=3 top scores asked, the target has 2 classes"


def _score_arrays(classes: int, n: int = 60, gap: float = 2.0, seed: int = 0) -> dict[str, np.ndarray]:
    """Target and shadow logits; members' true class is pushed up by ``gap`` more than non-members'."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for key, member in (("member", True), ("non_member", False), ("shadow_member", True),
                        ("shadow_non_member", False)):
        labels = rng.integers(0, classes, n)
        logits = rng.normal(size=(n, classes)).astype(np.float32)
        logits[np.arange(n), labels] += 1.0 + (gap if member else 0.0)
        arrays[f"{key}_logits"], arrays[f"{key}_labels"] = logits, labels
    return arrays


def _auroc(result) -> pd.Series:
    return result.attack_table.loc["Original", [f"{a} Attack AUROC" for a in SCORE_ATTACKS]].astype(float)


@pytest.mark.parametrize("classes", CLASSES)
def test_scores_route_runs_every_score_attack(classes, caplog):
    with caplog.at_level("WARNING", logger="attacks.salem"):
        result = audit_scores(_score_arrays(classes), attacks=tuple(n for n, s in ATTACKS.items()
                                                                      if not s.needs_reference_models))
    assert not result.skipped_attacks
    auroc = _auroc(result)
    assert np.isfinite(auroc).all()
    # the members' gap is found at every class count (Shokri's per-class models need shadow samples of
    # every class: at 100 classes and 60 shadow rows most classes fall back to one model)
    assert auroc.drop("Shokri Attack AUROC").between(0.6, 1.0).all()
    assert (SALEM_NOTE in caplog.text) == (classes == 2)


def test_scores_route_null_on_a_binary_classifier():
    arrays = _score_arrays(2, n=300, gap=0.0, seed=1)
    result = audit_scores(arrays, attacks=tuple(n for n, s in ATTACKS.items() if not s.needs_reference_models))
    assert (_auroc(result) - 0.5).abs().max() < 0.1


def _tabular(classes: int) -> nn.Module:
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, classes))


def _image(classes: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, classes))


def _data(kind: str, classes: int, n: int, rng: np.random.Generator):
    x = rng.normal(size=(n, 8)).astype(np.float32) if kind == FEATURES else rng.integers(0, 256, (n, 8, 8), np.uint8)
    return x, rng.integers(0, classes, n)


@pytest.mark.parametrize("kind", [FEATURES, IMAGES])
@pytest.mark.parametrize("classes", CLASSES)
def test_model_route_takes_any_class_count_and_input_kind(kind, classes, caplog):
    rng = np.random.default_rng(classes)
    build = _tabular if kind == FEATURES else _image
    factory = lambda: build(classes)   # noqa: E731
    torch.manual_seed(0)
    target = factory()
    data = [_data(kind, classes, 40, rng) for _ in range(4)]
    with caplog.at_level("WARNING", logger="attacks.salem"):
        result = audit_model(target, data[0], data[1], shadow_model=factory, shadow_member_data=data[2],
                             shadow_non_member_data=data[3], image_size=8,
                             attacks=tuple(n for n, s in ATTACKS.items() if not s.needs_reference_models))
    assert not result.skipped_attacks and np.isfinite(_auroc(result)).all()
    assert result.bundle.members.probs.shape == (40, classes)
    assert result.notes["data_kind"] == kind and result.notes["noun"] == ("samples" if kind == FEATURES else "images")
    perturbed = {"Permuted", "Scaled", "No Normalization"}
    if kind == FEATURES:
        assert set(result.notes["skipped_sets"]) == perturbed and not perturbed & set(result.attack_table.index)
        assert "not images" in result.notes["skipped_sets"]["Scaled"]
    else:
        assert perturbed <= set(result.attack_table.index) and "skipped_sets" not in result.notes
    assert (SALEM_NOTE in caplog.text) == (classes == 2)


def test_features_npz_and_mixed_forms(tmp_path):
    rng = np.random.default_rng(0)
    x, y = _data(FEATURES, 2, 30, rng)
    np.savez(tmp_path / "tab.npz", features=x, labels=y)
    np.savez(tmp_path / "flat.npz", images=x, labels=y)
    np.savez(tmp_path / "img.npz", images=rng.integers(0, 256, (30, 8, 8), np.uint8), labels=y)
    assert data_kind(tmp_path / "tab.npz") == (FEATURES, (8,)) == data_kind(tmp_path / "flat.npz")
    assert data_kind(tmp_path / "img.npz") == (IMAGES, None) and data_kind("cifar10") == (IMAGES, None)
    result = audit_model(_tabular(2), str(tmp_path / "tab.npz"), str(tmp_path / "flat.npz"), attacks=("threshold",))
    assert result.bundle.sets["Original"].probs.shape == (30, 2)
    with pytest.raises(ValueError, match=r"--non_member_data .*img.npz: holds images, but --member_data holds "
                                         r"features \(8,\)"):
        audit_model(_tabular(2), str(tmp_path / "tab.npz"), str(tmp_path / "img.npz"))
    np.savez(tmp_path / "wide.npz", features=rng.normal(size=(30, 9)).astype(np.float32), labels=y)
    with pytest.raises(ValueError, match=r"holds features \(9,\), but --member_data holds features \(8,\)"):
        audit_model(_tabular(2), str(tmp_path / "tab.npz"), str(tmp_path / "wide.npz"))
    with pytest.raises(ValueError, match=r"a batch of features of shape \(2, 9\) fails in the model"):
        audit_model(_tabular(2), str(tmp_path / "wide.npz"), str(tmp_path / "wide.npz"))


def test_headline_speaks_of_samples_when_asked():
    table = pd.DataFrame({"Threshold Attack FPR": [0.2]}, index=["Original"])
    assert "unseen Original test images members" in headline_finding(table, None)
    assert "unseen Original test samples members" in headline_finding(table, None, noun="samples")
