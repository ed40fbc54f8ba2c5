"""Membership check of loaded checkpoints."""
import json
import logging

import numpy as np

from configuration.config import config_from_preset
from pipeline.membership_check import check_model
from pipeline.run import run_experiment


def _probs(correct: np.ndarray, confidence: float, classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    labels = np.arange(len(correct)) % classes
    predicted = np.where(correct, labels, (labels + 1) % classes)
    probs = np.full((len(correct), classes), (1 - confidence) / (classes - 1))
    probs[np.arange(len(correct)), predicted] = confidence
    return probs, labels


def test_check_model_tells_members_apart_only_when_they_are_better_classified():
    members = _probs(np.ones(200, bool), 0.99)
    non_members = _probs(np.arange(200) % 5 != 0, 0.7)
    check = check_model("target", "x.pt", *members, *non_members)
    assert check.member_accuracy == 1.0 and check.non_member_accuracy == 0.8
    assert check.clearly_better and "accuracy members 1.0000 vs non-members 0.8000" in check.line()
    same = check_model("target", "x.pt", *non_members, *_probs(np.arange(200) % 5 != 1, 0.7))
    assert not same.clearly_better
    assert not check_model("shadow", "x.pt", *members, *members).clearly_better


def test_a_checkpoint_trained_on_other_indices_is_flagged(tmp_path, caplog):
    def config(seed):
        return config_from_preset("digits", seed=seed, epochs=30, train_set_size=100, test_set_size=100,
                                  attack_set_size=50, sets=("original",), attacks=("threshold",),
                                  results_dir=str(tmp_path / f"results{seed}"),
                                  pretrained_dir=str(tmp_path / "checkpoints"), figures=False,
                                  cache_scores=False, progress=False)

    run_experiment(config(1))  # trains on seed 1's splits
    for sidecar in (tmp_path / "checkpoints").glob("*.json"):
        sidecar.unlink()  # like the authors' released files: weights without their training config
    with caplog.at_level(logging.WARNING, logger="pipeline.membership_check"):
        outputs = run_experiment(config(1))  # loaded with the splits it was trained on
    assert not caplog.records
    assert all(check.clearly_better for check in outputs.membership)
    assert [check.role for check in outputs.membership] == ["target", "shadow"]

    with caplog.at_level(logging.WARNING, logger="pipeline.membership_check"):
        outputs = run_experiment(config(2))  # other seed: other members than the checkpoint's
    warnings = [record.getMessage() for record in caplog.records]
    assert warnings and all("splits or --seed differ" in message for message in warnings)
    assert any("target" in message for message in warnings)
    manifest = json.loads((tmp_path / "results2" / f"{outputs.stem}manifest.json").read_text())
    assert manifest["notes"]["membership_check"]["target"]["clearly_better"] is False
